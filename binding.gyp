# The one native addon: the original destination of a redirected connection
# (SO_ORIGINAL_DST), docs/original-destination.md. Built by scripts/build-native.mjs, which
# `npm ci` runs as this package's install script: node-gyp rebuild with --nodedir pointing at
# headers already on disk (nothing is downloaded).
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["src/data-plane/proxy/original-dst/original_dst.c"],
      "cflags": ["-Wall", "-Wextra"]
    }
  ]
}
