{
  "targets": [
    {
      "target_name": "dno_native",
      "sources": [
        "native/addon.cpp",
        "native/engine_napi.cpp",
        "native/gemm.cpp",
        "native/gemm_bf16.cpp",
        "native/gemm_napi.cpp",
        "native/generate.cpp",
        "native/gradcheck.cpp",
        "native/llama.cpp",
        "native/lora.cpp",
        "native/lora_napi.cpp",
        "native/model.cpp",
        "native/rowops.cpp",
        "native/threadpool.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # -fno-trapping-math: nothing reads FP exception flags; with it the clamps in rowops.cpp vectorise in
      # its baseline (SSE2) build too
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fno-trapping-math"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3"
      }
    }
  ]
}
