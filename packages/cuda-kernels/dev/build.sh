#!/bin/sh
# Builds the standalone wgmma GEMM harness (dev/gemm_wgmma.cu) for sm_90a. The CUDA runtime is
# linked statically; the driver is reached at run time through the runtime, so the binary
# needs only the NVIDIA driver where it runs.
set -e
cd "$(dirname "$0")/.."
CUDA_ROOT="${CUDA_HOME:-$(node scripts/cuda-root.mjs 2>/dev/null || echo /usr/local/cuda)}"
"$CUDA_ROOT/bin/nvcc" -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -cudart static \
  -I"$CUDA_ROOT/include" -Xptxas -warn-spills -Xcompiler -static-libstdc++,-static-libgcc "$@" \
  dev/gemm_wgmma.cu -o dev/gemm_wgmma -ldl -lpthread -lrt
echo "built dev/gemm_wgmma"
