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
      ["blora_x86 == 1", { "defines": ["BLORA_HAVE_AVX2", "BLORA_HAVE_AVX512"] }]
    ]
  },
  "targets": [
    {
      "target_name": "blora_cpu",
      "sources": [
        "native/addon.cc",
        "native/attention.cc",
        "native/bindings_layout.cc",
        "native/bindings_nn.cc",
        "native/bindings_training.cc",
        "native/cpu_features.cc",
        "native/gemm.cc",
        "native/kernels_scalar.cc",
        "native/layout_ops.cc",
        "native/ops.cc",
        "native/quant.cc",
        "native/quant_q8.cc",
        "native/thread_pool.cc",
        "native/training_ops.cc"
      ],
      "include_dirs": ["<!(node -e \"require('nan')\")"],
      "conditions": [
        ["blora_x86 == 1", { "dependencies": ["blora_cpu_avx2", "blora_cpu_avx512"] }]
      ]
    }
  ],
  "conditions": [
    ["blora_x86 == 1", {
      "targets": [
        {
          "target_name": "blora_cpu_avx2",
          "type": "static_library",
          "sources": ["native/kernels_avx2.cc", "native/kernels_avx2_nn.cc", "native/kernels_avx2_q8.cc",
                      "native/kernels_avx2_q8_quantize.cc"],
          "cflags_cc": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma"] }
        },
        {
          "target_name": "blora_cpu_avx512",
          "type": "static_library",
          "sources": ["native/kernels_avx512.cc", "native/kernels_avx512_exp.cc", "native/kernels_avx512_nn.cc",
                      "native/kernels_avx512_q8.cc"],
          # GCC 12 reports its own AVX-512 intrinsics (their "undefined" pass-through operands) as
          # maybe-uninitialized; later versions do not.
          "cflags_cc": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni",
                        "-Wno-maybe-uninitialized"],
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni"]
          }
        }
      ]
    }]
  ]
}
