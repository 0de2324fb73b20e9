// float32 and float64 matmul: a classic shared-memory tiled GEMM on the CUDA cores. Each
// block computes a 64x64 tile of the output with 256 threads (4x4 outputs each), stepping
// through K 16 at a time, accumulating in the element type.
// Operands are read through their strides, so transposed views need no copy; the tile
// loads walk memory along whichever dim is dense, to keep them coalesced.
#include "kernels.h"
#include "launch.cuh"
#include "matmul_shape.cuh"

namespace blora {

namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gemmKernel(const T* A, const T* B, T* C, int M, int N, int K, int64_t sam, int64_t sak, int64_t sbk, int64_t sbn,
               int64_t batches, StridedIndexer<2> batchOffsets, bool aDenseAlongK, bool bDenseAlongN) {
  __shared__ T As[kTileK][kTileM + 1];  // +1: the k-fastest stores hit distinct banks
  __shared__ T Bs[kTileK][kTileN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    int64_t off[2];
    batchOffsets.offsets(batch, off);
    const T* a = A + off[0];
    const T* b = B + off[1];
    T acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kTileK) {
#pragma unroll
      for (int i = 0; i < kTileM * kTileK / kThreads; i++) {
        const int e = tid + i * kThreads;
        const int kk = aDenseAlongK ? e % kTileK : e / kTileM;
        const int mm = aDenseAlongK ? e / kTileK : e % kTileM;
        const int gm = m0 + mm, gk = k0 + kk;
        As[kk][mm] = gm < M && gk < K ? a[gm * sam + gk * sak] : T(0);
      }
#pragma unroll
      for (int i = 0; i < kTileN * kTileK / kThreads; i++) {
        const int e = tid + i * kThreads;
        const int kk = bDenseAlongN ? e / kTileN : e % kTileK;
        const int nn = bDenseAlongN ? e % kTileN : e / kTileK;
        const int gk = k0 + kk, gn = n0 + nn;
        Bs[kk][nn] = gk < K && gn < N ? b[gk * sbk + gn * sbn] : T(0);
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kTileK; kk++) {
        T av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
          for (int j = 0; j < 4; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
      __syncthreads();
    }
    T* c = C + batch * int64_t(M) * N;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int m = m0 + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int n = n0 + tx + 16 * j;
        if (m < M && n < N) c[int64_t(m) * N + n] = acc[i][j];
      }
    }
  }
}

}  // namespace

void launchMatmulSimt(const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const MatmulShape s = matmulShape("matmul", a, b, out);
  if (s.M == 0 || s.N == 0 || s.batches == 0) return;
  const dim3 grid = matmulGrid("matmul", s, kTileM, kTileN);
  const bool aDenseAlongK = s.sak == 1 || s.sam != 1;
  const bool bDenseAlongN = s.sbn == 1 || s.sbk != 1;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    gemmKernel<T><<<grid, kThreads, 0, stream()>>>(reinterpret_cast<const T*>(a.first()), reinterpret_cast<const T*>(b.first()),
                                                   reinterpret_cast<T*>(out.first()), s.M, s.N, s.K, s.sam, s.sak, s.sbk,
                                                   s.sbn, s.batches, s.batchOffsets, aDenseAlongK, bDenseAlongN);
  };
  if (a.dtype == DType::Float32) launch(TypeTag<float>{});
  else if (a.dtype == DType::Float64) launch(TypeTag<double>{});
  else fail(std::string("matmul (CUDA cores): dtype ") + dtypeName(a.dtype) + " is not float32 or float64");
  checkLaunch("matmul (tiled GEMM)");
}

}  // namespace blora
