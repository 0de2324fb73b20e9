// Fused dequantize + GEMM on the tensor cores for bfloat16 / float16 activations (the training
// shapes), with no dense copy of W in global memory:
//   forward   y [M, out] = x [M, in] · Wᵀ  (a W tile is BN rows of out x BK columns of in)
//   backward dx [M, in] = dy [M, out] · W  (a W tile is BK rows of out x BN columns of in)
// A block computes a 128 x 128 tile of the output with 8 warps (2 x 4, 64 x 32 each) and
// m16n8k16 MMAs with float32 accumulators. Per step of 64 along K:
// - the activation tile arrives by cp.async, three stages deep;
// - the W tile is read as packed codes (one 16-byte load of 32 codes per thread), one step
//   ahead, while the MMAs of the current step run, then decoded in registers (float32 value,
//   then the activation dtype, see quant_gemm.cuh) into the other of two shared-memory buffers.
// Shared tiles are 16-byte chunks XOR-swizzled by row, so ldmatrix and the stores are free of
// bank conflicts. Rows and columns past the edges are zero-filled and never stored.
// On Hopper, products large enough to fill the GPU go to the TMA + wgmma kernel of
// quant_gemm_wgmma.cuh instead (about twice as fast at 4096 rows).
#include <type_traits>

#include "async_copy.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "quant_gemm.cuh"
#include "quant_gemm_wgmma.cuh"

namespace blora {

namespace {

constexpr int kBM = 128, kBN = 128, kBK = 64;
constexpr int kStages = 3;                          // activation tiles in flight
constexpr int kThreads = 256;                       // 8 warps: 2 along M x 4 along N
constexpr int kTileElems = kBM * kBK;               // one activation tile = one W tile (kBN * kBK)
constexpr int kSmemBytes = (kStages + 2) * kTileElems * 2;  // 16-bit elements

__device__ __forceinline__ void loadMatrices(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void loadMatricesTransposed(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Element offset of 16-byte chunk `chunk` of row `row` in a tile of ChunksPerRow chunks per row.
template <int ChunksPerRow>
__device__ __forceinline__ int swizzled(int row, int chunk) {
  return row * ChunksPerRow * 8 + ((chunk ^ (row & 7)) << 3);
}

// Transposed false: a [M, K] · Wᵀ with W [N rows, K columns]; true: a [M, K] · W with W [K rows,
// N columns]. a has dense rows (stride lda, 16-byte aligned); y [M, N] contiguous.
template <typename T, typename Source, bool Transposed>
__global__ void __launch_bounds__(kThreads, 2)
    fusedGemmKernel(const T* a, int64_t lda, Source w, const float* table, T* y, int64_t M, int64_t N, int64_t K,
                    EpilogueAddend add) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float codeValues[16];
  T* aTiles = reinterpret_cast<T*>(smem);
  T* wTiles = aTiles + kStages * kTileElems;
  loadCodeValues(codeValues, table);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int g = lane >> 2, t = lane & 3;
  const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;
  const int64_t kTiles = (K + kBK - 1) / kBK;

  // This thread's share of a W tile: one chunk of 32 codes.
  const int wRow = Transposed ? tid >> 2 : tid >> 1;        // row within the tile (k or n)
  const int wPart = Transposed ? tid & 3 : tid & 1;         // which 32 columns of that row
  auto loadW = [&](int64_t kt) {
    const int64_t k0 = kt * kBK;
    if (Transposed) {
      const int64_t r = k0 + wRow, c = n0 + 32 * wPart;
      return w.load(r, c, r < K && c < N);
    }
    const int64_t r = n0 + wRow, c = k0 + 32 * wPart;
    return w.load(r, c, r < N && c < K);
  };
  auto storeW = [&](const typename Source::Chunk& chunk, int buffer) {
    uint32_t pairs[kChunkPairs];
    w.template decode<T>(chunk, CodeValues{codeValues}, pairs);
    T* tile = wTiles + buffer * kTileElems;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const int offset = Transposed ? swizzled<kBN / 8>(wRow, 4 * wPart + q) : swizzled<kBK / 8>(wRow, 4 * wPart + q);
      *reinterpret_cast<uint4*>(tile + offset) = make_uint4(pairs[4 * q], pairs[4 * q + 1], pairs[4 * q + 2], pairs[4 * q + 3]);
    }
  };
  auto loadA = [&](int64_t kt, int stage) {
    T* tile = aTiles + stage * kTileElems;
#pragma unroll
    for (int i = 0; i < kTileElems / 8 / kThreads; i++) {
      const int id = tid + i * kThreads;
      const int row = id >> 3, chunk = id & 7;
      const int64_t gm = m0 + row, gk = kt * kBK + chunk * 8;
      const bool valid = gm < M && gk < K;
      cpAsync16(smemAddress(tile + swizzled<kBK / 8>(row, chunk)), valid ? a + gm * lda + gk : a, valid ? 16 : 0);
    }
  };

  float acc[4][4][4] = {};
#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < kTiles) loadA(s, s);
    cpAsyncCommit();
  }
  __syncthreads();  // code values ready
  storeW(loadW(0), 0);

  for (int64_t kt = 0; kt < kTiles; kt++) {
    cpAsyncWaitPending<kStages - 2>();
    __syncthreads();  // tile kt has landed for everyone; everyone is done with step kt - 1
    if (kt + kStages - 1 < kTiles) loadA(kt + kStages - 1, int((kt + kStages - 1) % kStages));
    cpAsyncCommit();
    const bool more = kt + 1 < kTiles;
    typename Source::Chunk next{};
    if (more) next = loadW(kt + 1);

    const T* aTile = aTiles + (kt % kStages) * kTileElems;
    const T* wTile = wTiles + (kt & 1) * kTileElems;
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ks++) {
      uint32_t af[4][4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int row = wm * 64 + i * 16 + (lane & 15);
        loadMatrices(af[i], smemAddress(aTile + swizzled<kBK / 8>(row, 2 * ks + (lane >> 4))));
      }
      uint32_t bf[4][2];
#pragma unroll
      for (int jp = 0; jp < 2; jp++) {
        uint32_t r[4];
        if (Transposed) {
          const int k = ks * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
          const int chunk = (wn * 32 + jp * 16) / 8 + (lane >> 4);
          loadMatricesTransposed(r, smemAddress(wTile + swizzled<kBN / 8>(k, chunk)));
        } else {
          const int n = wn * 32 + jp * 16 + (lane & 7) + ((lane >> 4) << 3);
          loadMatrices(r, smemAddress(wTile + swizzled<kBK / 8>(n, 2 * ks + ((lane >> 3) & 1))));
        }
        bf[2 * jp][0] = r[0];
        bf[2 * jp][1] = r[1];
        bf[2 * jp + 1][0] = r[2];
        bf[2 * jp + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) mma16816<T>(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1]);
      }
    }
    if (more) storeW(next, int((kt + 1) & 1));
  }

  // acc[i][j]: rows (g, g + 8) of m-tile i, columns 2t, 2t + 1 of n-tile j.
  const bool pairStores = N % 2 == 0;
#pragma unroll
  for (int i = 0; i < 4; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t col = n0 + wn * 32 + j * 8 + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int64_t row = m0 + wm * 64 + i * 16 + g + 8 * h;
        if (row >= M || col >= N) continue;
        float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (add.values) {
          v0 += add.at(row, int(col));
          if (col + 1 < N) v1 += add.at(row, int(col + 1));
        }
        T* dst = y + row * N + col;
        if (pairStores) {
          *reinterpret_cast<uint32_t*>(dst) = packPair<T>(v0, v1);
        } else {
          dst[0] = Num<T>::store(v0);
          if (col + 1 < N) dst[1] = Num<T>::store(v1);
        }
      }
    }
  }
}

// What every fused GEMM needs of x and the output; false when the fused kernel cannot take them.
bool gemmOperandsFit(const TensorArg& x, const TensorArg& out, int64_t k, int64_t n) {
  if (x.dtype != DType::BFloat16 && x.dtype != DType::Float16) return false;
  if (out.dtype != x.dtype || !out.isContiguous() || x.rank != 2 || x.shape[1] != k) return false;
  if (out.numel() != x.shape[0] * n) return false;
  if (x.shape[0] > 1 && (x.strides[0] % 8 != 0 || x.strides[0] < k)) return false;
  if (k > 1 && x.strides[1] != 1) return false;
  if (reinterpret_cast<uintptr_t>(x.first()) % 16 != 0) return false;
  return (x.shape[0] + kBM - 1) / kBM <= 65535;
}

// Runs the product on the Hopper kernel (quant_gemm_wgmma.cuh) where it suits the product, else
// on the mma.sync kernel above. Blocks narrower than a chunk, whose scales are read per pair
// while decoding, stay on the latter: the Hopper kernel's decoders must keep pace with its MMAs.
template <typename Source>
void launchFused(const TensorArg& x, const Source& w, const float* table, const TensorArg& out, int64_t k, int64_t n,
                 bool transposed, const EpilogueAddend& add) {
  const int64_t m = x.shape[0];
  if (m == 0) return;
  const int64_t lda = m > 1 ? x.strides[0] : k;
  if constexpr (!Source::kScalesPerPair) {
    if (wgmma::launchFusedQuantWgmma(x, lda, w, table, out, k, n, transposed, add)) return;
  }
  const dim3 grid(unsigned((n + kBN - 1) / kBN), unsigned((m + kBM - 1) / kBM));
  auto run = [&](auto tag, auto transposedTag) {
    using T = typename decltype(tag)::type;
    constexpr bool Transposed = decltype(transposedTag)::value;
    auto kernel = fusedGemmKernel<T, Source, Transposed>;
    static const bool configured = [&] {
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
            "fused 4-bit GEMM: shared memory size");
      return true;
    }();
    (void)configured;
    kernel<<<grid, kThreads, kSmemBytes, stream()>>>(reinterpret_cast<const T*>(x.first()), lda, w, table,
                                                    reinterpret_cast<T*>(out.first()), m, n, k, add);
  };
  using Yes = std::integral_constant<bool, true>;
  using No = std::integral_constant<bool, false>;
  if (x.dtype == DType::BFloat16) {
    if (transposed) run(TypeTag<__nv_bfloat16>{}, Yes{});
    else run(TypeTag<__nv_bfloat16>{}, No{});
  } else {
    if (transposed) run(TypeTag<__half>{}, Yes{});
    else run(TypeTag<__half>{}, No{});
  }
}

}  // namespace

bool launchFourBitGemm(const TensorArg& x, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                       const TensorArg& out, const FourBitLayout& layout, bool transposed, const GemmAddend& addend) {
  const char* op = transposed ? "nf4MatmulT" : "nf4Matmul";
  checkFourBitInputs(op, packed, absmax, table, layout);
  const int64_t k = transposed ? layout.outFeatures : layout.inFeatures;
  const int64_t n = transposed ? layout.inFeatures : layout.outFeatures;
  EpilogueAddend add;
  if (!gemmOperandsFit(x, out, k, n) || !epilogueAddend(addend, x.shape[0], n, add)) return false;
  if (layout.inFeatures % kChunkCodes != 0 || (transposed && layout.outFeatures % 8 != 0)) return false;
  if (!isPowerOfTwo(layout.blocksize) || layout.blocksize < kChunkCodes) return false;
  if (reinterpret_cast<uintptr_t>(packed.first()) % 16 != 0) return false;
  const FourBitSource w{reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()),
                        layout.inFeatures, log2Exact(layout.blocksize)};
  launchFused(x, w, reinterpret_cast<const float*>(table.first()), out, k, n, transposed, add);
  checkLaunch(transposed ? "nf4MatmulT (fused GEMM)" : "nf4Matmul (fused GEMM)");
  return true;
}

bool launchIntGemm(const TensorArg& x, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                   const TensorArg& out, const IntLayout& layout, bool transposed, const GemmAddend& addend) {
  const char* op = transposed ? "int4MatmulT" : "int4Matmul";
  if (layout.bits != 4) return false;
  checkIntInputs(op, codes, scales, offsets, layout);
  const int64_t k = transposed ? layout.outFeatures : layout.inFeatures;
  const int64_t n = transposed ? layout.inFeatures : layout.outFeatures;
  EpilogueAddend add;
  if (!gemmOperandsFit(x, out, k, n) || !epilogueAddend(addend, x.shape[0], n, add)) return false;
  if (layout.inFeatures % kChunkCodes != 0 || (transposed && layout.outFeatures % 8 != 0)) return false;
  if (!isPowerOfTwo(layout.blockCols)) return false;
  if (reinterpret_cast<uintptr_t>(codes.first()) % 16 != 0) return false;
  auto launch = [&](auto scaleTag, auto narrowTag) {
    using Scale = typename decltype(scaleTag)::type;
    const IntSource<Scale, decltype(narrowTag)::value> w{
        reinterpret_cast<const uint8_t*>(codes.first()), reinterpret_cast<const Scale*>(scales.first()),
        reinterpret_cast<const Scale*>(offsets.first()), layout.inFeatures, layout.blockRows,
        layout.inFeatures / layout.blockCols, log2Exact(layout.blockCols)};
    launchFused(x, w, nullptr, out, k, n, transposed, add);
  };
  using Narrow = std::integral_constant<bool, true>;
  using Wide = std::integral_constant<bool, false>;
  const bool narrow = layout.blockCols < kChunkCodes;
  if (scales.dtype == DType::Float16) {
    if (narrow) launch(TypeTag<__half>{}, Narrow{});
    else launch(TypeTag<__half>{}, Wide{});
  } else {
    if (narrow) launch(TypeTag<float>{}, Narrow{});
    else launch(TypeTag<float>{}, Wide{});
  }
  checkLaunch(transposed ? "int4MatmulT (fused GEMM)" : "int4Matmul (fused GEMM)");
  return true;
}

}  // namespace blora
