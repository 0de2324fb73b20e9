// Shared by the tensor-core attention kernels (attention_tc.cu forward, attention_tc_backward.cu
// backward): the inline PTX they use (cp.async, ldmatrix, mma.sync m16n8k16 with float32
// accumulation), the shared-memory tile layout, fragment loads, and the host-side test of
// whether a problem can take these kernels.
//
// Tiles hold rows of D 16-bit elements (D = 64 or 128, so 8 or 16 chunks of 16 bytes). Chunk c
// of row r is stored at position c ^ (r & 7) of its row: the eight rows an ldmatrix phase reads
// (or the eight chunks a warp's cp.async stores) then fall in eight distinct bank groups.
//
// Fragment layouts of mma.m16n8k16 (g = lane / 4, q = lane % 4):
//   A (16 x 16, row):  a0 = (g, 2q..2q+1), a1 = (g + 8, 2q..), a2 = (g, 2q + 8..), a3 = (g + 8, 2q + 8..)
//   B (16 x 8, col):   b0 = (k 2q..2q+1, n g), b1 = (k 2q + 8.., n g)
//   C (16 x 8):        c0, c1 = (g, 2q..2q+1), c2, c3 = (g + 8, 2q..2q+1)
// so the accumulators of two adjacent 8-column tiles, rounded to 16 bits in pairs, are exactly
// the A fragment of a 16-wide k step: softmax probabilities go from one product into the next
// without leaving registers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "async_copy.cuh"
#include "attention_common.cuh"
#include "numeric.cuh"

namespace blora {
namespace attn_tc {

constexpr int kKeyTile = 64;  // keys per tile (forward, dq) and per dk/dv block
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Batch, head and row strides (elements) of an operand; its last dim is dense.
struct RowStrides {
  int64_t batch, head, row;
};

// --- Inline PTX (sm_80 and newer; empty in the host pass). ---

// Four 8x8 16-bit matrices; lane l supplies the address of row l % 8 of matrix l / 8.
template <bool Trans>
__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], uint32_t address) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
  }
#else
  r[0] = r[1] = r[2] = r[3] = address;
#endif
}

// d += a (16x16, row) * b (16x8, col) with float32 accumulators.
template <typename T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

// `x` through an empty asm: the compiler can no longer see it is loop-invariant, so values
// derived from it (fragment and copy addresses) are recomputed in the loop instead of being
// hoisted out of it and held in registers for its whole length.
__device__ __forceinline__ int opaque(int x) {
  asm volatile("" : "+r"(x));
  return x;
}

__device__ __forceinline__ int64_t opaque(int64_t x) {
  asm volatile("" : "+l"(x));
  return x;
}

// 2^x with the hardware approximation (relative error ~2^-22); 2^-inf = 0.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as a pair of 16-bit values (lo in the low half), rounded to nearest even.
template <typename T>
__device__ __forceinline__ uint32_t packPair(float lo, float hi) {
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint32_t bitsOf(__half v) { return __half_as_ushort(v); }

// Stores two adjacent output elements with the project's rounding (numeric.cuh).
template <typename T>
__device__ __forceinline__ void storePair(T* dst, float lo, float hi) {
  *reinterpret_cast<uint32_t*>(dst) = bitsOf(Num<T>::store(lo)) | (bitsOf(Num<T>::store(hi)) << 16);
}

__device__ __forceinline__ float quadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float quadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// --- Shared-memory tiles. ---

// A tile of rows of D 16-bit elements, chunks XOR-swizzled with the row.
template <int D>
struct Tile {
  static constexpr int kChunks = D / 8;
  static_assert(kChunks == 8 || kChunks == 16, "head dims 64 and 128");
  __host__ __device__ static constexpr uint32_t bytes(int rows) { return uint32_t(rows) * D * 2u; }
  __device__ __forceinline__ static uint32_t offset(int row, int chunk) {
    return uint32_t(row * kChunks + (chunk ^ (row & 7))) * 16u;
  }
};

// Queues the copy of rows [row0, row0 + Rows) of an operand (row r at base + r * stride) into
// the tile at `dst`; rows at or past rowEnd are zero-filled.
template <typename T, int D, int Rows, int Threads>
__device__ __forceinline__ void loadRows(uint32_t dst, const T* base, int64_t stride, int64_t row0, int64_t rowEnd) {
  constexpr int kChunks = Rows * Tile<D>::kChunks;
  static_assert(kChunks % Threads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < kChunks / Threads; i++) {
    const int v = opaque(int(threadIdx.x)) + i * Threads;
    const int r = v / Tile<D>::kChunks, c = v % Tile<D>::kChunks;
    const int64_t row = row0 + r;
    const bool inside = row < rowEnd;
    cpAsync16(dst + Tile<D>::offset(r, c), inside ? base + row * stride + c * 8 : base, inside ? 16 : 0);
  }
}

// A fragment of rows [row0, row0 + 16) and k step `ks` (columns 16 ks..) of a [m][k] tile.
template <int D>
__device__ __forceinline__ void loadA(uint32_t (&a)[4], uint32_t tile, int row0, int ks, int lane) {
  ldmatrix4<false>(a, tile + Tile<D>::offset(row0 + (lane & 15), ks * 2 + (lane >> 4)));
}

// B fragments of two n tiles (n0.., n0 + 8..) for k step `ks` of a tile stored [n][k]:
// b[0], b[1] for the first tile, b[2], b[3] for the second.
template <int D>
__device__ __forceinline__ void loadBFromRows(uint32_t (&b)[4], uint32_t tile, int n0, int ks, int lane) {
  const int m = lane >> 3;
  ldmatrix4<false>(b, tile + Tile<D>::offset(n0 + (lane & 7) + (m >> 1) * 8, ks * 2 + (m & 1)));
}

// acc[n] += a · rows [8 n, 8 n + 8) of `tile` (stored [n][k]) transposed, at k step `ks`, for
// every n < N / 8: one k step of a 16-row x N product such as S = Q Kᵀ.
template <typename T, int D, int N>
__device__ __forceinline__ void mmaWithRows(float (&acc)[N / 8][4], const uint32_t (&a)[4], uint32_t tile, int ks, int lane) {
#pragma unroll
  for (int nj = 0; nj < N / 16; nj++) {
    uint32_t b[4];
    loadBFromRows<D>(b, tile, nj * 16, ks, lane);
    mma<T>(acc[2 * nj], a, b[0], b[1]);
    mma<T>(acc[2 * nj + 1], a, b[2], b[3]);
  }
}

// B fragments of two n tiles (columns n0.., n0 + 8..) for the k rows k0..k0 + 15 of a tile
// stored [k][n] (transposed by ldmatrix).
template <int D>
__device__ __forceinline__ void loadBFromCols(uint32_t (&b)[4], uint32_t tile, int k0, int n0, int lane) {
  const int m = lane >> 3;
  ldmatrix4<true>(b, tile + Tile<D>::offset(k0 + (lane & 7) + (m & 1) * 8, n0 / 8 + (m >> 1)));
}

// The A fragment of k step kk built from the accumulators of n tiles 2 kk and 2 kk + 1.
template <typename T>
__device__ __forceinline__ void accumulatorsToA(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = packPair<T>(lo[0], lo[1]);
  a[1] = packPair<T>(lo[2], lo[3]);
  a[2] = packPair<T>(hi[0], hi[1]);
  a[3] = packPair<T>(hi[2], hi[3]);
}

// The keys of the tile starting at s0 that queries `row` and `row + 8` see, as offsets
// [lo, hi) within the tile (clamped to [0, kKeyTile]; lo >= hi when none).
__device__ __forceinline__ void visibleInTile(const AttnDims& a, int64_t row, int64_t s0, int (&lo)[2], int (&hi)[2]) {
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int64_t l = a.keyLo(row + 8 * h) - s0, e = a.keyHi(row + 8 * h) - s0;
    lo[h] = int(l < 0 ? 0 : l > kKeyTile ? kKeyTile : l);
    hi[h] = int(e < 0 ? 0 : e > kKeyTile ? kKeyTile : e);
  }
}

// --- Host side. ---

// Which attention kernels run: BLORA_CUDA_ATTENTION or setAttentionPath (attention_tc.cu).
enum class AttentionPath : int { Auto = 0, TensorCore = 1, Simt = 2 };
AttentionPath attentionPath();

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the copy engine can read `t` [B, heads, rows, D] in 16-byte rows.
inline bool readsInRows(const TensorArg& t) {
  if (t.strides[3] != 1 || !aligned16(t.first())) return false;
  for (int i = 0; i < 3; i++) {
    if (t.shape[i] > 1 && t.strides[i] % 8 != 0) return false;
  }
  return true;
}

inline RowStrides rowStridesOf(const TensorArg& t) { return {t.strides[0], t.strides[1], t.strides[2]}; }

// Whether the tensor-core kernels take this problem: bfloat16 / float16, D = Dv = 64 or 128,
// non-empty sequences, q, k, v (and dO when given) readable in 16-byte rows, and the grid's
// tile counts within gridDim.y. The path setting may rule them out.
inline bool tensorCoreAttentionApplies(const TensorArg& q, const TensorArg& k, const TensorArg& v,
                                       const TensorArg* dO, const AttnDims& a) {
  if (attentionPath() == AttentionPath::Simt) return false;
  if (q.dtype != DType::BFloat16 && q.dtype != DType::Float16) return false;
  if (a.d != a.dv || (a.d != 64 && a.d != 128)) return false;
  if (a.b < 1 || a.h < 1 || a.t < 1 || a.s < 1) return false;
  if (a.b * a.h > INT32_MAX || (a.t + kKeyTile - 1) / kKeyTile > 65535 || (a.s + kKeyTile - 1) / kKeyTile > 65535) {
    return false;
  }
  if (!readsInRows(q) || !readsInRows(k) || !readsInRows(v)) return false;
  return dO == nullptr || readsInRows(*dO);
}

}  // namespace attn_tc
}  // namespace blora
