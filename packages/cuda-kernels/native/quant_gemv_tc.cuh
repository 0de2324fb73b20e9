// A tensor-core 4-bit GEMV under development: y = x · Wᵀ for M <= 16 bfloat16 / float16
// activation rows, straight from the quantized weight. dev/gemv4.cu checks it against float64
// and times it; the addon does not launch it yet (it is no faster than quant_gemv.cu's kernel:
// both are bound by issued instructions, see docs/benchmarks.md).
//
// A block owns 8 NTiles weight rows and 512 Groups input columns. It first streams that tile's
// codes (whole row runs, 16 bytes per cp.async) and activations into shared memory, and its
// scales into a small table. The weight is the MMA's B operand (8 rows per n-tile), the
// activations its A operand (16 rows, zeros beyond M). The input dim is walked in groups of 64
// columns, one quantization block or a part of one: lane (g = lane / 4, t = lane % 4) takes the
// 16 codes at columns 16 t .. 16 t + 15 of the group for weight row g of each n-tile and the
// same columns of activation rows g and g + 8. MMA step s takes the lane's columns 4 s .. 4 s + 3
// as its k slots 2t, 2t + 1, 2t + 8, 2t + 9 (the same permutation for both operands leaves the
// sum unchanged), so every MMA stays inside one block and the block's scale waits until its four
// MMAs are done:
//   NF4 / FP4: y += absmax · Σ x · table[code];
//   integers:  y += alpha · Σ x · q + beta · Σ x (Σ x by one more MMA with ones, per group).
// Codes therefore decode to bare code values (table entries in the activation dtype, or the
// integers 0..15, exact). The eight warps of a block take different groups of the same rows and
// add their partial sums in shared memory. When one block's columns do not cover the input dim,
// the grid's second dim splits it: every block stores its partial sums, and the block that
// finishes last for a set of rows adds them all in a fixed order and writes y, so the result does
// not depend on timing.
#pragma once

#include "async_copy.cuh"
#include "numeric.cuh"
#include "quant_gemm.cuh"

namespace blora {

constexpr int kGemvTcWarps = 8;    // warps per block, all on the same weight rows
constexpr int kGemvTcGroup = 64;   // input columns per group: 4 lanes x 16 codes

// NF4 / FP4 codes with one float32 absmax per block of 2^blockShift elements (>= 64).
struct FourBitGroups {
  const uint8_t* packed;
  const float* absmax;
  int64_t in;
  int blockShift;
  static constexpr bool kOffsets = false;
  __device__ __forceinline__ const uint8_t* codes(int64_t r, int64_t c) const { return packed + ((r * in + c) >> 1); }
  __device__ __forceinline__ void scale(int64_t r, int64_t c, float& alpha, float& beta) const {
    alpha = __ldg(absmax + ((r * in + c) >> blockShift));
    beta = 0.f;
  }
};

// Integer codes (4-bit, high nibble first) with alpha / beta per block of blockRows x 2^colShift (>= 64).
template <typename Scale>
struct IntGroups {
  const uint8_t* packed;
  const Scale* scales;
  const Scale* offsets;
  int64_t in, blockRows, gridCols;
  int colShift;
  static constexpr bool kOffsets = true;
  __device__ __forceinline__ const uint8_t* codes(int64_t r, int64_t c) const { return packed + ((r * in + c) >> 1); }
  __device__ __forceinline__ void scale(int64_t r, int64_t c, float& alpha, float& beta) const {
    const int64_t block = (r / blockRows) * gridCols + (c >> colShift);
    alpha = scaleValue(scales[block]);
    beta = scaleValue(offsets[block]);
  }
};

/** Everything a launch of the tensor-core GEMV needs besides the weight. */
template <typename T>
struct GemvTcArgs {
  const T* x;          // [rows, in], row stride xStride, dense along in, 16-byte aligned rows
  int64_t xStride;
  int rows;            // M, 1..16
  const float* table;  // the format's 16 values (NF4 / FP4), or nullptr for integer codes
  T* y;                // [rows, outFeatures], contiguous
  int64_t outFeatures, in;
  int splits;          // blocks along the input dim (grid.y)
  float* partials;     // [splits][rows][outFeatures] when splits > 1
  unsigned* tickets;   // one zeroed counter per row set when splits > 1 (left zeroed)
};

// Word p (columns 2p, 2p + 1) of 16 consecutive 16-bit activations held as two 16-byte loads.
__device__ __forceinline__ uint32_t activationPair(const uint4 (&v)[2], int p) {
  const uint4& q = v[p >> 2];
  return (p & 3) == 0 ? q.x : (p & 3) == 1 ? q.y : (p & 3) == 2 ? q.z : q.w;
}

// Decodes the 8 codes of one 32-bit word into four pairs of 16-bit code values (pair p: the
// high nibble of byte p in the low half, its low nibble in the high half). The nibbles are
// turned into byte offsets four at a time; each value is then one shared-memory read from a
// 16-entry table (entry e in bank e, so no pattern of reads conflicts): `low` holds the values
// in the low half, `high` in the high half, and one OR joins a pair.
__device__ __forceinline__ void decodeWord(const uint32_t* low, const uint32_t* high, uint32_t word, uint32_t (&pairs)[4]) {
  const uint32_t hiNibbles = (word >> 2) & 0x3c3c3c3cu;  // 4 x high nibble of each byte
  const uint32_t loNibbles = (word << 2) & 0x3c3c3c3cu;  // 4 x low nibble
  const char* lowBytes = reinterpret_cast<const char*>(low);
  const char* highBytes = reinterpret_cast<const char*>(high);
#pragma unroll
  for (int p = 0; p < 4; p++) {
    const uint32_t a = __byte_perm(hiNibbles, 0, 0x4440 + p), b = __byte_perm(loNibbles, 0, 0x4440 + p);
    pairs[p] = *reinterpret_cast<const uint32_t*>(lowBytes + a) | *reinterpret_cast<const uint32_t*>(highBytes + b);
  }
}

template <typename T>
__device__ __forceinline__ uint32_t oneBits();
template <>
__device__ __forceinline__ uint32_t oneBits<__nv_bfloat16>() {
  return 0x3f80u;
}
template <>
__device__ __forceinline__ uint32_t oneBits<__half>() {
  return 0x3c00u;
}

// NTiles: n-tiles of 8 weight rows per block; Groups: groups of 64 columns per warp, so a
// block's tile is 8 NTiles rows x 8 Groups groups (512 Groups columns).
template <int NTiles, int Groups>
struct GemvTcTile {
  static constexpr int kRows = 8 * NTiles;
  static constexpr int kGroups = kGemvTcWarps * Groups;
  static constexpr int kCols = kGroups * kGemvTcGroup;
  // Row pitch of the codes in shared memory: 32 bytes past the data keep the 8-byte reads of
  // each half-warp (4 rows x 4 lanes) in distinct banks.
  static constexpr int kPitch = kCols / 2 + 32;
};

template <typename T, typename Source, int NTiles, int Groups, bool TwoRowTiles>
__global__ void __launch_bounds__(kGemvTcWarps * 32)
    gemvTcKernel(GemvTcArgs<T> args, Source w) {
  using Tile = GemvTcTile<NTiles, Groups>;
  constexpr int kRows = Tile::kRows;
  __shared__ __align__(16) uint8_t tileCodes[kRows * Tile::kPitch];
  __shared__ float tileAlpha[kRows][Tile::kGroups], tileBeta[Source::kOffsets ? kRows : 1][Tile::kGroups];
  __shared__ uint32_t lowBits[16], highBits[16];  // code values in T, in the low / the high half
  __shared__ float partial[kGemvTcWarps][16][kRows + 1];
  __shared__ bool lastBlock;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int64_t r0 = int64_t(blockIdx.x) * kRows;
  const int64_t c0 = int64_t(blockIdx.y) * Tile::kCols;

  // The tile's codes, rows read front to back in 16-byte pieces (long runs of consecutive
  // bytes keep the memory system efficient), straight into shared memory.
  constexpr int kPiecesPerRow = Tile::kCols / 32;
  for (int i = threadIdx.x; i < kRows * kPiecesPerRow; i += blockDim.x) {
    const int row = i / kPiecesPerRow, piece = i % kPiecesPerRow;
    const int64_t r = r0 + row, c = c0 + 32 * piece;
    const bool valid = r < args.outFeatures && c < args.in;
    cpAsync16(smemAddress(tileCodes + row * Tile::kPitch + 16 * piece), valid ? w.codes(r, c) : w.codes(0, 0), valid ? 16 : 0);
  }
  cpAsyncCommit();
  for (int i = threadIdx.x; i < kRows * Tile::kGroups; i += blockDim.x) {
    const int row = i / Tile::kGroups, group = i % Tile::kGroups;
    const int64_t r = r0 + row, c = c0 + int64_t(group) * kGemvTcGroup;
    float alpha = 0.f, beta = 0.f;
    if (r < args.outFeatures && c < args.in) w.scale(r, c, alpha, beta);
    tileAlpha[row][group] = alpha;
    if constexpr (Source::kOffsets) tileBeta[row][group] = beta;
  }
  if (threadIdx.x < 16) {
    const float v = args.table ? args.table[threadIdx.x] : float(threadIdx.x);
    lowBits[threadIdx.x] = packPair<T>(v, 0.f) & 0xffffu;
    highBits[threadIdx.x] = lowBits[threadIdx.x] << 16;
  }
  // The activations of the tile's columns, staged next to the codes (dynamic shared memory,
  // args.rows rows of kCols + 8 values: the pad keeps each quarter-warp's 16-byte reads in
  // distinct banks).
  extern __shared__ __align__(16) uint8_t dynamicSmem[];
  T* tileX = reinterpret_cast<T*>(dynamicSmem);
  constexpr int kXPitch = Tile::kCols + 8;
  constexpr int kXPieces = Tile::kCols / 8;
  for (int i = threadIdx.x; i < args.rows * kXPieces; i += blockDim.x) {
    const int m = i / kXPieces, piece = i % kXPieces;
    const int64_t c = c0 + 8 * piece;
    const bool valid = c < args.in;
    cpAsync16(smemAddress(tileX + m * kXPitch + 8 * piece), valid ? args.x + m * args.xStride + c : args.x, valid ? 16 : 0);
  }
  cpAsyncCommit();
  cpAsyncWaitAll();
  __syncthreads();
  // Activation rows g and g + 8 of the warp's k-th group (zeros past M).
  auto loadActivations = [&](int k, uint4 (&xa)[2], uint4 (&xb)[2]) {
    const int col = (warp + k * kGemvTcWarps) * kGemvTcGroup + 16 * t;
    const bool useA = g < args.rows, useB = TwoRowTiles && g + 8 < args.rows;
#pragma unroll
    for (int q = 0; q < 2; q++) {
      xa[q] = useA ? *reinterpret_cast<const uint4*>(tileX + g * kXPitch + col + 8 * q) : make_uint4(0, 0, 0, 0);
      xb[q] = useB ? *reinterpret_cast<const uint4*>(tileX + (g + 8) * kXPitch + col + 8 * q) : make_uint4(0, 0, 0, 0);
    }
  };
  uint4 xa[2], xb[2];
  loadActivations(0, xa, xb);

  const uint32_t ones = oneBits<T>() * 0x10001u;
  float acc[NTiles][4] = {};
#pragma unroll
  for (int k = 0; k < Groups; k++) {
    uint4 nextA[2], nextB[2];
    if (k + 1 < Groups) loadActivations(k + 1, nextA, nextB);
    const int group = warp + k * kGemvTcWarps;
    float sums[4] = {};  // Σ x over the group for activation rows g (sums[0]) and g + 8 (sums[2])
    if constexpr (Source::kOffsets) {
#pragma unroll
      for (int s = 0; s < 4; s++) {
        mma16816<T>(sums, activationPair(xa, 2 * s), activationPair(xb, 2 * s), activationPair(xa, 2 * s + 1),
                    activationPair(xb, 2 * s + 1), ones, ones);
      }
    }
#pragma unroll
    for (int n = 0; n < NTiles; n++) {
      const uint2 codes = *reinterpret_cast<const uint2*>(tileCodes + (8 * n + g) * Tile::kPitch + group * 32 + 8 * t);
      uint32_t b[8];
      decodeWord(lowBits, highBits, codes.x, reinterpret_cast<uint32_t(&)[4]>(b[0]));
      decodeWord(lowBits, highBits, codes.y, reinterpret_cast<uint32_t(&)[4]>(b[4]));
      float part[4] = {};
#pragma unroll
      for (int s = 0; s < 4; s++) {
        mma16816<T>(part, activationPair(xa, 2 * s), activationPair(xb, 2 * s), activationPair(xa, 2 * s + 1),
                    activationPair(xb, 2 * s + 1), b[2 * s], b[2 * s + 1]);
      }
      // part[0, 2] belong to weight row 8n + 2t, part[1, 3] to row 8n + 2t + 1.
      const float a0 = tileAlpha[8 * n + 2 * t][group], a1 = tileAlpha[8 * n + 2 * t + 1][group];
      acc[n][0] = fmaf(a0, part[0], acc[n][0]);
      acc[n][1] = fmaf(a1, part[1], acc[n][1]);
      acc[n][2] = fmaf(a0, part[2], acc[n][2]);
      acc[n][3] = fmaf(a1, part[3], acc[n][3]);
      if constexpr (Source::kOffsets) {
        const float b0 = tileBeta[8 * n + 2 * t][group], b1 = tileBeta[8 * n + 2 * t + 1][group];
        acc[n][0] = fmaf(b0, sums[0], acc[n][0]);
        acc[n][1] = fmaf(b1, sums[1], acc[n][1]);
        acc[n][2] = fmaf(b0, sums[2], acc[n][2]);
        acc[n][3] = fmaf(b1, sums[3], acc[n][3]);
      }
    }
    if (k + 1 < Groups) {
#pragma unroll
      for (int q = 0; q < 2; q++) xa[q] = nextA[q], xb[q] = nextB[q];
    }
  }

  // acc[n] holds activation rows (g, g + 8) x weight rows 8 n + 2 t + (0, 1) of this block.
#pragma unroll
  for (int n = 0; n < NTiles; n++) {
    partial[warp][g][8 * n + 2 * t] = acc[n][0];
    partial[warp][g][8 * n + 2 * t + 1] = acc[n][1];
    partial[warp][g + 8][8 * n + 2 * t] = acc[n][2];
    partial[warp][g + 8][8 * n + 2 * t + 1] = acc[n][3];
  }
  __syncthreads();
  const int outputs = args.rows * kRows;
  auto blockSum = [&](int m, int n) {
    float sum = 0.f;
#pragma unroll
    for (int v = 0; v < kGemvTcWarps; v++) sum += partial[v][m][n];
    return sum;
  };
  if (args.splits == 1) {
    for (int e = threadIdx.x; e < outputs; e += blockDim.x) {
      const int m = e / kRows, n = e % kRows;
      if (r0 + n < args.outFeatures) args.y[m * args.outFeatures + r0 + n] = Num<T>::store(blockSum(m, n));
    }
    return;
  }
  // Split input dim: publish this block's sums; the last block of the row set adds them all.
  for (int e = threadIdx.x; e < outputs; e += blockDim.x) {
    const int m = e / kRows, n = e % kRows;
    if (r0 + n < args.outFeatures) {
      args.partials[(int64_t(blockIdx.y) * args.rows + m) * args.outFeatures + r0 + n] = blockSum(m, n);
    }
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) lastBlock = atomicAdd(&args.tickets[blockIdx.x], 1u) == unsigned(args.splits - 1);
  __syncthreads();
  if (!lastBlock) return;
  __threadfence();
  for (int e = threadIdx.x; e < outputs; e += blockDim.x) {
    const int m = e / kRows, n = e % kRows;
    if (r0 + n >= args.outFeatures) continue;
    float sum = 0.f;
    for (int s = 0; s < args.splits; s++) sum += __ldcg(args.partials + (int64_t(s) * args.rows + m) * args.outFeatures + r0 + n);
    args.y[m * args.outFeatures + r0 + n] = Num<T>::store(sum);
  }
  if (threadIdx.x == 0) args.tickets[blockIdx.x] = 0;  // ready for the next launch
}

/** Launch geometry of the tensor-core GEMV for a weight of `outFeatures` x `in`. */
struct GemvTcGrid {
  unsigned rowSets;
  int splits;
  size_t dynamicSmem;  // bytes of the activation tile
};

template <typename T, int NTiles, int Groups>
inline GemvTcGrid gemvTcGrid(int64_t outFeatures, int64_t in, int rows) {
  using Tile = GemvTcTile<NTiles, Groups>;
  return {unsigned((outFeatures + Tile::kRows - 1) / Tile::kRows), int((in + Tile::kCols - 1) / Tile::kCols),
          size_t(rows) * (Tile::kCols + 8) * sizeof(T)};
}

}  // namespace blora
