{
  "targets": [
    {
      "target_name": "tsmaster_native",
      "sources": [
        "tsmaster_native.cc",
        "errors.cc",
        "unix_addr.cc",
        "sockets.cc",
        "fds.cc",
        "process.cc",
        "notify.cc",
        "files.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
