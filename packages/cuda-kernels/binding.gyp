{
  # The CUDA addon: host code (.cc) is compiled by the C++ compiler node-gyp uses, kernel files
  # (.cu) by nvcc through the rule below; the CUDA runtime is linked statically, so the addon
  # needs only the NVIDIA driver at run time.
  'variables': {
    'cuda_root%': '<!(node scripts/cuda-root.mjs)',
  },
  'targets': [
    {
      'target_name': 'blora_cuda',
      'sources': [
        'native/addon.cc',
        'native/device.cc',
        'native/allocator.cc',
        'native/transfer.cc',
        'native/fill_copy.cu',
        'native/cast.cu',
        'native/unary.cu',
        'native/binary.cu',
        'native/compare.cu',
        'native/reduce.cu',
        'native/softmax.cu',
        'native/matmul_simt.cu',
        'native/matmul_tensorcore.cu',
      ],
      'include_dirs': [
        "<!(node -e \"require('nan')\")",
        '<(cuda_root)/include',
      ],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti'],
      'cflags_cc': ['-fexceptions', '-O3'],
      'libraries': [
        '<(cuda_root)/lib64/libcudart_static.a',
        '-ldl',
        '-lpthread',
        '-lrt',
      ],
      'rules': [
        {
          'rule_name': 'nvcc',
          'extension': 'cu',
          'inputs': [
            'native/common.h',
            'native/kernels.h',
            'native/launch.cuh',
            'native/numeric.cuh',
            'native/strided.cuh',
            'native/block_reduce.cuh',
            'native/matmul_shape.cuh',
          ],
          'outputs': ['<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o'],
          'process_outputs_as_sources': 1,
          'message': 'nvcc <(RULE_INPUT_PATH)',
          'action': [
            '<(cuda_root)/bin/nvcc', '-c', '<(RULE_INPUT_PATH)', '-o', '<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o',
            '-O3', '--std=c++17', '-Xcompiler', '-fPIC',
            '-gencode', 'arch=compute_90,code=sm_90',
            '-gencode', 'arch=compute_80,code=sm_80',
            '-gencode', 'arch=compute_90,code=compute_90',
          ],
        },
      ],
    },
  ],
}
