{
  "variables": {
    "blora_x86": "<!(node -p \"['x64', 'ia32'].includes(process.arch) ? 1 : 0\")"
  },
  "target_defaults": {
    "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-pthread", "-fPIC"],
    "ldflags": ["-pthread"],
    "xcode_settings": {
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno"],
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
    },
    "conditions": [
      ["blora_x86 == 1", { "defines": ["BLORA_HAVE_AVX2"] }]
    ]
  },
  "targets": [
    {
      "target_name": "blora_cpu",
      "sources": [
        "native/addon.cc",
        "native/attention.cc",
        "native/bindings_nn.cc",
        "native/bindings_training.cc",
        "native/cpu_features.cc",
        "native/gemm.cc",
        "native/kernels_scalar.cc",
        "native/ops.cc",
        "native/quant.cc",
        "native/thread_pool.cc",
        "native/training_ops.cc"
      ],
      "include_dirs": ["<!(node -e \"require('nan')\")"],
      "conditions": [
        ["blora_x86 == 1", { "dependencies": ["blora_cpu_avx2"] }]
      ]
    }
  ],
  "conditions": [
    ["blora_x86 == 1", {
      "targets": [
        {
          "target_name": "blora_cpu_avx2",
          "type": "static_library",
          "sources": ["native/kernels_avx2.cc", "native/kernels_avx2_nn.cc"],
          "cflags_cc": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma"] }
        }
      ]
    }]
  ]
}
