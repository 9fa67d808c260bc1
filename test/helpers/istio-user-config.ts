/**
 * A directory an Istio user brings along: the product's own L7 examples (which need a waypoint), sidecar-style
 * policies, and kinds Strait does not implement, next to the objects it reads. File name → YAML, as users write it.
 */
export const ISTIO_USER_FILES: Record<string, string> = {
  '00-mesh.yaml': `
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  clusterIP: 10.96.1.1
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: default}
spec:
  clusterIP: 10.96.1.2
  selector: {app: orders}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: orders-1, namespace: default, labels: {app: orders}}
spec:
  nodeName: node-a
  serviceAccountName: orders
  containers: [{name: app, image: orders}]
status: {podIP: 10.0.0.7}
`,
  '10-routing.yaml': `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http:
  - match:
    - headers:
        x-canary: {exact: "true"}
    route:
    - destination: {host: api, subset: v2}
  - route:
    - destination: {host: api, subset: v1}
      weight: 90
    - destination: {host: api, subset: v2}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders-circuit-breaker, namespace: default}
spec:
  host: orders
  trafficPolicy:
    connectionPool:
      http: {http1MaxPendingRequests: 100, http2MaxRequests: 1000}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
`,
  '20-policy.yaml': `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: orders-policy, namespace: default}
spec:
  selector:
    matchLabels: {app: orders}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/frontend]
    to:
    - operation:
        methods: [GET, POST]
        paths: [/api/orders*]
`,
  '30-telemetry.yaml': `
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: tracing, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: jaeger}]
    randomSamplingPercentage: 10.0
`,
  '40-istio-only.yaml': `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: default}
spec:
  configPatches: []
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec:
  address: 192.168.1.10
`,
};

/** The objects each warning must name, and how the line starts after "<file> doc <n> ". */
export const ISTIO_USER_WARNINGS: { file: string; object: string; says: RegExp }[] = [
  { file: '10-routing.yaml', object: 'VirtualService default/api', says: /not enforced: no waypoint serves it/ },
  { file: '10-routing.yaml', object: 'DestinationRule default/orders-circuit-breaker', says: /not enforced: no waypoint serves it/ },
  { file: '20-policy.yaml', object: 'AuthorizationPolicy default/orders-policy', says: /rules\[0\] \(methods, paths\) uses HTTP attributes, .* this policy allows nothing: every connection to the workloads labelled app=orders in namespace default is DENIED/ },
  { file: '30-telemetry.yaml', object: 'Telemetry istio-system/tracing', says: /not enforced: no waypoint serves it/ },
  { file: '40-istio-only.yaml', object: 'ServiceEntry default/external-api', says: /networking\.istio\.io ServiceEntry is not supported by Strait \(ignored\)/ },
  { file: '40-istio-only.yaml', object: 'Gateway istio-system/ingress', says: /networking\.istio\.io Gateway is not supported by Strait \(ignored\)/ },
  { file: '40-istio-only.yaml', object: 'Sidecar default/default', says: /networking\.istio\.io Sidecar is not supported by Strait \(ignored\)/ },
  { file: '40-istio-only.yaml', object: 'EnvoyFilter default/lua', says: /networking\.istio\.io EnvoyFilter is not supported by Strait \(ignored\)/ },
  { file: '40-istio-only.yaml', object: 'WorkloadEntry default/vm-1', says: /networking\.istio\.io WorkloadEntry is not supported by Strait \(ignored\)/ },
];
