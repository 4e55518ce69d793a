{
  "targets": [
    {
      "target_name": "dno_native",
      "sources": [
        "native/addon.cpp",
        "native/gemm.cpp",
        "native/gemm_napi.cpp",
        "native/threadpool.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3"],
      "cflags_cc!": ["-std=gnu++17"]
    }
  ]
}
