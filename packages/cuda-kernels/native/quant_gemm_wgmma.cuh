// The fused 4-bit GEMM on Hopper: the wgmma GEMM's pipeline (gemm_wgmma_tile.cuh) with the
// weight decoded into shared memory instead of copied, so W never exists densely in global
// memory. The operands are swapped: the MMA's A operand is the weight (128 output features a
// tile, decoded), its B operand the activations (BN rows, copied by TMA), so each tile computes
// a block of the transposed output and decodes half as many codes per MMA as with the weight
// as B (which needs 256-wide weight tiles to keep the MMAs large):
//   forward   y [M, out] = x [M, in] · Wᵀ:  yᵀ = W · xᵀ, A = W tile (K-major: 128 rows of out x 64 of in)
//   backward dx [M, in] = dy [M, out] · W:  dxᵀ = Wᵀ · dyᵀ, A = Wᵀ tile (M-major: 64 rows of out x 128 of in)
// Per K step of 64, thread 0 of the producer warpgroup copies the activation tile with TMA, and
// the step's 256 chunks of 32 codes (each read with one 16-byte load, a step or two before it is
// decoded) are decoded into the stage's swizzled A tile: half by the producer warpgroup, half by
// the first consumer's threads kConsumerLead steps ahead, while their MMAs run (the producer
// alone cannot decode as fast as the tensor cores consume). Every decoding thread then arrives
// on the stage's "full" barrier. Both products store W the same way: segment s of
// a step (one weight row's 64 columns) is the 128-byte smem row s, which is row s of the K-major
// tile and, for the M-major one, row s % 64 of box s / 64.
//
// Values: each weight is computed in float32 like the dequantize kernels, then rounded to the
// activation dtype (quant_gemm.cuh), so the MMAs see exactly the weight of the
// dequantize-then-GEMM path. Edges: activation rows and K past the ends are zero-filled by
// TMA, weight rows and columns past them decode to zeros; stores are bounds-checked.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <string>

#include "gemm_wgmma.h"
#include "gemm_wgmma_tile.cuh"
#include "launch.cuh"
#include "quant_gemm.cuh"
#include "gemm_split.cuh"
#include "scratch.h"

namespace blora {
namespace wgmma {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The producer decodes (three steps of chunks in registers), so it keeps more registers than
// the copy-only producer of the bf16 GEMM: 128 * (168 - 104) frees what 256 * (200 - 168) claim.
constexpr int kDecoderRegisters = 104;
constexpr int kMmaRegisters = 200;
// Steps ahead of their MMAs at which the consumers decode their share of a stage.
constexpr int kConsumerLead = 2;

// Where one K step of a block's walk over its units (tiles, or parts of a tile's K steps) is.
struct StepCursor {
  int unit, kb, kEnd, m0, n0;

  __device__ __forceinline__ void moveTo(int u, const SplitWalk& w) {
    unit = u;
    kb = w.firstStep(u);
    kEnd = w.endStep(u);
    const TileCoords c = tileCoords(w.tileOf(u), w.tilesM, w.tilesN, w.bn);
    m0 = c.m0;
    n0 = c.n0;
  }
  __device__ __forceinline__ void advance(const SplitWalk& w) {
    if (++kb < kEnd) return;
    if (unit + int(gridDim.x) < w.units()) moveTo(unit + int(gridDim.x), w);
    else unit = w.units();  // past the end
  }
};

// The weight operand of one step: 2 * kBM chunks of 32 codes, chunk id = 2 * segment + half.
// `at.m0` is the tile's first output feature: a weight row (forward) or column (backward).
template <typename T, typename Source, bool Transposed>
struct WeightSteps {
  Source w;
  int features, K;  // output features (out forward, in backward) and the reduction length
  const float* codeValues;  // shared memory

  __device__ __forceinline__ typename Source::Chunk load(const StepCursor& at, int id) const {
    const int segment = id >> 1, half = id & 1;
    if (Transposed) {
      const int row = at.kb * kBK + (segment & 63), col = at.m0 + 64 * (segment >> 6) + 32 * half;
      return w.load(row, col, row < K && col < features);
    }
    const int row = at.m0 + segment, col = at.kb * kBK + 32 * half;
    return w.load(row, col, row < features && col < K);
  }

  // Decodes a chunk into its four 16-byte pieces of the stage's A tile (128-byte rows, 128B swizzle).
  __device__ __forceinline__ void store(const typename Source::Chunk& chunk, uint32_t stageA, int id) const {
    uint32_t pairs[kChunkPairs];
    w.template decode<T>(chunk, CodeValues{codeValues}, pairs);
    const int segment = id >> 1, half = id & 1;
    const uint32_t row = stageA + uint32_t(segment) * 128;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      hopper::storeShared16(row + ((uint32_t(4 * half + q) ^ uint32_t(segment & 7)) << 4), pairs[4 * q], pairs[4 * q + 1],
                            pairs[4 * q + 2], pairs[4 * q + 3]);
    }
  }
};

// The 8 x 8 matrix of 16-bit values whose row lane / 4, columns 2 (lane % 4) and + 1, this lane
// holds (low half first), transposed across the warp into the same layout.
__device__ __forceinline__ uint32_t transpose8x8(uint32_t v) {
  uint32_t t;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(t) : "r"(v));
  return t;
}

// Adds the epilogue term to one consumer's accumulators in their own layout (see
// storeTransposedTile): acc[4j + 2h + e] is feature lane / 4 + 8h of the warp's 16 and row
// 8j + 2 (lane % 4) + e, so a warp's load reads 8 adjacent features of 4 rows. Eight j at a
// time (32 loads a thread in flight). Reading the term in the stored layout and moving it with
// movmatrix instead cost twice as much on an H200: the warp-wide transposes wait for every
// lane's loads (dev/quant_gemm_wgmma epilogue, bench/results/logs/quant-gemm-wgmma-2026-11-30-epilogue-term.log).
template <int BN>
__device__ __forceinline__ void addEpilogueTerm(float (&acc)[BN / 2], const EpilogueAddend& add, int rows, int features,
                                                int m0, int n0, int consumer, int warp, int lane) {
  const int feature0 = m0 + consumer * 64 + warp * 16 + lane / 4;
  const int row0 = n0 + 2 * (lane % 4);
  int column[2];  // the addend column of features feature0 + 8h, or -1 past the end
#pragma unroll
  for (int h = 0; h < 2; h++) column[h] = feature0 + 8 * h < features ? (feature0 + 8 * h) / add.lambda : -1;
  constexpr int kRowsInFlight = 8;
#pragma unroll
  for (int j0 = 0; j0 < BN / 8; j0 += kRowsInFlight) {
    float v[kRowsInFlight][2][2];
#pragma unroll
    for (int jj = 0; jj < kRowsInFlight; jj++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int row = row0 + 8 * (j0 + jj) + e;
        const float* line = add.values + int64_t(row) * add.stride;
#pragma unroll
        for (int h = 0; h < 2; h++) v[jj][h][e] = row < rows && column[h] >= 0 ? line[column[h]] : 0.f;
      }
    }
#pragma unroll
    for (int jj = 0; jj < kRowsInFlight; jj++) {
#pragma unroll
      for (int h = 0; h < 2; h++) {
#pragma unroll
        for (int e = 0; e < 2; e++) acc[4 * (j0 + jj) + 2 * h + e] += __fmul_rn(add.scale, v[jj][h][e]);
      }
    }
  }
}

// Writes one consumer's 64 x BN accumulators, a block of the transposed output (64 features x
// BN rows), into C [rows, features] at (n0, m0), rounded once, with bounds checks. Each 8 x 8
// block of the fragment is rounded to pairs and transposed across the warp, so a lane stores
// two adjacent features of one row (one 4-byte store when `paired`: features even, C aligned).
// Before the transpose, acc[4j + 2h + e] is feature lane / 4 + 8h of the warp's 16, row
// 8j + 2 (lane % 4) + e of the tile; after it a lane holds row 8j + lane / 4, features
// 2 (lane % 4) + 8h and the next. The epilogue term, if any, is added before the rounding.
template <typename T, int BN>
__device__ __forceinline__ void storeTransposedTile(float (&acc)[BN / 2], T* out, int rows, int features, int m0,
                                                    int n0, int consumer, int warp, int lane, bool paired,
                                                    const EpilogueAddend& add) {
  if (add.values) addEpilogueTerm<BN>(acc, add, rows, features, m0, n0, consumer, warp, lane);
  const int feature0 = m0 + consumer * 64 + warp * 16 + 2 * (lane % 4);
  const int row0 = n0 + lane / 4;
#pragma unroll
  for (int j = 0; j < BN / 8; j++) {
    const int row = row0 + 8 * j;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const uint32_t pair = transpose8x8(packPair<T>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]));
      const int feature = feature0 + 8 * h;
      if (row >= rows || feature >= features) continue;
      T* dst = out + int64_t(row) * features + feature;
      if (paired) {  // feature + 1 < features too
        *reinterpret_cast<uint32_t*>(dst) = pair;
      } else {
        const uint16_t lo = uint16_t(pair & 0xffffu), hi = uint16_t(pair >> 16);
        memcpy(dst, &lo, 2);
        if (feature + 1 < features) memcpy(dst + 1, &hi, 2);
      }
    }
  }
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Chunks of a step each producer thread decodes; the rest go to the first consumer's threads,
// one each. On an H200 at 4096 rows this split (128 + 128 of 256) runs 4-11 % faster than the
// producer decoding all of them and 5-12 % faster than the consumers decoding all of them
// (dev/quant_gemm_wgmma, each pair side by side in one run;
// bench/results/logs/quant-gemm-wgmma-2026-11-30-split.log).
constexpr int kProducerChunks = 1;
constexpr int kConsumerDecoders = 2 * kBM - 128 * kProducerChunks;

// M: activation rows; features: output features; `walk`: its tiles of 128 features x BN rows
// and their units (split K: partials and counters as gatherSplits uses them).
template <typename T, typename Source, bool Transposed, int BN, int Stages>
__global__ void __launch_bounds__(kThreads, 1)
    fusedQuantGemmKernel(const __grid_constant__ CUtensorMap mapX, Source w, const float* table, T* __restrict__ C, int M,
                         int features, int K, SplitWalk walk, float* partials, int* counters, bool pairedOut,
                         EpilogueAddend add) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = Config<BN, Stages>;
  using Chunk = typename Source::Chunk;
  static_assert(Stages > kConsumerLead + 1, "the consumers decode into stages the MMAs have left");
  __shared__ __align__(8) uint64_t fullBars[Stages];   // activations copied and weights decoded
  __shared__ __align__(8) uint64_t emptyBars[Stages];  // stage read by every consumer warp
  __shared__ float codeValues[16];
  extern __shared__ unsigned char dynamicShared[];
  const uint32_t stages = (hopper::sharedAddress(dynamicShared) + 1023u) & ~1023u;
  const uint32_t full0 = hopper::sharedAddress(fullBars), empty0 = hopper::sharedAddress(emptyBars);
  const int units = walk.units();
  const int warpgroup = int(threadIdx.x) / 128;
  const WeightSteps<T, Source, Transposed> weight{w, features, K, codeValues};
  auto stageA = [&](uint32_t it) { return stages + (it % Stages) * Cfg::kStageBytes; };
  // Waits until step `it`'s stage is free: round r reuses it after the consumers released
  // round r - 1; round 0 passes at once.
  auto waitFree = [&](uint32_t it) { hopper::mbarrierWait(empty0 + 8 * (it % Stages), ((it / Stages) & 1) ^ 1); };
  auto announce = [&](uint32_t it) {
    hopper::fenceProxyAsyncShared();
    hopper::mbarrierArrive(full0 + 8 * (it % Stages));
  };

  loadCodeValues(codeValues, table);
  if (threadIdx.x == 0) {
    for (int s = 0; s < Stages; s++) {
      // The TMA's expect_tx, then every decoding thread.
      hopper::mbarrierInit(full0 + 8 * s, 1 + 128 + kConsumerDecoders);
      hopper::mbarrierInit(empty0 + 8 * s, kConsumers * 4);  // one arrival per consumer warp
    }
    hopper::fenceBarrierInit();
  }
  __syncthreads();

  if (warpgroup == 0) {
    hopper::releaseRegisters<kDecoderRegisters>();
    const int t = int(threadIdx.x);
    if (t == 0) hopper::prefetchTensorMap(&mapX);
    // The chunks of this step, of the next one and of the one after (loaded two steps ahead).
    StepCursor at;
    at.moveTo(int(blockIdx.x), walk);
    StepCursor next = at;
    next.advance(walk);
    StepCursor after = next;
    after.advance(walk);
    Chunk current[kProducerChunks], ahead[kProducerChunks];
#pragma unroll
    for (int i = 0; i < kProducerChunks; i++) {
      current[i] = weight.load(at, t + 128 * i);
      if (next.unit < units) ahead[i] = weight.load(next, t + 128 * i);
    }
    for (uint32_t it = 0; at.unit < units; it++) {
      Chunk later[kProducerChunks];
      if (after.unit < units) {
#pragma unroll
        for (int i = 0; i < kProducerChunks; i++) later[i] = weight.load(after, t + 128 * i);
      }
      waitFree(it);
      if (t == 0) {
        const uint32_t full = full0 + 8 * (it % Stages);
        hopper::mbarrierArriveExpectTx(full, Cfg::kBBytes);
        hopper::tmaLoad2d(stageA(it) + Cfg::kABytes, &mapX, full, at.kb * kBK, at.n0);
      }
#pragma unroll
      for (int i = 0; i < kProducerChunks; i++) weight.store(current[i], stageA(it), t + 128 * i);
      announce(it);
#pragma unroll
      for (int i = 0; i < kProducerChunks; i++) {
        current[i] = ahead[i];
        ahead[i] = later[i];
      }
      at = next;
      next = after;
      after.advance(walk);
    }
  } else {
    hopper::claimRegisters<kMmaRegisters>();
    const int consumer = warpgroup - 1;
    const int warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32;
    const int decoder = int(threadIdx.x) - 128;
    const int id = 128 * kProducerChunks + decoder;  // this thread's chunk of every step, if any
    const bool decodes = decoder < kConsumerDecoders;
    // The step this thread decodes next (kConsumerLead ahead of the MMAs once running), and its chunk.
    StepCursor at;
    at.moveTo(int(blockIdx.x), walk);
    uint32_t decoded = 0;
    Chunk ahead{};
    auto decodeNext = [&] {
      if (!decodes || at.unit >= units) return;
      waitFree(decoded);
      weight.store(ahead, stageA(decoded), id);
      announce(decoded);
      decoded++;
      at.advance(walk);
      if (at.unit < units) ahead = weight.load(at, id);
    };
    if (decodes) ahead = weight.load(at, id);
    for (int i = 0; i < kConsumerLead; i++) decodeNext();
    float acc[BN / 2];
    uint32_t it = 0;
    for (int unit = int(blockIdx.x); unit < units; unit += int(gridDim.x)) {
      const TileCoords c = tileCoords(walk.tileOf(unit), walk.tilesM, walk.tilesN, BN);
      const int steps = walk.endStep(unit) - walk.firstStep(unit);
      multiplyTile<T, !Transposed, true, BN, Stages>(acc, stages, full0, empty0, it, steps, consumer, lane, decodeNext);
      if (walk.splits > 1 && !gatherSplits<BN>(acc, partials, counters, walk, unit, 4 * consumer + warp, lane)) continue;
      storeTransposedTile<T, BN>(acc, C, M, features, c.m0, c.n0, consumer, warp, lane, pairedOut, add);
    }
  }
#endif
}

// The stage rings of the two tile widths: 192 KB of shared memory each, like the bf16 GEMM's.
constexpr int kQuantWideStages = 4;    // 128 x 256 tiles, 48 KB a stage
constexpr int kQuantNarrowStages = 6;  // 128 x 128 tiles, 32 KB a stage

// A plan forced on every product that runs on this kernel (bn 0: none), for the checks and the
// timings of the standalone harness.
inline SplitPlan& forcedFusedQuantPlan() {
  static SplitPlan forced;
  return forced;
}

// Whether tiles may be split: BLORA_CUDA_QUANT_SPLIT=0 (read once) keeps each tile on one block,
// to measure what splitting gains.
inline bool quantSplitsAllowed() {
  static const bool allowed = [] {
    const char* text = std::getenv("BLORA_CUDA_QUANT_SPLIT");
    return text == nullptr || std::string(text) != "0";
  }();
  return allowed;
}

// The cost model of this kernel (see cheapestSplitPlan): on an H200, NF4, 64-1024 rows of the
// LLaMA-7B shapes with every width and split forced, a K step took 0.69 us at either width (the
// decoding bounds it) and the fixed cost 21 us a 128 x 256 unit, 13 us a 128 x 128 one
// (dev/quant_gemm_wgmma splits; bench/results/logs/quant-gemm-wgmma-2026-12-01-splits.log).
constexpr SplitCosts kFusedQuantCosts{690, 690, 21000, 13000};

// The plan for an [m, k] x [k, n] fused product: none when it should not run on this kernel (no
// Hopper image, or the pipelined path chosen), else the cheapest by the cost model. At 256 rows a
// 4096-feature weight (32 tiles of 128 x 256) runs as 128 units of a quarter of K, each weight
// decoded once, instead of 64 tiles of 128 x 128 on half the SMs, each decoded twice.
inline SplitPlan fusedQuantPlan(int64_t m, int64_t k, int64_t n) {
  const GemmPath path = gemmPath();
  if (path == GemmPath::Pipelined || m <= 0 || !wgmmaAvailable()) return {};
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return {};
  const int64_t tilesW = (n + kBM - 1) / kBM, kTiles = (k + kBK - 1) / kBK;
  if (tilesW * ((m + 127) / 128) > INT32_MAX) return {};
  SplitPlan plan = forcedFusedQuantPlan();
  if (plan.bn == 0) plan = cheapestSplitPlan(tilesW, m, 1, kTiles, m > 128, quantSplitsAllowed(), kFusedQuantCosts);
  const int shared = plan.bn == 256 ? Config<256, kQuantWideStages>::kSharedBytes : Config<128, kQuantNarrowStages>::kSharedBytes;
  return size_t(shared) + 1024 <= maxSharedMemoryPerBlock() ? plan : SplitPlan{};
}

// Queues out [m, n] = x [m, k] · (W decoded by `w`) on the fused wgmma kernel (x · Wᵀ, or x · W
// when transposed) and returns true, or returns false, queuing nothing, when the product does
// not suit it (see fusedQuantPlan) or x cannot be read by TMA. x and out as gemmOperandsFit
// in quant_gemm.cu accepts them.
template <typename Source>
bool launchFusedQuantWgmma(const TensorArg& x, int64_t lda, const Source& w, const float* table, const TensorArg& out,
                           int64_t k, int64_t n, bool transposed, const EpilogueAddend& add = {}) {
  const int64_t m = x.shape[0];
  const SplitPlan plan = fusedQuantPlan(m, k, n);
  const int bn = plan.bn;
  if (bn == 0) return false;
  OperandPlan operand;
  CUtensorMap mapX;
  if (!planOperand(x, 1, lda, k, m, 1, operand) || !operand.kMajor || !encodeOperand(mapX, x, operand, k, m, 1, bn)) return false;
  const SplitWalk walk = makeSplitWalk((n + kBM - 1) / kBM, (m + bn - 1) / bn, 1, (k + kBK - 1) / kBK, bn, plan.splits);
  // Partials of a split walk, released once the launch is queued (the one stream orders its reuse).
  DeviceScratch partials(walk.splits > 1 ? splitPartialBytes(walk) : 0);
  int* counters = walk.splits > 1 ? splitCounters() : nullptr;
  const bool paired = n % 2 == 0 && reinterpret_cast<uintptr_t>(out.first()) % 4 == 0;
  auto run = [&](auto typeTag, auto transposedTag, auto widthTag) {
    using T = typename decltype(typeTag)::type;
    constexpr bool Transposed = decltype(transposedTag)::value;
    constexpr int BN = decltype(widthTag)::value;
    constexpr int Stages = BN == 256 ? kQuantWideStages : kQuantNarrowStages;
    constexpr int bytes = Config<BN, Stages>::kSharedBytes;
    auto kernel = fusedQuantGemmKernel<T, Source, Transposed, BN, Stages>;
    static const bool configured = [&] {
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
            "fused 4-bit GEMM (wgmma): shared memory size");
      return true;
    }();
    (void)configured;
    kernel<<<std::min(walk.units(), smCount()), kThreads, bytes, stream()>>>(
        mapX, w, table, reinterpret_cast<T*>(out.first()), int(m), int(n), int(k), walk, partials.as<float>(), counters, paired,
        add);
  };
  auto withWidth = [&](auto typeTag, auto transposedTag) {
    if (bn == 256) run(typeTag, transposedTag, std::integral_constant<int, 256>{});
    else run(typeTag, transposedTag, std::integral_constant<int, 128>{});
  };
  auto withDirection = [&](auto typeTag) {
    if (transposed) withWidth(typeTag, std::true_type{});
    else withWidth(typeTag, std::false_type{});
  };
  if (x.dtype == DType::BFloat16) withDirection(TypeTag<__nv_bfloat16>{});
  else withDirection(TypeTag<__half>{});
  return true;
}

}  // namespace wgmma
}  // namespace blora
