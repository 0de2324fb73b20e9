#!/bin/sh
# Builds the standalone float32 SGEMM harness (dev/sgemm.cu) for sm_90a (Hopper) and sm_80
# (Ampere). The CUDA runtime is linked statically, so the binary needs only the NVIDIA driver
# where it runs.
set -e
cd "$(dirname "$0")/.."
CUDA_ROOT="${CUDA_HOME:-$(node scripts/cuda-root.mjs 2>/dev/null || echo /usr/local/cuda)}"
"$CUDA_ROOT/bin/nvcc" -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
  -cudart static -I"$CUDA_ROOT/include" -Xptxas -warn-spills -Xcompiler -static-libstdc++,-static-libgcc "$@" \
  dev/sgemm.cu -o dev/sgemm -ldl -lpthread -lrt
echo "built dev/sgemm"
