// What the Hopper (TMA + wgmma) GEMM kernels share: the block tile, its walk over the output,
// the consumer warpgroups' loop over the K steps of a tile and the store of its accumulators.
// Used by the bfloat16 / float16 GEMM (gemm_bf16_wgmma.cu), whose producer copies both
// operands with TMA, and by the fused 4-bit GEMM (quant_gemm_wgmma.cuh), whose producer
// decodes the weight operand into the same shared-memory layout.
//
// A block holds three warpgroups: a producer and two consumers, each consumer owning 64 rows
// of the 128 x BN block tile. Stages are rings of shared memory with a "full" mbarrier (the
// producer filled the stage) and an "empty" one (every consumer warp has read it).
//
// Shared-memory layout: every operand tile is made of 128-byte rows (64 elements) swizzled
// in 128-byte mode (16-byte chunk j of row r sits at chunk j ^ (r % 8)), the layout wgmma's
// 128B-swizzle descriptors read. A K-major operand is one box of MN rows x 64 K; an M/N-major
// one is MN / 64 boxes of 64 K rows x 64 MN, 8 KB apart.
#pragma once

#include <cstdint>
#include <type_traits>

#include "hopper_ptx.cuh"
#include "numeric.cuh"

namespace blora {
namespace wgmma {

constexpr int kBM = 128;                    // block tile rows: one 64-row slab per consumer
constexpr int kBK = 64;                     // K per stage: 64 16-bit elements = one 128-byte row
constexpr int kConsumers = 2;               // consumer warpgroups
constexpr int kThreads = 128 * (1 + kConsumers);
constexpr int kGroupM = 8;                  // tile rows per L2 group
constexpr int kAtomBytes = 64 * 128;        // one 64-row box of 128-byte rows

template <int BN, int Stages>
struct Config {
  static constexpr int kABytes = kBM * kBK * 2;
  static constexpr int kBBytes = BN * kBK * 2;
  static constexpr int kStageBytes = kABytes + kBBytes;
  // The stages plus slack to round the start up to the 1024-byte swizzle period.
  static constexpr int kSharedBytes = Stages * kStageBytes + 1024;
};

// Output tile of a linear tile index: batch-major, then groups of kGroupM tile rows walked
// down each column of tiles, so that the tiles in flight at one time share their A and B
// panels in L2.
struct TileCoords {
  int batch, m0, n0;
};

__device__ __forceinline__ TileCoords tileCoords(int tile, int tilesM, int tilesN, int bn) {
  const int perBatch = tilesM * tilesN;
  const int r = tile % perBatch;
  const int perGroup = kGroupM * tilesN;
  const int firstM = (r / perGroup) * kGroupM;
  const int groupRows = min(tilesM - firstM, kGroupM);
  const int inGroup = r % perGroup;
  return {tile / perBatch, (firstM + inGroup % groupRows) * kBM, (inGroup / groupRows) * bn};
}

__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint32_t bitsOf(__half v) { return __half_as_ushort(v); }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// One consumer warpgroup's share of a block tile: waits for each of the kTiles stages in turn,
// runs four wgmma m64nBNk16 on it, and hands the stage back once its MMAs have finished.
// `it` counts the K steps consumed so far over all tiles, in the producer's order.
// `whileMultiplying` runs once per step while that step's MMAs are in flight.
struct NoWork {
  __device__ __forceinline__ void operator()() const {}
};

template <typename T, bool AKMajor, bool BKMajor, int BN, int Stages, typename Work = NoWork>
__device__ __forceinline__ void multiplyTile(float (&acc)[BN / 2], uint32_t stages, uint32_t full0, uint32_t empty0,
                                             uint32_t& it, int kTiles, int consumer, int lane,
                                             Work&& whileMultiplying = NoWork{}) {
  using Cfg = Config<BN, Stages>;
  constexpr bool kBf16 = std::is_same<T, __nv_bfloat16>::value;
#pragma unroll
  for (int i = 0; i < BN / 2; i++) acc[i] = 0.f;
  for (int kb = 0; kb < kTiles; kb++, it++) {
    const uint32_t s = it % Stages;
    hopper::mbarrierWait(full0 + 8 * s, (it / Stages) & 1);
    const uint32_t stageA = stages + s * Cfg::kStageBytes;
    const uint32_t stageB = stageA + Cfg::kABytes;
    hopper::fenceAccumulators(acc);
    hopper::wgmmaFence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) {
      // K-major: this consumer's 64 rows start 64 * 128 bytes in; a k16 step is 32 bytes
      // along the (swizzled) row, which the hardware resolves from the address bits.
      // Leading offset unused; 8-row groups 1024 bytes apart.
      // M/N-major: this consumer's 64 columns are the consumer-th box; a k16 step is 16
      // rows of 128 bytes. Leading offset: the next 64-column box; stride: 8 K rows.
      const uint32_t addressA = AKMajor ? stageA + consumer * 64 * 128 + kk * 32
                                        : stageA + consumer * kAtomBytes + kk * 16 * 128;
      const uint32_t addressB = BKMajor ? stageB + kk * 32 : stageB + kk * 16 * 128;
      const uint64_t descA = hopper::swizzled128Descriptor(addressA, AKMajor ? 16 : kAtomBytes, 1024);
      const uint64_t descB = hopper::swizzled128Descriptor(addressB, BKMajor ? 16 : kAtomBytes, 1024);
      hopper::wgmma<BN, kBf16, !AKMajor, !BKMajor>(acc, descA, descB);
    }
    hopper::wgmmaCommit();
    whileMultiplying();
    // The previous K step's MMAs are done once at most this one is pending: release its
    // stage (the current one stays busy until the next step, or the end of the tile).
    hopper::wgmmaWait<1>();
    hopper::fenceAccumulators(acc);
    if (kb > 0 && lane == 0) hopper::mbarrierArrive(empty0 + 8 * ((it - 1) % Stages));
  }
  hopper::wgmmaWait<0>();
  hopper::fenceAccumulators(acc);
  if (lane == 0) hopper::mbarrierArrive(empty0 + 8 * ((it - 1) % Stages));
}

// Writes one consumer's 64 x BN accumulators into C [M, N] (row-major) at (m0, n0), rounded
// once, with bounds checks. pairedOut: N even and C 4-byte aligned, so pairs store as one word.
// Fragment layout of m64nNk16: register 4j + 2h + e of a thread holds row
// 16 * warp + lane / 4 + 8h, column 8j + 2 * (lane % 4) + e of the consumer's slab.
template <typename T, int BN>
__device__ __forceinline__ void storeTile(const float (&acc)[BN / 2], T* out, int M, int N, int m0, int n0, int consumer,
                                          int warp, int lane, bool pairedOut) {
  const int row0 = m0 + consumer * 64 + warp * 16 + lane / 4;
  const int col0 = n0 + 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < BN / 8; j++) {
    const int col = col0 + 8 * j;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int row = row0 + 8 * h;
      if (row >= M || col >= N) continue;
      T* dst = out + int64_t(row) * N + col;
      const T v0 = Num<T>::store(acc[4 * j + 2 * h]);
      const T v1 = Num<T>::store(acc[4 * j + 2 * h + 1]);
      if (pairedOut) {  // col + 1 < N too
        *reinterpret_cast<uint32_t*>(dst) = bitsOf(v0) | (bitsOf(v1) << 16);
      } else {
        dst[0] = v0;
        if (col + 1 < N) dst[1] = v1;
      }
    }
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace wgmma
}  // namespace blora
