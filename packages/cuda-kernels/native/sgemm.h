// The float32 GEMM's launch arguments, shared by its two kernels: the register-blocked CUDA-core
// kernel (matmul_simt.cu) and the 3xTF32 tensor-core kernel (matmul_tf32x3.cu), and the switch
// that picks between them.
#pragma once

#include <cstdint>
#include <string>

#include "strided.cuh"

namespace blora {

// Everything a launch needs; `c` is the output, or the split-K partials [slices][batches][M][N].
struct SgemmArgs {
  const float* a;
  const float* b;
  float* c;
  int M, N, K;
  int64_t sam, sak, sbk, sbn;
  bool vecA, vecB, vecC;  // 16-byte loads of a / b, 16-byte stores of c
  int64_t batches;
  StridedIndexer<2> batchOffsets;
  int slices, sliceK;  // K in `slices` runs of sliceK (a multiple of 8); 1 and K unsplit
};

// One job of a launch: a batch and a slice of K (blockIdx.z walks them), where its operands start
// and where its output goes (the output itself, or its slice of the split-K partials).
struct SgemmJob {
  int64_t batch;
  int slice;
  int64_t offA, offB;  // element offsets of the batch in a and b
  int kBegin, kCount;  // the slice's K range (kCount 0 past the end of K)

  __device__ SgemmJob(const SgemmArgs& args, int64_t job)
      : batch(job / args.slices), slice(int(job % args.slices)) {
    int64_t off[2];
    args.batchOffsets.offsets(batch, off);
    offA = off[0], offB = off[1];
    kBegin = slice * args.sliceK;
    kCount = max(0, min(args.K - kBegin, args.sliceK));
  }

  __device__ float* output(const SgemmArgs& args) const {
    return args.c + (int64_t(slice) * args.batches + batch) * int64_t(args.M) * args.N;
  }
};

// Which kernel runs float32 products. Tf32x3 (the default): the tensor cores, each operand
// split into a TF32 value and a TF32 remainder and three products summed in float32 (the
// remainder x remainder term, below float32's rounding, is left out), for products whose
// operands it can copy in 16-byte pieces on a GPU of compute capability 8.0 or newer; the
// CUDA-core kernel otherwise. Simt: always the CUDA-core kernel.
enum class Float32MatmulPath : int { Tf32x3 = 0, Simt = 1 };

// The current path: BLORA_CUDA_FLOAT32_MATMUL ('tf32x3' or 'simt'), read once at first use,
// unless setFloat32MatmulPath changed it.
Float32MatmulPath float32MatmulPath();
// Sets the path by name for the rest of the process; returns the previous one's name.
std::string setFloat32MatmulPathByName(const std::string& name);

// Output tile (BM x BN) the 3xTF32 kernel offers: 128x128, 128x64 and 64x128.
bool tf32x3TileExists(int bm, int bn);
// Blocks of the 3xTF32 kernel with a BM x BN tile that one SM holds at once.
int tf32x3BlocksPerSM(int bm, int bn);
// True when the 3xTF32 kernel can take these arguments on this device: the path allows it,
// the GPU has TF32 tensor cores and both operands are readable in 16-byte pieces (vecA, vecB).
bool tf32x3Suits(const SgemmArgs& args);
// Queues the 3xTF32 kernel with a BM x BN tile (tf32x3TileExists) for `args`.
void launchSgemmTf32x3(const SgemmArgs& args, bool aKDense, bool bKDense, int bm, int bn);

}  // namespace blora
