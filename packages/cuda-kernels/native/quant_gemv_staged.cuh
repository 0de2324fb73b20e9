// The staged 4-bit GEMV: the tensor-core GEMV of quant_gemv_tc.cuh for a settled weight in the
// decode tile layout (FourBitTiles, IntTiles), with each block's whole share of the weight copied
// into shared memory before the block waits for the kernel before it.
//
// Why: a GEMV must wait for the kernel that writes its activations, and a kernel that reads its
// weight only after that wait cannot stream at the memory's peak (on an H200 such a read-only
// kernel reaches 64 % of copy at 4096 x 4096). Here a block of S row sets issues one bulk copy
// (the copy engine, an mbarrier counting the bytes) of its S row sets' codes and scales as soon as
// it starts, builds the pair table, and lets the next launch start at once, so the next GEMV's
// blocks stage their weight while this one waits for its activations and computes. Once the
// activations are there, everything the block decodes is on chip.
//
// Letting the next launch start before the wait is what makes the weights stream back to back,
// and it is why the weight must be settled: not written by any kernel that may still be running
// when this one starts. (Kernels launched after this one still wait for it to complete before they
// touch memory, so the order of every write is kept.)
//
// Blocks of 8 warps holding one or two row sets; partial sums meet as in the register kernel
// (storeRowSet).
#pragma once

#include "quant_gemv_tc.cuh"

namespace blora {

// A bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) into shared memory,
// completing on the mbarrier at `bar` (sm_90).
__device__ __forceinline__ void bulkCopyToShared(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
#endif
}

// Makes the mbarrier at `bar` expect `bytes` of copies from one arrival (this thread's, now); the
// copies then complete its first phase (sm_90).
__device__ __forceinline__ void stagingBarrierExpect(uint32_t bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}

// Waits until the copies of stagingBarrierExpect have landed (visible to the whole block once the
// barrier's initialization is: after a __syncthreads).
__device__ __forceinline__ void stagingBarrierWait(uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  for (uint32_t done = 0; !done;) {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar)
                 : "memory");
  }
#endif
}

// What a source in the decode tile layout stages: for row sets first .. first + sets - 1, the
// codes (sets x groups x 512 bytes) and then each scale array (sets x groups x 16 scales), as
// contiguous ranges of the global layout.
template <typename Source>
struct StagedTiles;

template <>
struct StagedTiles<FourBitTiles> {
  using Scales = FourBitTiles::Scales;
  __host__ __device__ static size_t scaleBytes(int groups, int sets) { return size_t(sets) * groups * 16 * sizeof(float); }
  __host__ __device__ static size_t bytes(int groups, int sets) { return size_t(sets) * groups * 512 + scaleBytes(groups, sets); }
  __device__ static void issue(const FourBitTiles& w, int64_t first, int sets, int groups, uint32_t stage, uint32_t bar) {
    const uint32_t codeBytes = uint32_t(sets) * groups * 512;
    bulkCopyToShared(stage, w.tiles + first * groups * 512, codeBytes, bar);
    bulkCopyToShared(stage + codeBytes, w.scales + first * groups * 16, uint32_t(scaleBytes(groups, sets)), bar);
  }
  // The scales of group q in rows g and g + 8 of staged row set s (layout as FourBitTiles').
  __device__ static void scales(const uint8_t* stage, int sets, int groups, int s, int q, int g, Scales& a, Scales& b) {
    const float* p = reinterpret_cast<const float*>(stage + size_t(sets) * groups * 512) + (s * groups + (q & ~3)) * 16 + g * 8 + (q & 3);
    a = {p[0]};
    b = {p[4]};
  }
};

template <typename Scale>
struct StagedTiles<IntTiles<Scale>> {
  using Scales = typename IntTiles<Scale>::Scales;
  __host__ __device__ static size_t scaleBytes(int groups, int sets) { return size_t(sets) * groups * 16 * sizeof(Scale); }
  __host__ __device__ static size_t bytes(int groups, int sets) { return size_t(sets) * groups * 512 + 2 * scaleBytes(groups, sets); }
  __device__ static void issue(const IntTiles<Scale>& w, int64_t first, int sets, int groups, uint32_t stage, uint32_t bar) {
    const uint32_t codeBytes = uint32_t(sets) * groups * 512, each = uint32_t(scaleBytes(groups, sets));
    bulkCopyToShared(stage, w.tiles + first * groups * 512, codeBytes, bar);
    bulkCopyToShared(stage + codeBytes, w.alphas + first * groups * 16, each, bar);
    bulkCopyToShared(stage + codeBytes + each, w.betas + first * groups * 16, each, bar);
  }
  __device__ static void scales(const uint8_t* stage, int sets, int groups, int s, int q, int g, Scales& a, Scales& b) {
    const Scale* alphas = reinterpret_cast<const Scale*>(stage + size_t(sets) * groups * 512);
    const Scale* betas = alphas + size_t(sets) * groups * 16;
    const int at = (s * groups + (q & ~3)) * 16 + g * 8 + (q & 3);
    a = {alphas[at], betas[at]};
    b = {alphas[at + 4], betas[at + 4]};
  }
};

constexpr int kStagedMaxSets = 2;  // row sets a block holds at most (its sums stay in registers)

// Shared memory of a launch: the pair table (NF4 / FP4), the partial sums, the low-rank terms of
// each row set, the mbarrier, then the staged weight.
template <typename Source, bool TwoXTiles, int Warps>
struct StagedGemvMemory {
  using Tile = GemvTile<TwoXTiles ? 2 : 1, Warps>;
  static constexpr size_t kTable = Source::kOffsets ? 0 : size_t(kGemvPairTableWords) * 4;
  static constexpr size_t kPartialFloats = size_t(Warps) * 16 * Tile::kCols;
  // Where the weight starts; the partial sums reuse its place once every warp has decoded its share.
  static constexpr size_t kStage = kTable + kStagedMaxSets * Tile::kLowRankFloats * 4 + 16;
  static size_t bytes(int groups, int sets) { return kStage + std::max(StagedTiles<Source>::bytes(groups, sets), kPartialFloats * 4); }
};

// Warp w takes groups w, w + 8, ..., Unroll of them at a time: their activations loaded once for
// all the block's row sets, and each row set's codes and scales read before any is decoded.
template <int Warps_, int Unroll1_, int Unroll2_, int Ablate_ = 0>
struct StagedShape {
  static constexpr int Warps = Warps_, Unroll1 = Unroll1_, Unroll2 = Unroll2_;  // Unroll1 / 2: for 1 / 2 tiles of activation rows
  static constexpr int Ablate = Ablate_;  // timing only: 1 no decoding, 2 no activation loads, 3 no table reads
};
using StagedDefault = StagedShape<8, 4, 2>;

template <typename T, typename Source, bool TwoXTiles, typename Shape>
__global__ void __launch_bounds__(Shape::Warps * 32, 2) stagedGemvKernel(GemvArgs<T> args, Source w, int setsPerBlock) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kStagedWarps = Shape::Warps;
  constexpr int kXTiles = TwoXTiles ? 2 : 1;
  constexpr int kUnroll = TwoXTiles ? Shape::Unroll2 : Shape::Unroll1;
  constexpr bool kTable = !Source::kOffsets;
  using Memory = StagedGemvMemory<Source, TwoXTiles, kStagedWarps>;
  using Staged = StagedTiles<Source>;
  extern __shared__ __align__(128) uint8_t shared[];
  uint32_t* const pairTable = reinterpret_cast<uint32_t*>(shared);
  float* const lowRank = reinterpret_cast<float*>(shared + Memory::kTable);
  float* const partial = reinterpret_cast<float*>(shared + Memory::kStage);  // after the decoding (storeRowSet syncs first)
  const uint32_t bar = smemAddress(shared + Memory::kStage - 16);
  const uint8_t* const stage = shared + Memory::kStage;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2;
  const int groups = int(args.in / 64);
  const int64_t rowSets = (args.outFeatures + 15) / 16, first = int64_t(blockIdx.x) * setsPerBlock;
  const int sets = int(min(int64_t(setsPerBlock), rowSets - first));
  if (threadIdx.x == 0) {
    stagingBarrierExpect(bar, uint32_t(Staged::bytes(groups, sets)));
    Staged::issue(w, first, sets, groups, smemAddress(stage), bar);
  }
  if constexpr (kTable) buildPairTable<T, kStagedWarps * 32>(pairTable, __ldg(args.table + (lane & 15)));
  letDependentsStart();
  waitForPriorGrids();
  __syncthreads();  // the table and the barrier's initialization
  const uint32_t tableLane = computedOnce(smemAddress(pairTable) + 4u * lane);
  const GemvActivations<T, 64, kXTiles> x(args);
  if (args.add.factor) {
    for (int s = 0; s < sets; s++) lowRankTerms<T, kStagedWarps>(lowRank + s * Memory::Tile::kLowRankFloats, args, first + s);
  }
  stagingBarrierWait(bar);

  using Turn = GemvTurn<Source, kUnroll>;
  float acc[kStagedMaxSets][kXTiles][4] = {};
  const uint4* const codes = reinterpret_cast<const uint4*>(stage) + lane;
  for (int base = warp; base < groups && Shape::Ablate != 1; base += kStagedWarps * kUnroll) {
    uint32_t xw[kUnroll][kXTiles][8];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      if constexpr (Shape::Ablate == 2) {
#pragma unroll
        for (int j = 0; j < kXTiles; j++)
#pragma unroll
          for (int p = 0; p < 8; p++) xw[u][j][p] = 0x3f803f80u + base;
      } else {
        x.load(min(base + u * kStagedWarps, groups - 1), xw[u]);
      }
    }
#pragma unroll
    for (int s = 0; s < kStagedMaxSets; s++) {
      if (s >= sets) break;
      Turn turn;
#pragma unroll
      for (int u = 0; u < kUnroll; u++) {
        const int q = min(base + u * kStagedWarps, groups - 1);
        const uint4 v = codes[(s * groups + q) * 32];
        turn.codesA[u] = make_uint2(v.x, v.y);
        turn.codesB[u] = make_uint2(v.z, v.w);
        Staged::scales(stage, sets, groups, s, q, g, turn.scalesA[u], turn.scalesB[u]);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; u++) {
        if (base + u * kStagedWarps >= groups) break;  // the same for the whole warp
        if constexpr (Shape::Ablate == 3) {
#pragma unroll
          for (int j = 0; j < kXTiles; j++) mma16816<T>(acc[s][j], turn.codesA[u].x, turn.codesA[u].y, turn.codesB[u].x, turn.codesB[u].y, xw[u][j][0], xw[u][j][1]);
        } else {
          accumulateGroup<T, Source, 64>(acc[s], turn, u, xw[u], tableLane);
        }
      }
    }
  }
#pragma unroll
  for (int s = 0; s < kStagedMaxSets; s++) {
    if (s >= sets) break;
    storeRowSet<T, kXTiles, kStagedWarps>(partial, acc[s], args, first + s, lowRank + s * Memory::Tile::kLowRankFloats);
  }
#endif
}

/** Row sets a block of the staged GEMV takes: as few as the GPU's SMs allow, within its shared memory. */
template <typename Source, bool TwoXTiles, int Warps>
int stagedSetsPerBlock(int64_t rowSets, int groups, int sms, size_t sharedLimit) {
  int sets = int(std::min<int64_t>(kStagedMaxSets, std::max<int64_t>(1, (rowSets + sms - 1) / sms)));
  while (sets > 1 && StagedGemvMemory<Source, TwoXTiles, Warps>::bytes(groups, sets) > sharedLimit) sets--;
  return sets;
}

/**
 * Launches the staged GEMV (a programmatic dependent launch that lets the next launch start at
 * once): setsPerBlock row sets a block (0: stagedSetsPerBlock within half an SM's shared memory,
 * so that the next GEMV's blocks fit beside these). The weight must be settled (see above); the
 * GPU must be a Hopper or newer. Returns cudaErrorInvalidValue when a block's share does not fit.
 */
template <typename T, typename Source, typename Shape = StagedDefault>
cudaError_t launchStagedGemv(const GemvArgs<T>& args, const Source& w, cudaStream_t s, int setsPerBlock = 0) {
  const bool two = args.rows > 8;
  const int groups = int(args.in / 64);
  const int64_t rowSets = (args.outFeatures + 15) / 16;
  const size_t limit = maxSharedMemoryPerBlock();
  if (setsPerBlock <= 0) {
    setsPerBlock = two ? stagedSetsPerBlock<Source, true, Shape::Warps>(rowSets, groups, smCount(), limit / 2 - 1024)
                       : stagedSetsPerBlock<Source, false, Shape::Warps>(rowSets, groups, smCount(), limit / 2 - 1024);
  }
  const size_t bytes = two ? StagedGemvMemory<Source, true, Shape::Warps>::bytes(groups, setsPerBlock)
                           : StagedGemvMemory<Source, false, Shape::Warps>::bytes(groups, setsPerBlock);
  if (setsPerBlock > kStagedMaxSets || bytes > limit) return cudaErrorInvalidValue;
  const auto kernel = two ? stagedGemvKernel<T, Source, true, Shape> : stagedGemvKernel<T, Source, false, Shape>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(limit));
  if (err != cudaSuccess) return err;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned((rowSets + setsPerBlock - 1) / setsPerBlock));
  config.blockDim = dim3(Shape::Warps * 32);
  config.dynamicSmemBytes = bytes;
  config.stream = s;
  cudaLaunchAttribute overlap = {};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &overlap;
  config.numAttrs = 1;
  err = cudaLaunchKernelEx(&config, kernel, args, w, setsPerBlock);
  return err != cudaSuccess ? err : cudaGetLastError();
}

}  // namespace blora
