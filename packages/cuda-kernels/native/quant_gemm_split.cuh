// Split-K for the fused 4-bit GEMM on Hopper (quant_gemm_wgmma.cuh). A product with few
// activation rows has few output tiles: at 256 rows a 4096-feature weight makes 32 tiles of
// 128 x 256 for 132 SMs. Its tiles' K steps are then split over several blocks, each a "unit"
// (a tile and a range of its K steps), so every SM decodes a share of the weight.
//
// The units of a tile meet without waiting for each other: each consumer warp stores its
// accumulators as they lie in its registers (the same fragment layout in every unit of the
// tile) into a scratch buffer, then counts itself in on the tile's counter for that warp. The
// warp that arrives last sums the tile's partials in unit order, so the result is the same
// whichever arrives last, and finishes the tile through the usual epilogue; it then resets the
// counter. No block ever waits for another, so any number of resident blocks works.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common.h"

namespace blora {
namespace wgmma {

// How a launch walks its work: tilesM x tilesN tiles of 128 features x bn activation rows,
// each split into `splits` units of kPerSplit K steps (the last unit may have fewer).
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

// The walk of a product with `splits` asked for: every unit gets at least one K step.
inline SplitWalk makeSplitWalk(int64_t m, int64_t k, int64_t n, int bn, int splits) {
  SplitWalk w;
  w.tilesM = int((n + 127) / 128);
  w.tilesN = int((m + bn - 1) / bn);
  w.bn = bn;
  w.tiles = w.tilesM * w.tilesN;
  w.kTiles = int((k + 63) / 64);
  w.kPerSplit = (w.kTiles + splits - 1) / splits;
  w.splits = (w.kTiles + w.kPerSplit - 1) / w.kPerSplit;
  return w;
}

// Whether tiles may be split: BLORA_CUDA_QUANT_SPLIT=0 (read once) keeps each tile on one block,
// to measure what splitting gains.
inline bool splitsAllowed() {
  static const bool allowed = [] {
    const char* text = std::getenv("BLORA_CUDA_QUANT_SPLIT");
    return text == nullptr || std::string(text) != "0";
  }();
  return allowed;
}

// Consumer warps a tile has (two warpgroups of four): one counter and one partial each.
constexpr int kWarpsPerTile = 8;

// Scratch of a split walk: the partials of every unit's warps (BN / 2 floats a lane).
inline size_t splitPartialBytes(const SplitWalk& w) {
  return size_t(w.units()) * kWarpsPerTile * 32 * size_t(w.bn / 2) * sizeof(float);
}

// The tiles' arrival counters, shared by every split launch: launches run one after another on
// the one stream and each leaves the counters at zero, so they are zeroed once, when first
// needed, on a stream of their own (the launch stream may be capturing a graph then).
constexpr int kMaxSplitTiles = 1024;
inline int* splitCounters() {
  static int* counters = [] {
    const size_t bytes = size_t(kMaxSplitTiles) * kWarpsPerTile * sizeof(int);
    int* p = nullptr;
    cudaStream_t zeroing = nullptr;
    check(cudaMalloc(&p, bytes), "fused 4-bit GEMM: split-K counters");
    check(cudaStreamCreateWithFlags(&zeroing, cudaStreamNonBlocking), "fused 4-bit GEMM: split-K counters");
    check(cudaMemsetAsync(p, 0, bytes, zeroing), "fused 4-bit GEMM: zeroing the split-K counters");
    check(cudaStreamSynchronize(zeroing), "fused 4-bit GEMM: zeroing the split-K counters");
    cudaStreamDestroy(zeroing);
    return p;
  }();
  return counters;
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
