# The one native piece of Strait (DESIGN §6a): SO_ORIGINAL_DST and SO_MARK for the ztunnel's capture path,
# and RLIMIT_NOFILE (Node has no setrlimit).
# Built by `npm run build` (node-gyp, bundled with npm) into build/Release/original_dst.node.
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["src/ztunnel/capture/native/original_dst.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
