// A tensor-core 4-bit GEMV under development: y = x · Wᵀ for M <= 16 bfloat16 / float16
// activation rows, straight from the quantized weight. dev/gemv4.cu checks it against float64
// and times it; the addon does not launch it yet (see docs/benchmarks.md for where it stands).
//
// A block owns 16 MTiles weight rows and 512 Groups input columns. It loads the tile's scales,
// then streams its codes (whole row runs, 16 bytes per cp.async) and activations into shared
// memory in stages of 512 columns, all issued at once; the products of a stage start when it
// has landed. The weight is the MMA's A operand (16 rows per m-tile), the activations its B
// operand (8 rows per n-tile; a lane past M contributes zeros). The input dim is walked in
// groups of 64 columns, one quantization block or a part of one: lane (g = lane / 4,
// t = lane % 4) takes the 16 codes at columns 16 t .. 16 t + 15 of the group for weight rows g
// and g + 8 and the same columns of activation row g. MMA step s takes the lane's columns
// 4 s .. 4 s + 3 as its k slots 2t, 2t + 1, 2t + 8, 2t + 9 (the same permutation for both
// operands leaves the sum unchanged), so every MMA stays inside one block and the block's scale
// waits until its four MMAs are done:
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

// d = a · b with the accumulators starting from zero (one zero register instead of four moves).
template <typename T>
__device__ __forceinline__ void mmaFromZero(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                            uint32_t b1);
template <>
__device__ __forceinline__ void mmaFromZero<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                           uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.f));
}
template <>
__device__ __forceinline__ void mmaFromZero<__half>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                    uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.f));
}

// Waits until the copy groups of stages 0..k have landed (Last = the number of stages - 1).
template <int Last>
__device__ __forceinline__ void waitForStage(int k) {
  if constexpr (Last > 0) {
    if (k == 0) {
      cpAsyncWaitPending<Last>();
      return;
    }
    waitForStage<Last - 1>(k - 1);
  } else {
    cpAsyncWaitPending<0>();
  }
}

// MTiles: m-tiles of 16 weight rows per block; Groups: groups of 64 columns per warp, so a
// block's tile is 16 MTiles rows x 512 Groups columns. Dynamic shared memory holds the codes
// (row pitch kCols / 2 + 32 bytes: the 8-byte reads of each half-warp, 4 rows x 4 lanes, fall in
// distinct banks), the scales and offsets [kRows][kGroups], and the activations (pitch kCols + 8
// values: each quarter-warp's 16-byte reads fall in distinct banks). After the products, the
// codes' space holds the warps' partial sums.
template <int MTiles, int Groups>
struct GemvTcTile {
  static constexpr int kRows = 16 * MTiles;
  static constexpr int kGroups = kGemvTcWarps * Groups;
  static constexpr int kCols = kGroups * kGemvTcGroup;
  static constexpr int kPitch = kCols / 2 + 32;
  static constexpr int kCodeBytes = kRows * kPitch;
  static constexpr int kScaleBytes = kRows * kGroups * 4;
  static constexpr int kXPitch = kCols + 8;
  static constexpr int kPartialPitch = kRows + 1;
  static_assert(kGemvTcWarps * 16 * kPartialPitch * 4 <= kCodeBytes, "the partial sums must fit in the codes' space");
  static size_t bytes(int rows, size_t valueSize) { return kCodeBytes + 2 * kScaleBytes + size_t(rows) * kXPitch * valueSize; }
};

// TwoXTiles: M > 8 (activation rows 8..15 as a second MMA n-tile).
template <typename T, typename Source, int MTiles, int Groups, bool TwoXTiles>
__global__ void __launch_bounds__(kGemvTcWarps * 32)
    gemvTcKernel(GemvTcArgs<T> args, Source w) {
  using Tile = GemvTcTile<MTiles, Groups>;
  constexpr int kRows = Tile::kRows;
  constexpr int kXTiles = TwoXTiles ? 2 : 1;
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* tileCodes = smem;
  float* tileAlpha = reinterpret_cast<float*>(smem + Tile::kCodeBytes);
  float* tileBeta = tileAlpha + kRows * Tile::kGroups;
  T* tileX = reinterpret_cast<T*>(smem + Tile::kCodeBytes + 2 * Tile::kScaleBytes);
  __shared__ uint32_t lowBits[16], highBits[16];  // code values in T, in the low / the high half
  __shared__ bool lastBlock;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int rows = args.rows;
  const int64_t r0 = int64_t(blockIdx.x) * kRows;
  const int64_t c0 = int64_t(blockIdx.y) * Tile::kCols;

  // The scales first: loads issued after the codes would wait behind all of them.
  constexpr int kScaleItems = (kRows * Tile::kGroups + kGemvTcWarps * 32 - 1) / (kGemvTcWarps * 32);
  float alpha[kScaleItems], beta[kScaleItems];
#pragma unroll
  for (int q = 0; q < kScaleItems; q++) {
    const int i = threadIdx.x + q * kGemvTcWarps * 32;
    const int row = i / Tile::kGroups, group = i % Tile::kGroups;
    const int64_t r = r0 + row, c = c0 + int64_t(group) * kGemvTcGroup;
    alpha[q] = beta[q] = 0.f;
    if (i < kRows * Tile::kGroups && r < args.outFeatures && c < args.in) w.scale(r, c, alpha[q], beta[q]);
  }
  // The tile's codes, whole row runs in 16-byte pieces (long runs of consecutive bytes keep
  // the memory system efficient), and its activations, straight into shared memory: one
  // cp.async group per stage of 512 columns (group k of every warp), all issued at once, so
  // the products of a stage start as soon as it has landed while later ones are on their way.
  constexpr int kStageCols = kGemvTcWarps * kGemvTcGroup;
  constexpr int kPiecesPerRow = kStageCols / 32;
  constexpr int kXPieces = kStageCols / 8;
#pragma unroll
  for (int k = 0; k < Groups; k++) {
    for (int i = threadIdx.x; i < kRows * kPiecesPerRow; i += blockDim.x) {
      const int row = i / kPiecesPerRow, piece = k * kPiecesPerRow + i % kPiecesPerRow;
      const int64_t r = r0 + row, c = c0 + 32 * piece;
      const bool valid = r < args.outFeatures && c < args.in;
      cpAsync16(smemAddress(tileCodes + row * Tile::kPitch + 16 * piece), valid ? w.codes(r, c) : w.codes(0, 0), valid ? 16 : 0);
    }
    for (int i = threadIdx.x; i < rows * kXPieces; i += blockDim.x) {
      const int m = i / kXPieces, piece = k * kXPieces + i % kXPieces;
      const int64_t c = c0 + 8 * piece;
      const bool valid = c < args.in;
      cpAsync16(smemAddress(tileX + m * Tile::kXPitch + 8 * piece), valid ? args.x + m * args.xStride + c : args.x, valid ? 16 : 0);
    }
    cpAsyncCommit();
  }
  for (int q = 0; q < kScaleItems; q++) {
    const int i = threadIdx.x + q * kGemvTcWarps * 32;
    if (i >= kRows * Tile::kGroups) break;
    tileAlpha[i] = alpha[q];
    if constexpr (Source::kOffsets) tileBeta[i] = beta[q];
  }
  if (threadIdx.x < 16) {
    const float v = args.table ? args.table[threadIdx.x] : float(threadIdx.x);
    lowBits[threadIdx.x] = packPair<T>(v, 0.f) & 0xffffu;
    highBits[threadIdx.x] = lowBits[threadIdx.x] << 16;
  }

  // Lane (g, t): codes of weight rows g and g + 8 of each m-tile, activations of rows g and
  // g + 8 (a lane past M reads row M - 1 and zeroes it: no divergent loads).
  const uint8_t* codesAt = tileCodes + g * Tile::kPitch + warp * 32 + 8 * t;
  const T* xAt[kXTiles];
  bool xUsed[kXTiles];
#pragma unroll
  for (int j = 0; j < kXTiles; j++) {
    xUsed[j] = 8 * j + g < rows;
    xAt[j] = tileX + min(8 * j + g, rows - 1) * Tile::kXPitch + warp * kGemvTcGroup + 16 * t;
  }
  const float* alphaAt = tileAlpha + g * Tile::kGroups + warp;
  const float* betaAt = tileBeta + g * Tile::kGroups + warp;
  const uint32_t ones = oneBits<T>() * 0x10001u;
  float acc[MTiles][kXTiles][4] = {};
#pragma unroll
  for (int k = 0; k < Groups; k++) {
    waitForStage<Groups - 1>(k);  // stage k of every thread has landed
    __syncthreads();
    // Activation words: xw[j][p] holds columns 2p, 2p + 1 of the lane's 16 (zero past M).
    uint32_t xw[kXTiles][8];
#pragma unroll
    for (int j = 0; j < kXTiles; j++) {
      const uint4 lo = *reinterpret_cast<const uint4*>(xAt[j] + k * kGemvTcWarps * kGemvTcGroup);
      const uint4 hi = *reinterpret_cast<const uint4*>(xAt[j] + k * kGemvTcWarps * kGemvTcGroup + 8);
      const uint32_t words[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
      for (int p = 0; p < 8; p++) xw[j][p] = xUsed[j] ? words[p] : 0u;
    }
    // Integers: Σ x over the group for activation rows 8j + 2t (sums[j][0]) and 8j + 2t + 1 (sums[j][1]).
    float sums[kXTiles][4];
    if constexpr (Source::kOffsets) {
#pragma unroll
      for (int j = 0; j < kXTiles; j++) {
        mmaFromZero<T>(sums[j], ones, ones, ones, ones, xw[j][0], xw[j][1]);
#pragma unroll
        for (int s = 1; s < 4; s++) mma16816<T>(sums[j], ones, ones, ones, ones, xw[j][2 * s], xw[j][2 * s + 1]);
      }
    }
#pragma unroll
    for (int mt = 0; mt < MTiles; mt++) {
      const int rowOffset = 16 * mt * Tile::kPitch + k * kGemvTcWarps * 32;
      const uint2 codesA = *reinterpret_cast<const uint2*>(codesAt + rowOffset);
      const uint2 codesB = *reinterpret_cast<const uint2*>(codesAt + rowOffset + 8 * Tile::kPitch);
      uint32_t pa[8], pb[8];
      decodeWord(lowBits, highBits, codesA.x, reinterpret_cast<uint32_t(&)[4]>(pa[0]));
      decodeWord(lowBits, highBits, codesA.y, reinterpret_cast<uint32_t(&)[4]>(pa[4]));
      decodeWord(lowBits, highBits, codesB.x, reinterpret_cast<uint32_t(&)[4]>(pb[0]));
      decodeWord(lowBits, highBits, codesB.y, reinterpret_cast<uint32_t(&)[4]>(pb[4]));
      const int scaleOffset = 16 * mt * Tile::kGroups + k * kGemvTcWarps;
      const float alphaA = alphaAt[scaleOffset], alphaB = alphaAt[scaleOffset + 8 * Tile::kGroups];
#pragma unroll
      for (int j = 0; j < kXTiles; j++) {
        float part[4];
        mmaFromZero<T>(part, pa[0], pb[0], pa[1], pb[1], xw[j][0], xw[j][1]);
#pragma unroll
        for (int s = 1; s < 4; s++) mma16816<T>(part, pa[2 * s], pb[2 * s], pa[2 * s + 1], pb[2 * s + 1], xw[j][2 * s], xw[j][2 * s + 1]);
        // part[0, 1] belong to weight row g, part[2, 3] to row g + 8.
        acc[mt][j][0] = fmaf(alphaA, part[0], acc[mt][j][0]);
        acc[mt][j][1] = fmaf(alphaA, part[1], acc[mt][j][1]);
        acc[mt][j][2] = fmaf(alphaB, part[2], acc[mt][j][2]);
        acc[mt][j][3] = fmaf(alphaB, part[3], acc[mt][j][3]);
        if constexpr (Source::kOffsets) {
          const float betaA = betaAt[scaleOffset], betaB = betaAt[scaleOffset + 8 * Tile::kGroups];
          acc[mt][j][0] = fmaf(betaA, sums[j][0], acc[mt][j][0]);
          acc[mt][j][1] = fmaf(betaA, sums[j][1], acc[mt][j][1]);
          acc[mt][j][2] = fmaf(betaB, sums[j][0], acc[mt][j][2]);
          acc[mt][j][3] = fmaf(betaB, sums[j][1], acc[mt][j][3]);
        }
      }
    }
  }

  // acc[mt][j]: weight rows 16 mt + g (+ 8) x activation rows 8 j + 2 t (+ 1). The codes are
  // read: their space takes the partial sums [warp][activation row][weight row].
  __syncthreads();
  float* partial = reinterpret_cast<float*>(smem);
  auto at = [&](int v, int m, int n) -> float& { return partial[(v * 16 + m) * Tile::kPartialPitch + n]; };
#pragma unroll
  for (int mt = 0; mt < MTiles; mt++) {
#pragma unroll
    for (int j = 0; j < kXTiles; j++) {
      at(warp, 8 * j + 2 * t, 16 * mt + g) = acc[mt][j][0];
      at(warp, 8 * j + 2 * t + 1, 16 * mt + g) = acc[mt][j][1];
      at(warp, 8 * j + 2 * t, 16 * mt + g + 8) = acc[mt][j][2];
      at(warp, 8 * j + 2 * t + 1, 16 * mt + g + 8) = acc[mt][j][3];
    }
  }
  __syncthreads();
  const int outputs = rows * kRows;
  auto blockSum = [&](int m, int n) {
    float sum = 0.f;
#pragma unroll
    for (int v = 0; v < kGemvTcWarps; v++) sum += at(v, m, n);
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
      args.partials[(int64_t(blockIdx.y) * rows + m) * args.outFeatures + r0 + n] = blockSum(m, n);
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
    for (int s = 0; s < args.splits; s++) sum += __ldcg(args.partials + (int64_t(s) * rows + m) * args.outFeatures + r0 + n);
    args.y[m * args.outFeatures + r0 + n] = Num<T>::store(sum);
  }
  if (threadIdx.x == 0) args.tickets[blockIdx.x] = 0;  // ready for the next launch
}

/** Launch geometry of the tensor-core GEMV for a weight of `outFeatures` x `in` and M = `rows`. */
struct GemvTcGrid {
  unsigned rowSets;
  int splits;
  size_t sharedBytes;  // dynamic shared memory
};

template <typename T, int MTiles, int Groups>
inline GemvTcGrid gemvTcGrid(int64_t outFeatures, int64_t in, int rows) {
  using Tile = GemvTcTile<MTiles, Groups>;
  return {unsigned((outFeatures + Tile::kRows - 1) / Tile::kRows), int((in + Tile::kCols - 1) / Tile::kCols),
          Tile::bytes(rows, sizeof(T))};
}

}  // namespace blora
