// The tensor-core 4-bit GEMV: y = x · Wᵀ for M <= 16 bfloat16 / float16 activation rows,
// straight from the quantized weight (NF4 / FP4 with a float32 absmax per block, or 4-bit
// integers with alpha / beta per block).
//
// The input dim is walked in groups of G = 32 or 64 columns, each inside one quantization block,
// so the block's scale multiplies the group's float32 sum once instead of every weight:
//   NF4 / FP4: y += absmax · Σ x · table[code];
//   integers:  y += alpha · Σ x · q + beta · Σ x  (Σ x by one more MMA with a ones operand).
// The weight is the MMA's A operand (16 rows per m-tile), the activations its B operand (8 rows
// per n-tile; a lane past M contributes zeros). Lane (g = lane / 4, t = lane % 4) reads, for
// each group, the G / 4 codes at columns G t / 4 .. of weight rows g and g + 8 (one 4- or 8-byte
// load per row) and the same columns of activation row g. MMA step s takes the lane's codes
// 4 s .. 4 s + 3 as its k slots 2t, 2t + 1, 2t + 8, 2t + 9 (the same permutation for both
// operands leaves the sum unchanged), so step s's A registers are whole code bytes: a byte holds
// two consecutive codes, the pair a register takes.
//
// Decoding is one shared-memory read per byte: a table of the 256 byte values' code pairs, in
// the activation dtype (high nibble in the low half), with a copy per lane (entry b of lane l at
// word 32 b + l) so a warp's 32 reads always fall in 32 distinct banks. Building it costs a block
// 32 KB of shared memory and 32 stores a thread.
//
// A block takes sets of 16 weight rows in turn (as many blocks as fit the GPU at once, so the
// table is built once per block); its Warps warps take turns over the groups of a row set,
// Unroll groups a turn whose loads are all issued before any is used. Partial sums meet in
// shared memory and are added in a fixed order (the result does not depend on timing). The
// first turn of the next row set is loaded while the current one's sums are added.
#pragma once

#include <algorithm>

#include "async_copy.cuh"
#include "common.h"
#include "numeric.cuh"
#include "quant_gemm.cuh"

namespace blora {

constexpr int kGemvPairTableWords = 256 * 32;

// The value as computed here, kept in a register: the compiler may not recompute it inside a loop
// from the kernel's parameters (which it otherwise does for a lane's row pointers, at several
// instructions a load).
template <typename V>
__device__ __forceinline__ const V* computedOnce(const V* p) {
  asm volatile("" : "+l"(p));
  return p;
}
__device__ __forceinline__ uint32_t computedOnce(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

// NF4 / FP4 codes with one float32 absmax per block of 2^blockShift elements (>= the group;
// blocks run over the flattened weight, so one may start inside a row).
struct FourBitGroups {
  const uint8_t* packed;
  const float* absmax;
  int64_t in;
  int blockShift;
  static constexpr bool kOffsets = false;
  struct Scales {
    float alpha;
    __device__ __forceinline__ float a() const { return alpha; }
    __device__ __forceinline__ float b() const { return 0.f; }
  };
  // A lane's view of one weight row: its codes from column `col` (even) on, in groups of G.
  struct Row {
    const uint8_t* codes;  // at the lane's column of group 0
    const float* absmax;   // of the block the row starts in
    uint32_t offset;       // the lane's column of group 0 from the start of that block
    int shift;
    template <int G>
    __device__ __forceinline__ const uint8_t* codesOf(int group) const { return codes + group * (G / 2); }
    template <int G>
    __device__ __forceinline__ Scales scalesOf(int group) const { return {__ldg(absmax + ((offset + uint32_t(group) * G) >> shift))}; }
  };
  __device__ __forceinline__ Row row(int64_t r, uint32_t col) const {
    const int64_t start = r * in;  // even: in is
    const uint32_t phase = uint32_t(start) & ((1u << blockShift) - 1u);
    return {computedOnce(packed + (start >> 1) + (col >> 1)), computedOnce(absmax + (start >> blockShift)), computedOnce(phase + col),
            blockShift};
  }
};

// Integer codes (4-bit, high nibble first) with alpha / beta per block of blockRows x 2^colShift
// (>= the group). Scales stay as stored until used, so their loads are not waited for early.
template <typename Scale>
struct IntGroups {
  const uint8_t* packed;
  const Scale* alphas;
  const Scale* betas;
  int64_t in, blockRows, gridCols;
  int colShift;
  static constexpr bool kOffsets = true;
  struct Scales {
    Scale alpha, beta;
    __device__ __forceinline__ float a() const { return scaleValue(alpha); }
    __device__ __forceinline__ float b() const { return scaleValue(beta); }
  };
  struct Row {
    const uint8_t* codes;  // at the lane's column of group 0
    const Scale* alphas;   // of the row's block row
    const Scale* betas;
    uint32_t col;
    int shift;
    template <int G>
    __device__ __forceinline__ const uint8_t* codesOf(int group) const { return codes + group * (G / 2); }
    template <int G>
    __device__ __forceinline__ Scales scalesOf(int group) const {
      const uint32_t block = (col + uint32_t(group) * G) >> shift;
      return {alphas[block], betas[block]};
    }
  };
  __device__ __forceinline__ Row row(int64_t r, uint32_t col) const {
    const int64_t first = (blockRows == 1 ? r : r / blockRows) * gridCols;
    return {computedOnce(packed + ((r * in) >> 1) + (col >> 1)), computedOnce(alphas + first), computedOnce(betas + first), col,
            colShift};
  }
};

/** Everything a launch of the tensor-core GEMV needs besides the weight. */
template <typename T>
struct GemvArgs {
  const T* x;          // [rows, in], row stride xStride, dense along in, 16-byte aligned rows
  int64_t xStride;
  int rows;            // M, 1..16
  const float* table;  // the format's 16 values (NF4 / FP4), or nullptr for integer codes 0..15
  T* y;                // [rows, outFeatures], contiguous
  int64_t outFeatures, in;
};

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

// The G / 8 code bytes of a lane's row in one group (G = 32: one word; G = 64: two).
template <int G>
__device__ __forceinline__ uint2 loadGroupCodes(const uint8_t* p) {
  if constexpr (G == 64) return __ldg(reinterpret_cast<const uint2*>(p));
  else return make_uint2(__ldg(reinterpret_cast<const unsigned*>(p)), 0u);
}

// The code pair of byte b (0..3) of `word`, from the lane's copy of the pair table: word
// 32 * byte + lane, at shared address tableLane + 128 * byte (tableLane: the table's address + 4 lane).
__device__ __forceinline__ uint32_t codePair(uint32_t tableLane, uint32_t word, int b) {
  const uint32_t byte = __byte_perm(word, 0, 0x4440 + b);
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(tableLane + (byte << 7)));
  return v;
}

template <int XTiles, int Warps>
struct GemvTile {
  static constexpr int kCols = 8 * XTiles;  // activation rows a block can hold
  static constexpr size_t kPartialBytes = size_t(Warps) * 16 * kCols * 4;  // dynamic shared memory
};

template <typename T, typename Source, int G, bool TwoXTiles, int Warps, int Unroll>
__global__ void __launch_bounds__(Warps * 32)
    gemvGroupsKernel(GemvArgs<T> args, Source w) {
  constexpr int kXTiles = TwoXTiles ? 2 : 1;
  using Tile = GemvTile<kXTiles, Warps>;
  constexpr int kSteps = G / 16;  // MMA k-steps per group
  constexpr int kXWords = G / 8;  // activation pairs per lane and group
  __shared__ __align__(16) uint32_t pairTable[kGemvPairTableWords];
  extern __shared__ float partial[];  // [warp][activation row][weight row]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int rows = args.rows;
  const int groups = int(args.in / G);
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  const uint32_t tableLane = smemAddress(pairTable) + 4u * lane;
  const uint32_t ones = oneBits<T>() * 0x10001u;
  // Activation row 8 j + g of the lane (past M: row M - 1, which feeds only MMA columns that are
  // never stored, so it needs no zeroing).
  const T* xRow[kXTiles];
#pragma unroll
  for (int j = 0; j < kXTiles; j++) xRow[j] = computedOnce(args.x + min(8 * j + g, rows - 1) * args.xStride + (G / 4) * t);

  // The lane's weight rows g and g + 8 of a row set (past the weight: its last row, whose sums
  // are never written).
  typename Source::Row rowA, rowB;
  auto setRows = [&](int64_t rowSet) {
    rowA = w.row(min(16 * rowSet + g, args.outFeatures - 1), (G / 4) * t);
    rowB = w.row(min(16 * rowSet + g + 8, args.outFeatures - 1), (G / 4) * t);
  };
  // A turn: the codes and scales of a warp's Unroll groups base, base + Warps, ..., all loaded
  // before any is used (a group past the end repeats the last one, unused).
  uint2 codesA[Unroll], codesB[Unroll];
  typename Source::Scales scalesA[Unroll], scalesB[Unroll];
  auto load = [&](int base) {
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      const int group = min(base + u * Warps, groups - 1);
      codesA[u] = loadGroupCodes<G>(rowA.template codesOf<G>(group));
      codesB[u] = loadGroupCodes<G>(rowB.template codesOf<G>(group));
      scalesA[u] = rowA.template scalesOf<G>(group);
      scalesB[u] = rowB.template scalesOf<G>(group);
    }
  };
  // acc[j]: weight rows g, g + 8 x activation rows 8 j + 2 t, 8 j + 2 t + 1 of this warp's groups.
  float acc[kXTiles][4];
  auto compute = [&](int base) {
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      const int group = base + u * Warps;
      if (group >= groups) break;  // the same for the whole warp
      // Activation pairs of the lane's columns: xw[j][p] holds columns 2p, 2p + 1.
      uint32_t xw[kXTiles][kXWords];
#pragma unroll
      for (int j = 0; j < kXTiles; j++) {
#pragma unroll
        for (int q = 0; q < kXWords / 4; q++) {
          const uint4 v = load16(xRow[j] + uint32_t(group) * G + 8 * q);
          xw[j][4 * q] = v.x;
          xw[j][4 * q + 1] = v.y;
          xw[j][4 * q + 2] = v.z;
          xw[j][4 * q + 3] = v.w;
        }
      }
      // Integers: Σ x over the group for activation rows 8j + 2t (sums[j][0]) and 8j + 2t + 1.
      float sums[kXTiles][4] = {};
      if constexpr (Source::kOffsets) {
#pragma unroll
        for (int j = 0; j < kXTiles; j++) {
#pragma unroll
          for (int s = 0; s < kSteps; s++) mma16816<T>(sums[j], ones, ones, ones, ones, xw[j][2 * s], xw[j][2 * s + 1]);
        }
      }
      const uint32_t wordsA[2] = {codesA[u].x, codesA[u].y};
      const uint32_t wordsB[2] = {codesB[u].x, codesB[u].y};
      float part[kXTiles][4] = {};
#pragma unroll
      for (int s = 0; s < kSteps; s++) {
        // Bytes 2s and 2s + 1 of the lane's codes: columns 4s, 4s + 1 and 4s + 2, 4s + 3.
        const int word = s >> 1, b = 2 * (s & 1);
        const uint32_t a0 = codePair(tableLane, wordsA[word], b);
        const uint32_t a2 = codePair(tableLane, wordsA[word], b + 1);
        const uint32_t a1 = codePair(tableLane, wordsB[word], b);
        const uint32_t a3 = codePair(tableLane, wordsB[word], b + 1);
#pragma unroll
        for (int j = 0; j < kXTiles; j++) mma16816<T>(part[j], a0, a1, a2, a3, xw[j][2 * s], xw[j][2 * s + 1]);
      }
      // part[j][0, 1] belong to weight row g, part[j][2, 3] to row g + 8.
      const float alphaA = scalesA[u].a(), alphaB = scalesB[u].a();
#pragma unroll
      for (int j = 0; j < kXTiles; j++) {
        acc[j][0] = fmaf(alphaA, part[j][0], acc[j][0]);
        acc[j][1] = fmaf(alphaA, part[j][1], acc[j][1]);
        acc[j][2] = fmaf(alphaB, part[j][2], acc[j][2]);
        acc[j][3] = fmaf(alphaB, part[j][3], acc[j][3]);
        if constexpr (Source::kOffsets) {
          const float betaA = scalesA[u].b(), betaB = scalesB[u].b();
          acc[j][0] = fmaf(betaA, sums[j][0], acc[j][0]);
          acc[j][1] = fmaf(betaA, sums[j][1], acc[j][1]);
          acc[j][2] = fmaf(betaB, sums[j][0], acc[j][2]);
          acc[j][3] = fmaf(betaB, sums[j][1], acc[j][3]);
        }
      }
    }
  };
  // The block adds its warps' sums in warp order and writes y.
  auto at = [&](int v, int m, int n) -> float& { return partial[(v * Tile::kCols + m) * 16 + n]; };
  auto store = [&](int64_t rowSet) {
    __syncthreads();  // the previous row set's sums are read
#pragma unroll
    for (int j = 0; j < kXTiles; j++) {
      at(warp, 8 * j + 2 * t, g) = acc[j][0];
      at(warp, 8 * j + 2 * t + 1, g) = acc[j][1];
      at(warp, 8 * j + 2 * t, g + 8) = acc[j][2];
      at(warp, 8 * j + 2 * t + 1, g + 8) = acc[j][3];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < rows * 16; e += Warps * 32) {
      const int m = e / 16, n = e % 16;
      float sum = 0.f;
#pragma unroll
      for (int v = 0; v < Warps; v++) sum += at(v, m, n);
      if (16 * rowSet + n < args.outFeatures) args.y[m * args.outFeatures + 16 * rowSet + n] = Num<T>::store(sum);
    }
  };

  // The first turn's loads go out before the pair table is built, so their latency overlaps it.
  int64_t rowSet = blockIdx.x;
  setRows(rowSet);
  if (warp < groups) load(warp);

  // The pair table, 16 bytes (four lanes' copies of one entry) a store: entry (byte, lane) =
  // (value[byte >> 4], value[byte & 15]), the 16 values from lanes 0..15 of each warp.
  const float ownValue = args.table ? __ldg(args.table + (lane & 15)) : float(lane & 15);
  for (int i = threadIdx.x; i < kGemvPairTableWords / 4; i += Warps * 32) {
    const int byte = i >> 3;
    const uint32_t v = packPair<T>(__shfl_sync(0xffffffffu, ownValue, byte >> 4), __shfl_sync(0xffffffffu, ownValue, byte & 15));
    reinterpret_cast<uint4*>(pairTable)[i] = make_uint4(v, v, v, v);
  }
  __syncthreads();

  while (rowSet < rowSets) {
#pragma unroll
    for (int j = 0; j < kXTiles; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    for (int base = warp; base < groups; base += Warps * Unroll) {
      compute(base);
      if (base + Warps * Unroll < groups) load(base + Warps * Unroll);
    }
    // The next row set's first turn is in flight while this one's sums are added.
    const int64_t nextRowSet = rowSet + gridDim.x;
    if (nextRowSet < rowSets) {
      setRows(nextRowSet);
      if (warp < groups) load(warp);
    }
    store(rowSet);
    rowSet = nextRowSet;
  }
}

/** Launches the tensor-core GEMV: as many blocks as fit the GPU at once, at most one per 16 weight rows. */
template <typename T, typename Source, int G, bool TwoXTiles, int Warps, int Unroll>
cudaError_t launchGemvGroupsKernel(const GemvArgs<T>& args, const Source& w, cudaStream_t s) {
  auto kernel = gemvGroupsKernel<T, Source, G, TwoXTiles, Warps, Unroll>;
  constexpr size_t kPartialBytes = GemvTile<TwoXTiles ? 2 : 1, Warps>::kPartialBytes;
  static int residentBlocks = 0;  // on the whole GPU, found at the first launch
  if (residentBlocks == 0) {
    int perSM = 0;
    const cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, kernel, Warps * 32, kPartialBytes);
    if (err != cudaSuccess) return err;
    residentBlocks = std::max(1, perSM) * smCount();
  }
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  kernel<<<unsigned(std::min<int64_t>(rowSets, residentBlocks)), Warps * 32, kPartialBytes, s>>>(args, w);
  return cudaGetLastError();
}

/** The tensor-core GEMV with Warps warps a block, Unroll groups a warp's turn (the addon: 8, 4). */
template <typename T, typename Source, int G, int Warps = 8, int Unroll = 4>
cudaError_t launchGemvGroups(const GemvArgs<T>& args, const Source& w, cudaStream_t s) {
  if (args.rows > 8) return launchGemvGroupsKernel<T, Source, G, true, Warps, Unroll>(args, w, s);
  return launchGemvGroupsKernel<T, Source, G, false, Warps, Unroll>(args, w, s);
}

}  // namespace blora
