# syntax=docker/dockerfile:1
# The Strait image: one `strait` binary for the controller, the ztunnel and the waypoint (daemonset.yaml).
#
#   docker build -t ghcr.io/strait-mesh/strait:$(node -p 'require("./package.json").version') .
#
# Two stages: the build stage compiles the TypeScript and the capture addon (SO_ORIGINAL_DST, SO_MARK,
# RLIMIT_NOFILE: node-gyp, python3, make, g++ from node:20-bookworm) and drops the dev dependencies; the runtime stage
# (node:20-bookworm-slim) adds only what the capture runs: iptables (both the nft and the legacy backend; the capture
# scripts pick the one the node uses), nftables (nft: the capture stage after the service NAT) and iproute2. The base images are build arguments so that a mirror, or a
# base made without a registry (README "Install on Kubernetes"), can stand in for Docker Hub.
ARG BUILD_IMAGE=node:20-bookworm
ARG RUNTIME_IMAGE=node:20-bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Dependencies first (their own layer, rebuilt only when the lock file changes). --ignore-scripts: the package's own
# install script (the addon) and prepare (the build) need the sources, which come next.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY binding.gyp tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
# node-gyp builds against the headers that come with this Node (include/node beside bin/node), never downloaded ones.
RUN npm_config_nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" npm run build:native \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && chmod 0755 dist/src/cli/strait.js

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/strait
# What `strait` reads at run time: package.json (its version), the compiled code and protobuf files (dist/src), the
# runtime dependencies, the capture addon and the capture scripts (found next to the package, as in a checkout), and
# daemonset.yaml (what `strait install` applies).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/build/Release/original_dst.node ./build/Release/original_dst.node
COPY --from=build /src/scripts/iptables ./scripts/iptables
COPY daemonset.yaml ./daemonset.yaml
RUN ln -s /opt/strait/dist/src/cli/strait.js /usr/local/bin/strait \
 && strait --version
# The controller and the waypoints run as the image's unprivileged user "node" (uid 1000). The ztunnel needs
# NET_ADMIN and NET_RAW for the capture rules and SO_MARK, which Kubernetes grants only to root: its DaemonSet sets
# runAsUser 0 and adds exactly those two capabilities (not privileged; see daemonset.yaml).
USER node
ENTRYPOINT ["strait"]
