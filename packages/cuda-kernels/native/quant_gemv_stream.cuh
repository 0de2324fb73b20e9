// The streaming 4-bit GEMV (Hopper): y = x · Wᵀ for M <= 16 activation rows from a weight in the
// decode tile layout (FourBitTiles, IntTiles), with the weight's bytes moved by the copy engine.
//
// Why: the register-fed GEMV (quant_gemv_tc.cuh) keeps only what its warps' registers hold in
// flight, one turn a warp, and a 4096 x 4096 weight (9.4 MB, ~2.5 us at the copy bandwidth) is
// over before the loads have ramped up. Here each block owns a contiguous share of the weight's
// row sets, and in the tile layout a share is one run of code bytes and one of scale bytes per
// scale array. One producer thread walks the share in stages of 8 groups (4 KB of codes + their
// scales), each one bulk copy per array into a ring of shared-memory stages; the ring is deep
// enough that a block's whole share of a 4096-column weight is requested at once.
//
// Eight consumer warps take one group of each stage each (warp w: group w of the stage, i.e.
// groups w, w + 8, ... of a row set) and decode it from shared memory exactly as the register-fed
// kernel does (accumulateGroup: pair table for NF4 / FP4, biased nibbles for integers, MMA with
// the activations as B). A warp loads its group's activations before waiting for the stage, so
// that their latency overlaps the weight's. When a row set's last stage is consumed the warps'
// partial sums meet in shared memory and are added in warp order (the result does not depend on
// timing), with the epilogue term if any; the partial buffers alternate between row sets so one
// barrier a row set suffices.
//
// Programmatic dependent launch (GemvArgs::overlap) as in the register-fed kernel: kSettled lets
// the producer request the weight before the kernels ahead of it finish.
#pragma once

#include <algorithm>

#include "hopper_ptx.cuh"
#include "quant_gemv_tc.cuh"

namespace blora {

constexpr int kStreamConsumers = 8;  // consumer warps; a stage holds one group for each
constexpr int kStreamGroupCodeBytes = 512;  // a group of a row set in the tile layout: 16 rows x 64 codes

/** The shared memory of the streaming GEMV over `Source` with `Stages` ring stages and XTiles activation tiles. */
template <typename Source, int XTiles, int Stages>
struct StreamLayout {
  static constexpr int kScaleBytes = kStreamConsumers * 16 * int(sizeof(typename Source::ScaleValue));  // one array, one stage
  static constexpr int kStageBytes = kStreamConsumers * kStreamGroupCodeBytes + Source::kScaleArrays * kScaleBytes;
  static constexpr int kTableBytes = Source::kOffsets ? 0 : kGemvPairTableWords * 4;
  static constexpr int kRing = kTableBytes;
  static constexpr int kPartialBytes = kStreamConsumers * 16 * 8 * XTiles * 4;  // [warp][activation row][weight row]
  static constexpr int kPartials = kRing + Stages * kStageBytes;  // two buffers, alternating between row sets
  static constexpr int kBarriers = kPartials + 2 * kPartialBytes;  // full[Stages], then empty[Stages]
  static constexpr int kBytes = kBarriers + 2 * Stages * 8;
};

// Named barrier 1 among the consumer warps (the producer warp does not take part).
__device__ __forceinline__ void consumersSync() { asm volatile("bar.sync 1, %0;\n" ::"n"(kStreamConsumers * 32) : "memory"); }

template <typename T, typename Source, bool TwoXTiles, int Stages, bool Settled>
__global__ void __launch_bounds__((kStreamConsumers + 1) * 32, 2) gemvStreamKernel(GemvArgs<T> args, Source w) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace hopper;
  constexpr int kXTiles = TwoXTiles ? 2 : 1;
  constexpr bool kTable = !Source::kOffsets;
  using Layout = StreamLayout<Source, kXTiles, Stages>;
  using Scale = typename Source::ScaleValue;
  extern __shared__ __align__(128) uint8_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int groups = int(args.in / 64);
  const int stagesPerSet = (groups + kStreamConsumers - 1) / kStreamConsumers;
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  // The block's share: row sets first .. last - 1, the shares differing by at most one row set.
  const int64_t first = rowSets * blockIdx.x / gridDim.x, last = rowSets * (blockIdx.x + 1) / gridDim.x;
  const int64_t stages = (last - first) * stagesPerSet;
  const uint32_t ring = smemAddress(smem + Layout::kRing), barriers = smemAddress(smem + Layout::kBarriers);
  auto full = [&](int slot) { return barriers + 8u * slot; };
  auto empty = [&](int slot) { return barriers + 8u * (Stages + slot); };
  if (threadIdx.x == 0) {
    for (int slot = 0; slot < Stages; slot++) {
      mbarrierInit(full(slot), 1);
      mbarrierInit(empty(slot), kStreamConsumers);
    }
    fenceBarrierInit();
  }
  __syncthreads();

  if (warp == kStreamConsumers) {  // the producer
    if (lane != 0) return;
    if constexpr (!Settled) asm volatile("griddepcontrol.wait;\n" ::: "memory");  // the weight may be the kernel before's output
    int64_t set = first;
    int j = 0;  // stage of the row set
    for (int64_t i = 0; i < stages; i++) {
      const int slot = int(i % Stages);
      if (i >= Stages) mbarrierWait(empty(slot), uint32_t((i / Stages) - 1) & 1u);
      const int n = min(kStreamConsumers, groups - j * kStreamConsumers);
      const int64_t group = set * groups + int64_t(j) * kStreamConsumers;  // of the whole weight: row set by row set
      const uint32_t stage = ring + uint32_t(slot) * Layout::kStageBytes;
      mbarrierArriveExpectTx(full(slot), uint32_t(n) * (kStreamGroupCodeBytes + Source::kScaleArrays * 16 * sizeof(Scale)));
      bulkLoad(stage, w.tiles + group * kStreamGroupCodeBytes, uint32_t(n) * kStreamGroupCodeBytes, full(slot));
#pragma unroll
      for (int a = 0; a < Source::kScaleArrays; a++) {
        const Scale* scales = static_cast<const Scale*>(w.scaleArray(a)) + group * 16;
        bulkLoad(stage + kStreamConsumers * kStreamGroupCodeBytes + a * Layout::kScaleBytes, scales, uint32_t(n) * 16 * sizeof(Scale), full(slot));
      }
      if (++j == stagesPerSet) j = 0, set++;
    }
    return;
  }

  // The consumers.
  const int g = lane >> 2;
  uint32_t* pairTable = reinterpret_cast<uint32_t*>(smem);
  if constexpr (kTable) buildPairTable<T, kStreamConsumers * 32>(pairTable, __ldg(args.table + (lane & 15)));
  const uint32_t tableLane = computedOnce(smemAddress(pairTable) + 4u * lane);
  waitForPriorGrids();  // the activations may be the kernel before's output
  consumersSync();      // the pair table is built
  const GemvActivations<T, 64, kXTiles> x(args);
  float acc[kXTiles][4] = {};
  int64_t set = first;
  int j = 0;
  for (int64_t i = 0; i < stages; i++) {
    const int slot = int(i % Stages);
    const int group = j * kStreamConsumers + warp;  // of the row set
    const bool active = group < groups;  // the same for the whole warp
    uint32_t xw[kXTiles][8];
    if (active) x.load(group, xw);
    mbarrierWait(full(slot), uint32_t(i / Stages) & 1u);
    if (active) {
      const uint8_t* stage = smem + Layout::kRing + slot * Layout::kStageBytes;
      const uint4 v = *reinterpret_cast<const uint4*>(stage + warp * kStreamGroupCodeBytes + 16 * lane);
      GemvTurn<Source, 1> turn;
      turn.codesA[0] = make_uint2(v.x, v.y);
      turn.codesB[0] = make_uint2(v.z, v.w);
      // Scales as the tile layout keeps them: per quad of groups [row g][row g, g + 8][4 groups].
      const Scale* a = reinterpret_cast<const Scale*>(stage + kStreamConsumers * kStreamGroupCodeBytes);
      const Scale* b = reinterpret_cast<const Scale*>(stage + kStreamConsumers * kStreamGroupCodeBytes + Layout::kScaleBytes);
      const int at = (warp >> 2) * 64 + g * 8 + (warp & 3);
      turn.scalesA[0] = Source::staged(a, b, at);
      turn.scalesB[0] = Source::staged(a, b, at + 4);
      accumulateGroup<T, Source, 64, kXTiles, 1>(acc, turn, 0, xw, tableLane);
    }
    __syncwarp();
    if (lane == 0) mbarrierArrive(empty(slot));
    if (++j == stagesPerSet) {
      // The row set is done: partial sums in warp order, plus the epilogue term, rounded once.
      float* partial = reinterpret_cast<float*>(smem + Layout::kPartials + ((set - first) & 1) * Layout::kPartialBytes);
      auto at = [&](int v, int m, int n) -> float& { return partial[(v * 8 * kXTiles + m) * 16 + n]; };
      const int t = lane & 3;
#pragma unroll
      for (int k = 0; k < kXTiles; k++) {
        at(warp, 8 * k + 2 * t, g) = acc[k][0];
        at(warp, 8 * k + 2 * t + 1, g) = acc[k][1];
        at(warp, 8 * k + 2 * t, g + 8) = acc[k][2];
        at(warp, 8 * k + 2 * t + 1, g + 8) = acc[k][3];
        acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = 0.f;
      }
      consumersSync();
      for (int e = threadIdx.x; e < args.rows * 16; e += kStreamConsumers * 32) {
        const int m = e / 16, n = e % 16;
        float sum = 0.f;
#pragma unroll
        for (int v = 0; v < kStreamConsumers; v++) sum += at(v, m, n);
        const int64_t feature = 16 * set + n;
        if (feature < args.outFeatures) {
          if (args.add.values) sum += args.add.at(m, int(feature));
          args.y[m * args.outFeatures + feature] = Num<T>::store(sum);
        }
      }
      j = 0;
      set++;
    }
  }
#endif
}

/**
 * Launches the streaming GEMV with `Stages` ring stages and at most `blocksPerSM` blocks an SM
 * (0: as many as fit). Returns cudaErrorNotSupported where it cannot run: a GPU without the
 * Hopper copy engine path (callers check wgmmaAvailable first: the same sm_90a code), or scale arrays not
 * 16-byte aligned.
 */
template <typename T, typename Source, int Stages>
cudaError_t launchGemvStream(const GemvArgs<T>& args, const Source& w, cudaStream_t s, int blocksPerSM = 0) {
  for (int a = 0; a < Source::kScaleArrays; a++) {
    if (reinterpret_cast<uintptr_t>(w.scaleArray(a)) % 16 != 0) return cudaErrorNotSupported;
  }
  if (reinterpret_cast<uintptr_t>(w.tiles) % 16 != 0 || args.in % 256 != 0) return cudaErrorNotSupported;
  const bool settled = args.overlap == GemvOverlap::kSettled;
  const bool two = args.rows > 8;
  auto kernel = two ? (settled ? gemvStreamKernel<T, Source, true, Stages, true> : gemvStreamKernel<T, Source, true, Stages, false>)
                    : (settled ? gemvStreamKernel<T, Source, false, Stages, true> : gemvStreamKernel<T, Source, false, Stages, false>);
  const int bytes = two ? StreamLayout<Source, 2, Stages>::kBytes : StreamLayout<Source, 1, Stages>::kBytes;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err != cudaSuccess) return err;
  int perSM = 0;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, kernel, (kStreamConsumers + 1) * 32, size_t(bytes));
  if (err != cudaSuccess) return err;
  if (blocksPerSM > 0) perSM = std::min(perSM, blocksPerSM);
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(std::min<int64_t>(rowSets, int64_t(std::max(1, perSM)) * smCount())));
  config.blockDim = dim3((kStreamConsumers + 1) * 32);
  config.dynamicSmemBytes = size_t(bytes);
  config.stream = s;
  cudaLaunchAttribute overlap = {};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  if (args.overlap != GemvOverlap::kNone) {
    config.attrs = &overlap;
    config.numAttrs = 1;
  }
  err = cudaLaunchKernelEx(&config, kernel, args, w);
  return err != cudaSuccess ? err : cudaGetLastError();
}

}  // namespace blora
