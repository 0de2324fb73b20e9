// bfloat16 and float16 matmul on tensor cores: mma.sync m16n8k16 with float32 accumulation,
// rounded once to the element type at the store. Large aligned products go to the TMA + wgmma
// kernel of gemm_bf16_wgmma.cu on Hopper, else to the pipelined kernel of
// gemm_bf16_pipelined.cu (BLORA_CUDA_GEMM picks between them, see gemm_wgmma.h); this
// file's kernel is the general path for the rest (small, ragged, unaligned or strided operands).
//
// A block computes a 64x64 output tile with 4 warps (2x2, each 32x32 = 2x4 mma tiles),
// stepping through K 32 at a time. Both operands are staged in shared memory with K
// contiguous: As[m][k] and Bs[n][k], which is exactly the "row" A / "col" B fragment
// layout the instruction wants, so a fragment register is one 32-bit shared load.
// Rows are padded to 40 elements (80 bytes) so the 8 rows a fragment load touches fall
// in distinct banks, while 16-byte stores stay aligned.
//
// Global loads follow the operand's layout (template flags): K-major operands (row-major
// A, column-major B such as a transposed [N, K] weight) are read 8 K-elements per 16-byte
// load; M/N-major operands (column-major A, row-major B) 8 rows per load, scattered into
// the K-contiguous tile. Unaligned or ragged edges fall back to element loads, so any
// strides stay correct.
#include "gemm_pipelined.h"
#include "gemm_wgmma.h"
#include "kernels.h"
#include "launch.cuh"
#include "matmul_shape.cuh"
#include "numeric.cuh"

#include <type_traits>

namespace blora {

namespace {

constexpr int kTile = 64;    // M and N extent of a block tile
constexpr int kTileK = 32;
constexpr int kLd = kTileK + 8;  // padded row length of a shared tile, in elements
constexpr int kThreads = 128;

template <typename T>
__device__ __forceinline__ T zeroOf();
template <>
__device__ __forceinline__ __nv_bfloat16 zeroOf<__nv_bfloat16>() {
  return __ushort_as_bfloat16(0);
}
template <>
__device__ __forceinline__ __half zeroOf<__half>() {
  return __ushort_as_half(0);
}

// Loads rows [r0, r0 + 64) x k [k0, k0 + 32) of a matrix whose element (r, k) is
// src[r * sr + k * sk] into S[r][k], with zeros outside [0, R) x [0, K).
template <bool KMajor, typename T>
__device__ __forceinline__ void loadTile(T (*S)[kLd], const T* src, int R, int K, int r0, int k0, int64_t sr,
                                         int64_t sk, bool vectorized) {
  const T zero = zeroOf<T>();
#pragma unroll
  for (int i = 0; i < kTile * kTileK / 8 / kThreads; i++) {
    const int v = threadIdx.x + i * kThreads;  // one 8-element chunk
    if (KMajor) {
      const int r = v / (kTileK / 8), kc = (v % (kTileK / 8)) * 8;
      const int gr = r0 + r, gk = k0 + kc;
      if (vectorized && gr < R && gk + 8 <= K) {
        *reinterpret_cast<uint4*>(&S[r][kc]) = *reinterpret_cast<const uint4*>(src + gr * sr + gk);
      } else {
#pragma unroll
        for (int e = 0; e < 8; e++) S[r][kc + e] = gr < R && gk + e < K ? src[gr * sr + (gk + e) * sk] : zero;
      }
    } else {
      const int k = v / (kTile / 8), rc = (v % (kTile / 8)) * 8;
      const int gk = k0 + k, gr = r0 + rc;
      if (vectorized && gk < K && gr + 8 <= R) {
        const uint4 raw = *reinterpret_cast<const uint4*>(src + gr + gk * sk);
        const T* vals = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int e = 0; e < 8; e++) S[rc + e][k] = vals[e];
      } else {
#pragma unroll
        for (int e = 0; e < 8; e++) S[rc + e][k] = gr + e < R && gk < K ? src[(gr + e) * sr + gk * sk] : zero;
      }
    }
  }
}

template <typename T>
__device__ __forceinline__ uint32_t sharedPair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// d += a (16x16, row) * b (16x8, col), float32 accumulators, a and b in T.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#endif
}

template <typename T>
__device__ __forceinline__ void storeOut(T* c, int M, int N, int row, int col, float v) {
  if (row < M && col < N) c[int64_t(row) * N + col] = Num<T>::store(v);
}

template <typename T, bool AKMajor, bool BKMajor>
__global__ void __launch_bounds__(kThreads)
    mmaGemmKernel(const T* A, const T* B, T* C, int M, int N, int K, int64_t sam, int64_t sak, int64_t sbk,
                   int64_t sbn, int64_t batches, StridedIndexer<2> batchOffsets, bool vecA, bool vecB) {
  __shared__ __align__(16) T As[kTile][kLd];
  __shared__ __align__(16) T Bs[kTile][kLd];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane >> 2, inGroup = lane & 3;  // fragment coordinates (PTX groupID / threadID_in_group)
  const int warpM = (warp >> 1) * 32, warpN = (warp & 1) * 32;
  const int m0 = blockIdx.x * kTile, n0 = blockIdx.y * kTile;
  for (int64_t batch = blockIdx.z; batch < batches; batch += gridDim.z) {
    int64_t off[2];
    batchOffsets.offsets(batch, off);
    float acc[2][4][4] = {};
    for (int k0 = 0; k0 < K; k0 += kTileK) {
      loadTile<AKMajor>(As, A + off[0], M, K, m0, k0, sam, sak, vecA);
      loadTile<BKMajor>(Bs, B + off[1], N, K, n0, k0, sbn, sbk, vecB);
      __syncthreads();
#pragma unroll
      for (int ks = 0; ks < kTileK; ks += 16) {
        const int kc = ks + inGroup * 2;
        uint32_t af[2][4], bfr[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; mi++) {
          const int r = warpM + mi * 16 + group;
          af[mi][0] = sharedPair(&As[r][kc]);
          af[mi][1] = sharedPair(&As[r + 8][kc]);
          af[mi][2] = sharedPair(&As[r][kc + 8]);
          af[mi][3] = sharedPair(&As[r + 8][kc + 8]);
        }
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
          const int n = warpN + ni * 8 + group;
          bfr[ni][0] = sharedPair(&Bs[n][kc]);
          bfr[ni][1] = sharedPair(&Bs[n][kc + 8]);
        }
#pragma unroll
        for (int mi = 0; mi < 2; mi++) {
#pragma unroll
          for (int ni = 0; ni < 4; ni++) mma16816<T>(acc[mi][ni], af[mi], bfr[ni]);
        }
      }
      __syncthreads();
    }
    T* c = C + batch * int64_t(M) * N;
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const int row = m0 + warpM + mi * 16 + group;
        const int col = n0 + warpN + ni * 8 + inGroup * 2;
        storeOut(c, M, N, row, col, acc[mi][ni][0]);
        storeOut(c, M, N, row, col + 1, acc[mi][ni][1]);
        storeOut(c, M, N, row + 8, col, acc[mi][ni][2]);
        storeOut(c, M, N, row + 8, col + 1, acc[mi][ni][3]);
      }
    }
  }
}

// Whether 16-byte loads are safe: the dense dim has stride 1, every other stride and the
// first element's address are multiples of 8 elements (16 bytes).
bool canVectorize(const TensorArg& t, int64_t denseStride, int64_t otherStride) {
  return denseStride == 1 && otherStride % 8 == 0 && reinterpret_cast<uintptr_t>(t.first()) % 16 == 0 &&
         batchStridesMultipleOf(t, 8);
}

}  // namespace

void launchMatmulTensorCore(const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const MatmulShape s = matmulShape("matmul", a, b, out);
  if (s.M == 0 || s.N == 0 || s.batches == 0) return;
  if (launchGemmWgmma(a, b, out, s)) return;
  if (launchGemmPipelined(a, b, out, s)) return;
  const dim3 grid = matmulGrid("matmul", s, kTile, kTile);
  // K-major unless the operand is dense along M (for a) or N (for b) instead.
  const bool aKMajor = !(s.sam == 1 && s.sak != 1);
  const bool bKMajor = !(s.sbn == 1 && s.sbk != 1);
  const bool vecA = aKMajor ? canVectorize(a, s.sak, s.sam) : canVectorize(a, s.sam, s.sak);
  const bool vecB = bKMajor ? canVectorize(b, s.sbk, s.sbn) : canVectorize(b, s.sbn, s.sbk);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = reinterpret_cast<const T*>(a.first());
    const T* pb = reinterpret_cast<const T*>(b.first());
    T* pc = reinterpret_cast<T*>(out.first());
#define BLORA_LAUNCH_MMA_GEMM(AK, BK)                                                                            \
  mmaGemmKernel<T, AK, BK><<<grid, kThreads, 0, stream()>>>(pa, pb, pc, s.M, s.N, s.K, s.sam, s.sak, s.sbk, s.sbn, \
                                                            s.batches, s.batchOffsets, vecA, vecB)
    if (aKMajor && bKMajor) BLORA_LAUNCH_MMA_GEMM(true, true);
    else if (aKMajor) BLORA_LAUNCH_MMA_GEMM(true, false);
    else if (bKMajor) BLORA_LAUNCH_MMA_GEMM(false, true);
    else BLORA_LAUNCH_MMA_GEMM(false, false);
#undef BLORA_LAUNCH_MMA_GEMM
  };
  if (a.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else if (a.dtype == DType::Float16) launch(TypeTag<__half>{});
  else fail(std::string("matmul (tensor cores): dtype ") + dtypeName(a.dtype) + " is not bfloat16 or float16");
  checkLaunch("matmul (tensor cores, mma.sync m16n8k16)");
}

std::string matmulKernelName(const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  if (a.dtype == DType::Float32) return sgemmKernelName(a, b, out);
  if (a.dtype != DType::BFloat16 && a.dtype != DType::Float16) return "simt-64x64";
  const MatmulShape s = matmulShape("matmul", a, b, out);
  const wgmma::SplitPlan plan = gemmWgmmaPlan(a, b, s);
  if (plan.bn > 0) return "wgmma-128x" + std::to_string(plan.bn) + (plan.splits > 1 ? "/split" + std::to_string(plan.splits) : "");
  const int bn = gemmPipelinedTileN(a, b, s);
  return bn > 0 ? "pipelined-128x" + std::to_string(bn) : "mma-64x64";
}

}  // namespace blora
