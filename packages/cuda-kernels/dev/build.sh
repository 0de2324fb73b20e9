#!/bin/sh
# Builds the standalone kernel harnesses of dev/ (each dev/NAME.cu into dev/NAME): all of them,
# or those named (gemm_wgmma, attention_tc, sgemm, gemv4, quant_gemm_wgmma). Hopper (sm_90a) and Ampere (sm_80) code; the
# CUDA runtime is linked statically and the driver reached through it, so a binary needs only
# the NVIDIA driver where it runs. Extra nvcc flags: BLORA_DEV_NVCC_FLAGS.
set -e
cd "$(dirname "$0")/.."
CUDA_ROOT="${CUDA_HOME:-$(node scripts/cuda-root.mjs 2>/dev/null || echo /usr/local/cuda)}"
for name in ${*:-gemm_wgmma attention_tc sgemm gemv4 quant_gemm_wgmma}; do
  [ -f "dev/$name.cu" ] || { echo "dev/build.sh: no dev/$name.cu" >&2; exit 2; }
  # shellcheck disable=SC2086
  "$CUDA_ROOT/bin/nvcc" -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
    -cudart static -I"$CUDA_ROOT/include" -Xptxas -warn-spills -Xcompiler -static-libstdc++,-static-libgcc \
    ${BLORA_DEV_NVCC_FLAGS:-} "dev/$name.cu" -o "dev/$name" -ldl -lpthread -lrt
  echo "built dev/$name"
done
