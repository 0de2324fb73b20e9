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
// NF4 / FP4 decoding is one shared-memory read per byte: a table of the 256 byte values' code
// pairs, in the activation dtype (high nibble in the low half), with a copy per lane (entry b of
// lane l at word 32 b + l) so a warp's 32 reads always fall in 32 distinct banks. Building it
// costs a block 32 KB of shared memory and 32 stores a thread. Integer codes need no table: OR-ed
// into the bits of 128 (bfloat16) or 1024 (float16) they are that number + q exactly, one LOP3 a
// pair; the bias comes off with Σ x, and the activation pairs are permuted to the nibble order.
//
// A block takes sets of 16 weight rows in turn (as many blocks as fit the GPU at once, so the
// table is built once per block); its Warps warps take turns over the groups of a row set,
// Unroll consecutive groups a turn whose loads are all issued before any is used (where the rows
// hold whole turns, a row's Unroll scales are one load). Partial sums meet in shared memory and
// are added in a fixed order (the result does not depend on timing), with the epilogue term if
// any (GemvArgs::add; a low-rank one's dot products are formed at the start of the row set,
// lowRankTerms). The first turn of the next row set is loaded while the current one's sums are
// added (or, Ahead, every warp loads a turn ahead of the one it computes). The addon runs 8 warps
// x 4 groups, or 16 x 2 when there are fewer row sets than resident blocks (launchGemvGroups).
//
// Launched as a programmatic dependent launch (GemvOverlap), the GEMV's blocks start while the
// kernel before it finishes: the launch gap, and for a settled weight the table build and the
// first weight loads, overlap that kernel's tail (on an H200, 4096 x 4096 NF4 tiles at M = 1:
// 5.9 -> 4.6 us between GEMVs).
//
// A source (quant_gemv_sources.cuh: FourBitGroups, IntGroups, FourBitTiles) gives each lane its
// two rows of a row set, so a weight stored in another layout only needs a source of its own.
//
// What bounds it (ncu, NF4 11008 x 4096, M = 1, on an H200): the L1 data pipe, busy ~90 % of
// the cycles the SMs are active: the code loads touch 8 rows (8 lines) per instruction, and the
// table reads are one wavefront per 32 code bytes. With the weight in L2 it runs only ~10 %
// faster, so it is not waiting on memory bandwidth. The same NF4 weight in the tile layout,
// where a warp's code load is 512 contiguous bytes, runs 17-24 % faster (dev/gemv4, `tiles`), and
// is bound by load latency with ~6 warps a scheduler: loading a turn ahead, the activations
// through shared memory and independent MMA chains across a turn's groups each changed < 5 %.
// At 16 rows (ncu, 11008 x 4096) a quarter of the stall samples were each group's first MMA
// waiting for its activations, from L2 where L1 had lost them; the tile launches of 9-16 rows load
// them a group ahead (PrefetchX, 3-11 % faster there; at M = 1 and from the bitsandbytes layout it
// costs more in registers than it saves).
// The ceiling for it is a kernel that only reads the weight after waiting for the kernel before
// (as the GEMV waits for its activations): 64 % of copy at 4096 x 4096, 83 % at the 11008 shapes
// on an H200; the shipped kernel is at 70-79 % of that in time (dev/gemv4, docs/gemv.md). A
// read-only kernel that copies its settled share into shared memory before the wait goes past it
// (85-90 %), but a GEMV built so, or one staging only its later turns, was slower: all of its
// decoding then comes after the wait (docs/gemv.md).
#pragma once

#include <algorithm>
#include <type_traits>

#include "async_copy.cuh"
#include "common.h"
#include "dependent_launch.cuh"
#include "numeric.cuh"
#include "quant_gemm.cuh"
#include "quant_gemv_sources.cuh"

namespace blora {

constexpr int kGemvPairTableWords = 256 * 32;

/**
 * How a launch of the tensor-core GEMV follows the kernels ahead of it in the stream. kNone: an
 * ordinary launch. kLaunch: a programmatic dependent launch, so the GPU starts its blocks while the
 * kernel before finishes and each waits for that kernel's completion before reading anything
 * (always correct; it hides the launch gap). kSettled: the same, but the blocks build the code
 * table and load their first weight turn before waiting: only for a weight, scales and table that
 * the kernel just before does not write.
 */
enum class GemvOverlap { kNone, kLaunch, kSettled };

/** Everything a launch of the tensor-core GEMV needs besides the weight. */
template <typename T>
struct GemvArgs {
  const T* x;          // [rows, in], row stride xStride, dense along in, 16-byte aligned rows
  int64_t xStride;
  int rows;            // M, 1..16
  const float* table;  // the format's 16 values (NF4 / FP4), or nullptr for integer codes 0..15
  T* y;                // [rows, outFeatures], contiguous
  int64_t outFeatures, in;
  GemvOverlap overlap = GemvOverlap::kNone;
  EpilogueAddend add{};  // added to each sum before its one rounding (values null: nothing); rows as y's
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

// Integer codes enter the MMA as the 16-bit value kBias + q, made by OR-ing the code into the
// bits of kBias (the values' spacing there is 1, so every one is exact): no table. The bias comes
// off with the group's Σ x: alpha Σ x (kBias + q) + (beta - kBias alpha) Σ x.
template <typename T>
struct IntBias;
template <>
struct IntBias<__nv_bfloat16> {
  static constexpr uint32_t kBits = 0x43004300u;  // 128, twice
  static constexpr float kValue = 128.f;
};
template <>
struct IntBias<__half> {
  static constexpr uint32_t kBits = 0x64006400u;  // 1024, twice
  static constexpr float kValue = 1024.f;
};

// (word >> Shift) & 0x000F000F | bias: two codes as a 16-bit pair (one LOP3 after the shift).
template <int Shift>
__device__ __forceinline__ uint32_t biasedNibbles(uint32_t word, uint32_t bias) {
  uint32_t v;
  asm("lop3.b32 %0, %1, 0x000F000F, %2, 0xEA;\n" : "=r"(v) : "r"(word >> Shift), "r"(bias));
  return v;
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
  static constexpr int kLowRankFloats = 16 * kCols;  // a row set's low-rank terms, [activation row][weight row]
  // Dynamic shared memory: the warps' partial sums, then two buffers of low-rank terms.
  static constexpr size_t kPartialBytes = size_t(Warps) * 16 * kCols * 4 + 2 * kLowRankFloats * 4;
};

// A low-rank epilogue term (EpilogueAddend::factor) of row set `rowSet` into `terms`
// ([activation row][weight row]): scale * (values[m] . factor[feature / lambda]) for each of the
// row set's outputs, a warp an output at a time, its lanes splitting the rank, summed in float32.
// Done at the start of the row set, so that its loads overlap the weight's.
template <typename T, int Warps>
__device__ __forceinline__ void lowRankTerms(float* terms, const GemvArgs<T>& args, int64_t rowSet) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const EpilogueAddend& add = args.add;
  for (int e = warp; e < args.rows * 16; e += Warps) {
    const int m = e / 16, n = e % 16;
    const int64_t feature = 16 * rowSet + n;
    float sum = 0.f;
    if (feature < args.outFeatures) {
      const float* v = add.values + m * add.stride;
      const float* f = add.factor + int64_t(int(feature) / add.lambda) * add.stride;
      for (int64_t k = lane; k < add.stride; k += 32) sum = fmaf(__ldg(v + k), __ldg(f + k), sum);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) terms[e] = __fmul_rn(add.scale, sum);
  }
}

// A lane's activation rows 8 j + g (past M: row M - 1, which feeds only MMA columns that are never
// stored, so it needs no zeroing), at its first column.
template <typename T, int G, int XTiles>
struct GemvActivations {
  const T* row[XTiles];

  __device__ __forceinline__ explicit GemvActivations(const GemvArgs<T>& args) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < XTiles; j++) row[j] = computedOnce(args.x + min(8 * j + g, args.rows - 1) * args.xStride + (G / 4) * t);
  }
  // The pairs of the lane's columns in `group`: xw[j][p] holds columns 2p, 2p + 1.
  __device__ __forceinline__ void load(int group, uint32_t (&xw)[XTiles][G / 8]) const {
#pragma unroll
    for (int j = 0; j < XTiles; j++) {
#pragma unroll
      for (int q = 0; q < G / 32; q++) {
        const uint4 v = load16(row[j] + uint32_t(group) * G + 8 * q);
        xw[j][4 * q] = v.x;
        xw[j][4 * q + 1] = v.y;
        xw[j][4 * q + 2] = v.z;
        xw[j][4 * q + 3] = v.w;
      }
    }
  }
};

// A warp's turn: the codes and scales of Unroll consecutive groups of its two weight rows.
template <typename Source, int Unroll>
struct GemvTurn {
  uint2 codesA[Unroll], codesB[Unroll];
  typename Source::Scales scalesA[Unroll], scalesB[Unroll];
};

// Adds one group (turn entry u, with its activations xw) of weight rows g, g + 8 to acc[j]
// (activation rows 8 j + 2 t, 8 j + 2 t + 1): the codes decoded into MMA registers, their float32
// sums scaled once.
template <typename T, typename Source, int G, int XTiles, int Unroll>
__device__ __forceinline__ void accumulateGroup(float (&acc)[XTiles][4], const GemvTurn<Source, Unroll>& turn, int u,
                                                const uint32_t (&xw)[XTiles][G / 8], uint32_t tableLane) {
  constexpr int kSteps = G / 16;  // MMA k-steps per group
  // Integers: Σ x over the group for activation rows 8j + 2t (sums[j][0]) and 8j + 2t + 1.
  float sums[XTiles][4] = {};
  if constexpr (Source::kOffsets) {
    const uint32_t ones = oneBits<T>() * 0x10001u;
#pragma unroll
    for (int j = 0; j < XTiles; j++) {
#pragma unroll
      for (int s = 0; s < kSteps; s++) mma16816<T>(sums[j], ones, ones, ones, ones, xw[j][2 * s], xw[j][2 * s + 1]);
    }
  }
  const uint32_t wordsA[2] = {turn.codesA[u].x, turn.codesA[u].y};
  const uint32_t wordsB[2] = {turn.codesB[u].x, turn.codesB[u].y};
  float part[XTiles][4] = {};
#pragma unroll
  for (int s = 0; s < kSteps; s++) {
    const int word = s >> 1, half = s & 1;
    if constexpr (!Source::kOffsets) {
      // Bytes 2s and 2s + 1 of the lane's codes: columns 4s, 4s + 1 and 4s + 2, 4s + 3.
      const uint32_t a0 = codePair(tableLane, wordsA[word], 2 * half);
      const uint32_t a2 = codePair(tableLane, wordsA[word], 2 * half + 1);
      const uint32_t a1 = codePair(tableLane, wordsB[word], 2 * half);
      const uint32_t a3 = codePair(tableLane, wordsB[word], 2 * half + 1);
#pragma unroll
      for (int j = 0; j < XTiles; j++) mma16816<T>(part[j], a0, a1, a2, a3, xw[j][2 * s], xw[j][2 * s + 1]);
    } else {
      // A word's nibbles (high nibble first) are columns 1 0 3 2 5 4 7 6 of its 8: masking
      // 0x000F000F after a shift of 4, 0, 12, 8 pairs columns (0, 4), (1, 5), (2, 6), (3, 7);
      // step s takes two of those pairs and the activation pairs made to match.
      const uint32_t bias = IntBias<T>::kBits;
      const uint32_t a0 = half ? biasedNibbles<12>(wordsA[word], bias) : biasedNibbles<4>(wordsA[word], bias);
      const uint32_t a2 = half ? biasedNibbles<8>(wordsA[word], bias) : biasedNibbles<0>(wordsA[word], bias);
      const uint32_t a1 = half ? biasedNibbles<12>(wordsB[word], bias) : biasedNibbles<4>(wordsB[word], bias);
      const uint32_t a3 = half ? biasedNibbles<8>(wordsB[word], bias) : biasedNibbles<0>(wordsB[word], bias);
#pragma unroll
      for (int j = 0; j < XTiles; j++) {
        const uint32_t lo = xw[j][4 * word + half], hi = xw[j][4 * word + 2 + half];  // columns (c, c + 1), (c + 4, c + 5)
        mma16816<T>(part[j], a0, a1, a2, a3, __byte_perm(lo, hi, 0x5410), __byte_perm(lo, hi, 0x7632));
      }
    }
  }
  // part[j][0, 1] belong to weight row g, part[j][2, 3] to row g + 8.
  const typename Source::Scales &scalesA = turn.scalesA[u], &scalesB = turn.scalesB[u];
  const float alphaA = scalesA.a(), alphaB = scalesB.a();
#pragma unroll
  for (int j = 0; j < XTiles; j++) {
    acc[j][0] = fmaf(alphaA, part[j][0], acc[j][0]);
    acc[j][1] = fmaf(alphaA, part[j][1], acc[j][1]);
    acc[j][2] = fmaf(alphaB, part[j][2], acc[j][2]);
    acc[j][3] = fmaf(alphaB, part[j][3], acc[j][3]);
    if constexpr (Source::kOffsets) {
      const float betaA = fmaf(-IntBias<T>::kValue, alphaA, scalesA.b());
      const float betaB = fmaf(-IntBias<T>::kValue, alphaB, scalesB.b());
      acc[j][0] = fmaf(betaA, sums[j][0], acc[j][0]);
      acc[j][1] = fmaf(betaA, sums[j][1], acc[j][1]);
      acc[j][2] = fmaf(betaB, sums[j][0], acc[j][2]);
      acc[j][3] = fmaf(betaB, sums[j][1], acc[j][3]);
    }
  }
}

// The block adds its warps' sums of a row set in warp order (partial: [warp][activation row]
// [weight row]), adds the epilogue term if any and writes y. Every thread of the block calls it.
// lowRank: the row set's low-rank terms (lowRankTerms), read when the addend has a factor.
template <typename T, int XTiles, int Warps>
__device__ __forceinline__ void storeRowSet(float* partial, const float (&acc)[XTiles][4], const GemvArgs<T>& args, int64_t rowSet,
                                            const float* lowRank) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  auto at = [&](int v, int m, int n) -> float& { return partial[(v * GemvTile<XTiles, Warps>::kCols + m) * 16 + n]; };
  __syncthreads();  // the previous row set's sums are read
#pragma unroll
  for (int j = 0; j < XTiles; j++) {
    at(warp, 8 * j + 2 * t, g) = acc[j][0];
    at(warp, 8 * j + 2 * t + 1, g) = acc[j][1];
    at(warp, 8 * j + 2 * t, g + 8) = acc[j][2];
    at(warp, 8 * j + 2 * t + 1, g + 8) = acc[j][3];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < args.rows * 16; e += Warps * 32) {
    const int m = e / 16, n = e % 16;
    float sum = 0.f;
#pragma unroll
    for (int v = 0; v < Warps; v++) sum += at(v, m, n);
    const int64_t feature = 16 * rowSet + n;
    if (feature < args.outFeatures) {
      if (args.add.values) sum += args.add.factor ? lowRank[e] : args.add.at(m, int(feature));
      args.y[m * args.outFeatures + feature] = Num<T>::store(sum);
    }
  }
}

// The pair table, 16 bytes (four lanes' copies of one entry) a store: entry (byte, lane) =
// (value[byte >> 4], value[byte & 15]), ownValue: value[lane % 16].
template <typename T, int Threads>
__device__ __forceinline__ void buildPairTable(uint32_t* pairTable, float ownValue) {
  for (int i = threadIdx.x; i < kGemvPairTableWords / 4; i += Threads) {
    const int byte = i >> 3;
    const uint32_t v = packPair<T>(__shfl_sync(0xffffffffu, ownValue, byte >> 4), __shfl_sync(0xffffffffu, ownValue, byte & 15));
    reinterpret_cast<uint4*>(pairTable)[i] = make_uint4(v, v, v, v);
  }
}

// The shape of one launch of the tensor-core GEMV. Ahead: each warp keeps two turns in registers
// and issues the next turn's loads before it decodes the current one (otherwise a warp's loads
// go out only once the turn before is done, and other warps must hide their latency).
// PrefetchX: each warp loads the activations of its next group before it decodes the current one
// (otherwise every group's first MMA waits for its activations, from L2 where L1 lost them).
template <int Warps_, int Unroll_, int MinBlocks_, bool Ahead_ = false, bool PrefetchX_ = false>
struct GemvShape {
  static constexpr int Warps = Warps_, Unroll = Unroll_, MinBlocks = MinBlocks_;
  static constexpr bool Ahead = Ahead_, PrefetchX = PrefetchX_;
};

// Programmatic dependent launch (GemvArgs::overlap; dependent_launch.cuh): the kernel waits for the
// kernels before it, then lets the next one start. Letting it start only after the wait keeps
// kSettled correct: when a kernel starts, every kernel but the one just before it is complete.

// Settled: launched with GemvOverlap::kSettled (a template parameter, so that each kernel has one
// straight prologue; with the choice made at run time the compiler kept both orders' registers).
template <typename T, typename Source, int G, bool TwoXTiles, typename Shape, bool Settled>
__global__ void __launch_bounds__(Shape::Warps * 32, Shape::MinBlocks)
    gemvGroupsKernel(GemvArgs<T> args, Source w) {
  constexpr int kWarps = Shape::Warps, kUnroll = Shape::Unroll;
  constexpr int kXTiles = TwoXTiles ? 2 : 1;
  constexpr int kStep = kWarps * kUnroll;  // groups between a warp's turns
  constexpr bool kTable = !Source::kOffsets;  // NF4 / FP4 decode through the pair table
  __shared__ __align__(16) uint32_t pairTable[kTable ? kGemvPairTableWords : 4];
  extern __shared__ float partial[];  // GemvTile::kPartialBytes: partial sums, then the low-rank terms
  float* const lowRankBuffers = partial + kWarps * 16 * GemvTile<kXTiles, kWarps>::kCols;
  // A row set's low-rank terms, in the buffer of its parity (the next row set's are written while this one's may still be read).
  int lowRankParity = 0;
  auto lowRankStart = [&](int64_t set) -> const float* {
    float* terms = lowRankBuffers + lowRankParity * GemvTile<kXTiles, kWarps>::kLowRankFloats;
    lowRankParity ^= 1;
    if (args.add.factor) lowRankTerms<T, kWarps>(terms, args, set);
    return terms;
  };

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int groups = int(args.in / G);
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  if constexpr (!Settled) dependentKernelBegins();  // returns at once without a dependent launch
  // The pair table is built from the 16 code values, fetched first so they do not queue behind the weight's loads.
  const float ownValue = kTable ? __ldg(args.table + (lane & 15)) : 0.f;
  const uint32_t tableLane = computedOnce(smemAddress(pairTable) + 4u * lane);
  const GemvActivations<T, G, kXTiles> x(args);

  // The lane's weight rows g and g + 8 of the row set being loaded.
  decltype(w.template pair<G>(0, 0, 0, 0)) rows;
  auto setRows = [&](int64_t rowSet) { rows = w.template pair<G>(rowSet, g, t, args.outFeatures); };
  using Turn = GemvTurn<Source, kUnroll>;
  // A turn's groups base, base + 1, ..., all loaded before any is used (a group past the end
  // repeats the last one, unused). Consecutive, so a row's Unroll scales are one load where they
  // line up (Source::vectorScales).
  auto load = [&](Turn& turn, int base) {
#pragma unroll
    for (int u = 0; u < kUnroll; u++) rows.template codes<G>(min(base + u, groups - 1), turn.codesA[u], turn.codesB[u]);
    rows.template scales<G, kUnroll>(base, groups, turn.scalesA, turn.scalesB);
  };
  const bool hasTurns = warp * kUnroll < groups;  // the same for every row set
  float acc[kXTiles][4];
  // PrefetchX: the activations of the warp's current group in xw[0] at the start of a turn, its
  // next group's loading into the other while the current one is decoded.
  uint32_t xw[Shape::PrefetchX ? 2 : 1][kXTiles][G / 8];
  auto compute = [&](const Turn& turn, int base) {
    if constexpr (Shape::PrefetchX) {
      // The warp's next turn starts at base + kStep, or at its first group in the next row set.
      const int nextTurn = base + kStep < groups ? base + kStep : warp * kUnroll;
      int done = 0;
#pragma unroll
      for (int u = 0; u < kUnroll; u++) {
        if (base + u >= groups) break;  // the same for the whole warp
        x.load(u + 1 < kUnroll && base + u + 1 < groups ? base + u + 1 : nextTurn, xw[(u + 1) & 1]);
        accumulateGroup<T, Source, G>(acc, turn, u, xw[u & 1], tableLane);
        done = u + 1;
      }
      if (done & 1) {  // a short last turn: the next turn's activations went into xw[1]
#pragma unroll
        for (int j = 0; j < kXTiles; j++) {
#pragma unroll
          for (int p = 0; p < G / 8; p++) xw[0][j][p] = xw[1][j][p];
        }
      }
    } else {
#pragma unroll
      for (int u = 0; u < kUnroll; u++) {
        if (base + u >= groups) break;  // the same for the whole warp
        x.load(base + u, xw[0]);
        accumulateGroup<T, Source, G>(acc, turn, u, xw[0], tableLane);
      }
    }
  };
  // PrefetchX: the warp's first group's activations (after prepareBlock, which waits for the kernels before when settled).
  auto firstActivations = [&] {
    if constexpr (Shape::PrefetchX) {
      if (hasTurns) x.load(warp * kUnroll, xw[0]);
    }
  };
  // Before the first turn is computed: the first turn's loads out (first, so that their latency
  // overlaps the rest), the pair table built, and (settled) the kernels before done, so that the
  // activations are theirs.
  auto prepareBlock = [&] {
    if constexpr (kTable) buildPairTable<T, kWarps * 32>(pairTable, ownValue);
    if constexpr (Settled) dependentKernelBegins();
    if constexpr (kTable) __syncthreads();
  };

  int64_t rowSet = blockIdx.x;
  if constexpr (Shape::Ahead) {
    // The load cursor runs one turn ahead of the computing, across row sets.
    int64_t loadSet = rowSet;
    int loadBase = warp * kUnroll;
    auto loadNext = [&](Turn& turn) {
      if (!hasTurns || loadSet >= rowSets) return;
      load(turn, loadBase);
      loadBase += kStep;
      if (loadBase >= groups) {
        loadBase = warp * kUnroll;
        loadSet += gridDim.x;
        if (loadSet < rowSets) setRows(loadSet);
      }
    };
    // A row set whose first turn is in `first`, the turns alternating between the two; true
    // when the next row set's first turn went into `second`.
    auto rowSetFrom = [&](Turn& first, Turn& second) {
      for (int base = warp * kUnroll; base < groups;) {
        loadNext(second);
        compute(first, base);
        base += kStep;
        if (base >= groups) return true;
        loadNext(first);
        compute(second, base);
        base += kStep;
      }
      return false;
    };
    Turn turns[2];
    setRows(rowSet);
    loadNext(turns[0]);
    prepareBlock();
    firstActivations();
    bool inSecond = false;  // where the current row set's first turn is
    for (; rowSet < rowSets; rowSet += gridDim.x) {
#pragma unroll
      for (int j = 0; j < kXTiles; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
      const float* lowRank = lowRankStart(rowSet);
      inSecond ^= inSecond ? rowSetFrom(turns[1], turns[0]) : rowSetFrom(turns[0], turns[1]);
      storeRowSet<T, kXTiles, kWarps>(partial, acc, args, rowSet, lowRank);
    }
  } else {
    Turn turn;
    setRows(rowSet);
    if (hasTurns) load(turn, warp * kUnroll);
    prepareBlock();
    firstActivations();
    while (rowSet < rowSets) {
#pragma unroll
      for (int j = 0; j < kXTiles; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
      const float* lowRank = lowRankStart(rowSet);
      for (int base = warp * kUnroll; base < groups; base += kStep) {
        compute(turn, base);
        if (base + kStep < groups) load(turn, base + kStep);
      }
      // The next row set's first turn is in flight while this one's sums are added.
      const int64_t nextRowSet = rowSet + gridDim.x;
      if (nextRowSet < rowSets) {
        setRows(nextRowSet);
        if (hasTurns) load(turn, warp * kUnroll);
      }
      storeRowSet<T, kXTiles, kWarps>(partial, acc, args, rowSet, lowRank);
      rowSet = nextRowSet;
    }
  }
}

// The source, reading its scales a vector a turn where they line up for turns of `unroll` groups.
template <typename Source>
Source withScaleVectors(const Source& w, int G, int unroll) {
  Source source = w;
  source.vectorScales = w.scaleVectorsFit(G, unroll);
  return source;
}

// Blocks of one configuration the whole GPU holds at once (found at the first call).
template <typename T, typename Source, int G, bool TwoXTiles, typename Shape, bool Settled = false>
cudaError_t gemvResidentBlocks(int& blocks) {
  static int resident = 0;
  if (resident == 0) {
    int perSM = 0;
    const cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, gemvGroupsKernel<T, Source, G, TwoXTiles, Shape, Settled>,
                                                                          Shape::Warps * 32, GemvTile<TwoXTiles ? 2 : 1, Shape::Warps>::kPartialBytes);
    if (err != cudaSuccess) return err;
    resident = std::max(1, perSM) * smCount();
  }
  blocks = resident;
  return cudaSuccess;
}

/** Launches one configuration of the tensor-core GEMV: as many blocks as fit the GPU at once, at most one per 16 weight rows. */
template <typename T, typename Source, int G, bool TwoXTiles, typename Shape>
cudaError_t launchGemvGroupsKernel(const GemvArgs<T>& args, const Source& w, cudaStream_t s) {
  const bool settled = args.overlap == GemvOverlap::kSettled;
  // Shapes whose table and sums pass 48 KB need the opt-in (16 warps with 9-16 activation rows).
  static const cudaError_t optIn = [] {
    constexpr int kBytes = int(GemvTile<TwoXTiles ? 2 : 1, Shape::Warps>::kPartialBytes);
    const cudaError_t a = cudaFuncSetAttribute(gemvGroupsKernel<T, Source, G, TwoXTiles, Shape, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
    const cudaError_t b = cudaFuncSetAttribute(gemvGroupsKernel<T, Source, G, TwoXTiles, Shape, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
    return a != cudaSuccess ? a : b;
  }();
  if (optIn != cudaSuccess) return optIn;
  int resident = 0;
  cudaError_t err = settled ? gemvResidentBlocks<T, Source, G, TwoXTiles, Shape, true>(resident)
                            : gemvResidentBlocks<T, Source, G, TwoXTiles, Shape, false>(resident);
  if (err != cudaSuccess) return err;
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(std::min<int64_t>(rowSets, resident)));
  config.blockDim = dim3(Shape::Warps * 32);
  config.dynamicSmemBytes = GemvTile<TwoXTiles ? 2 : 1, Shape::Warps>::kPartialBytes;
  config.stream = s;
  cudaLaunchAttribute overlap = {};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  if (args.overlap != GemvOverlap::kNone && dependentLaunches()) {
    config.attrs = &overlap;
    config.numAttrs = 1;
  }
  err = settled ? cudaLaunchKernelEx(&config, gemvGroupsKernel<T, Source, G, TwoXTiles, Shape, true>, args, w)
                : cudaLaunchKernelEx(&config, gemvGroupsKernel<T, Source, G, TwoXTiles, Shape, false>, args, w);
  return err != cudaSuccess ? err : cudaGetLastError();
}

/**
 * The tensor-core GEMV in one launch shape (Warps warps a block taking Unroll groups a turn,
 * registers capped for MinBlocks blocks an SM, loading one turn Ahead or not; scaleVectors false:
 * one scale a load, for comparison).
 */
template <typename T, typename Source, int G, typename Shape>
cudaError_t launchGemvGroupsWith(const GemvArgs<T>& args, const Source& w, cudaStream_t s, bool scaleVectors = true) {
  const Source source = scaleVectors ? withScaleVectors(w, G, Shape::Unroll) : w;
  if (args.rows > 8) return launchGemvGroupsKernel<T, Source, G, true, Shape>(args, source, s);
  return launchGemvGroupsKernel<T, Source, G, false, Shape>(args, source, s);
}

/**
 * The tensor-core GEMV as the addon runs it: 8 warps a block taking 4 groups a turn, or, for up
 * to 8 activation rows when the GPU holds more such blocks than there are row sets, 16 warps
 * taking 2 (each block then has one row set, and twice the warps share its groups); for more rows
 * where the source says so (kAheadAboveEightRows), 8 warps taking 2, loading a turn ahead and the
 * activations a group ahead.
 */
template <typename T, typename Source, int G>
cudaError_t launchGemvGroups(const GemvArgs<T>& args, const Source& w, cudaStream_t s) {
  // Up to 8 rows, registers capped for three blocks an SM (80 a thread; only the bitsandbytes-layout
  // INT4 in blocks of 64 spills, 40-48 bytes): uncapped the kernel took 96-121 and two blocks an
  // SM, 6-10 % slower at 11008 x 4096 on the tile layouts and NF4 (dev/gemv4, the `w8/u4/b3` rows).
  // With two tiles of activation rows the cap spills more, so those stay uncapped.
  using Wide = GemvShape<8, 4, 3>;
  using WideTwoTiles = GemvShape<8, 4, 1>;
  using Tall = GemvShape<16, 2, 2>;
  if constexpr (Source::kAheadAboveEightRows) {
    if (args.rows > 8) return launchGemvGroupsWith<T, Source, G, GemvShape<8, 2, 2, true, true>>(args, w, s);
  }
  if (args.rows > 8) return launchGemvGroupsKernel<T, Source, G, true, WideTwoTiles>(args, withScaleVectors(w, G, 4), s);
  int resident = 0;
  const cudaError_t err = gemvResidentBlocks<T, Source, G, false, Wide>(resident);
  if (err != cudaSuccess) return err;
  if ((args.outFeatures + 15) / 16 < resident) return launchGemvGroupsKernel<T, Source, G, false, Tall>(args, withScaleVectors(w, G, 2), s);
  return launchGemvGroupsKernel<T, Source, G, false, Wide>(args, withScaleVectors(w, G, 4), s);
}

}  // namespace blora
