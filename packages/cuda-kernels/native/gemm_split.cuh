// Split K for the Hopper GEMMs (the bfloat16 / float16 GEMM of gemm_bf16_wgmma.cu and the fused
// 4-bit GEMM of quant_gemm_wgmma.cuh). A product with few output tiles leaves SMs idle: at 256
// rows a 4096-feature 4-bit weight makes 32 tiles of 128 x 256 for 132 SMs, and a 16-row bf16
// product 16. Each tile's K steps are then split over several blocks, each a "unit" (a tile and
// a range of its K steps), so every SM reads and multiplies a share of the operands.
//
// The units of a tile meet without waiting for each other: each consumer warp stores its
// accumulators as they lie in its registers (the same fragment layout in every unit of the
// tile) into a scratch buffer, then counts itself in on the tile's counter for that warp. The
// warp that arrives last sums the tile's partials in unit order, so the result is the same
// whichever arrives last, and finishes the tile through the kernel's usual epilogue; it then
// resets the counter. No block ever waits for another, so any number of resident blocks works.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common.h"
#include "gemm_wgmma.h"

namespace blora {
namespace wgmma {

// How a launch walks its work: tilesM x tilesN tiles of 128 x bn (times the batches), each
// split into `splits` units of kPerSplit K steps (the last unit may have fewer).
struct SplitWalk {
  int tilesM = 0, tilesN = 0, bn = 0, tiles = 0;
  int splits = 1, kTiles = 0, kPerSplit = 0;

  __host__ __device__ int units() const { return tiles * splits; }
  __host__ __device__ int tileOf(int unit) const { return unit / splits; }
  __host__ __device__ int firstStep(int unit) const { return (unit % splits) * kPerSplit; }
  __host__ __device__ int endStep(int unit) const {
    const int end = firstStep(unit) + kPerSplit;
    return end < kTiles ? end : kTiles;
  }
};

// Tiles a split walk may have: one arrival counter a tile's warp (splitCounters).
constexpr int kMaxSplitTiles = 1024;

// The walk of tilesM x tilesN tiles (times `batches`) of 128 x bn, kTiles K steps each, with
// `splits` units a tile asked for: every unit gets at least one K step, and a walk of more tiles
// than the counters cover is not split.
inline SplitWalk makeSplitWalk(int64_t tilesM, int64_t tilesN, int64_t batches, int64_t kTiles, int bn, int splits) {
  SplitWalk w;
  w.tilesM = int(tilesM);
  w.tilesN = int(tilesN);
  w.bn = bn;
  w.tiles = int(tilesM * tilesN * batches);
  w.kTiles = int(kTiles);
  const int perSplit = w.tiles > kMaxSplitTiles ? w.kTiles : (w.kTiles + splits - 1) / splits;
  w.kPerSplit = perSplit > 0 ? perSplit : 1;  // K = 0: one empty unit a tile
  w.splits = w.kTiles > 0 ? (w.kTiles + w.kPerSplit - 1) / w.kPerSplit : 1;
  return w;
}

// Consumer warps a tile has (two warpgroups of four): one counter and one partial each.
constexpr int kWarpsPerTile = 8;

// Scratch of a split walk: the partials of every unit's warps (BN / 2 floats a lane).
inline size_t splitPartialBytes(const SplitWalk& w) {
  return size_t(w.units()) * kWarpsPerTile * 32 * size_t(w.bn / 2) * sizeof(float);
}

// The tiles' arrival counters, shared by every split launch: launches run one after another on
// the one stream and each leaves the counters at zero, so they are zeroed once, on a stream of
// their own (wgmmaAvailable asks for them when it first finds the kernels usable).
inline int* splitCounters() {
  static int* counters = [] {
    const size_t bytes = size_t(kMaxSplitTiles) * kWarpsPerTile * sizeof(int);
    int* p = nullptr;
    cudaStream_t zeroing = nullptr;
    check(cudaMalloc(&p, bytes), "Hopper GEMM: split-K counters");
    check(cudaStreamCreateWithFlags(&zeroing, cudaStreamNonBlocking), "Hopper GEMM: split-K counters");
    check(cudaMemsetAsync(p, 0, bytes, zeroing), "Hopper GEMM: zeroing the split-K counters");
    check(cudaStreamSynchronize(zeroing), "Hopper GEMM: zeroing the split-K counters");
    cudaStreamDestroy(zeroing);
    return p;
  }();
  return counters;
}

// A GEMM's cost model, in nanoseconds on the GPU it was fitted on (only ratios matter): a block
// takes ceil(units / SMs) units in turn, each costing its K steps plus a fixed cost (the
// pipeline's fill and drain, the epilogue); both differ between the two tile widths.
struct SplitCosts {
  int wideStep, narrowStep, wideUnit, narrowUnit;
};
constexpr int kMaxSplits = 8;
constexpr int kMinStepsPerSplit = 4;

// The tile width (256 only when `wide` allows it) and split with the least modelled time for
// tilesM rows of tiles, `extent` along the width, `batches` and kTiles K steps. Tiles are split
// only while they are fewer than two an SM (the partials cost memory), never with `split` false.
inline SplitPlan cheapestSplitPlan(int64_t tilesM, int64_t extent, int64_t batches, int64_t kTiles, bool wide, bool split,
                                   const SplitCosts& costs) {
  const int64_t sms = smCount();
  SplitPlan best;
  int64_t bestCost = 0;
  for (const int bn : {256, 128}) {
    if (bn == 256 && !wide) continue;
    const int64_t tiles = tilesM * ((extent + bn - 1) / bn) * batches;
    for (int splits = 1; splits <= (split ? kMaxSplits : 1); splits++) {
      if (splits > 1 && (tiles >= 2 * sms || kTiles / splits < kMinStepsPerSplit)) break;
      const SplitWalk walk = makeSplitWalk(tilesM, (extent + bn - 1) / bn, batches, kTiles, bn, splits);
      if (splits > 1 && walk.splits != splits) continue;
      const int64_t rounds = (int64_t(walk.units()) + sms - 1) / sms;
      const int64_t cost = bn == 256 ? rounds * (walk.kPerSplit * costs.wideStep + costs.wideUnit)
                                     : rounds * (walk.kPerSplit * costs.narrowStep + costs.narrowUnit);
      if (best.bn == 0 || cost < bestCost) {
        best = {bn, splits};
        bestCost = cost;
      }
    }
  }
  return best;
}

// One warp's end of a unit: stores its accumulators, counts itself in, and, if it arrived last,
// leaves the tile's sum over all units in acc and returns true (the caller stores the tile).
// `warpInTile` is the consumer warp, 0..7; partials hold, per unit and warp, BN / 8 float4
// vectors a lane, vector-major so that a warp's store of one vector is 512 contiguous bytes.
template <int BN>
__device__ __forceinline__ bool gatherSplits(float (&acc)[BN / 2], float* partials, int* counters, const SplitWalk& w,
                                             int unit, int warpInTile, int lane) {
  constexpr int kVectors = BN / 8;
  const int tile = w.tileOf(unit), mine = unit % w.splits;
  float4* base = reinterpret_cast<float4*>(partials);
  auto slot = [&](int split, int v) {
    return base + ((int64_t(tile * w.splits + split) * kWarpsPerTile + warpInTile) * kVectors + v) * 32 + lane;
  };
#pragma unroll
  for (int v = 0; v < kVectors; v++) *slot(mine, v) = make_float4(acc[4 * v], acc[4 * v + 1], acc[4 * v + 2], acc[4 * v + 3]);
  __threadfence();  // the partial is visible on the GPU before the count says so
  __syncwarp();
  int arrived = 0;
  int* counter = counters + tile * kWarpsPerTile + warpInTile;
  if (lane == 0) arrived = atomicAdd(counter, 1);
  arrived = __shfl_sync(0xffffffffu, arrived, 0);
  if (arrived != w.splits - 1) return false;
  __threadfence();  // every other unit's partial is read after its count
  // The sum in unit order, this warp's own partial read back too: the same sum whichever unit
  // arrives last. (Starting from zero rather than from the first partial keeps the compiler from
  // spilling the accumulators.)
#pragma unroll
  for (int i = 0; i < BN / 2; i++) acc[i] = 0.f;
  for (int split = 0; split < w.splits; split++) {
#pragma unroll
    for (int v = 0; v < kVectors; v++) {
      const float4 p = __ldcg(slot(split, v));
      acc[4 * v] += p.x;
      acc[4 * v + 1] += p.y;
      acc[4 * v + 2] += p.z;
      acc[4 * v + 3] += p.w;
    }
  }
  if (lane == 0) *counter = 0;  // ready for the next launch
  return true;
}

}  // namespace wgmma
}  // namespace blora
