// Large bfloat16 / float16 GEMMs on Hopper: bulk tensor copies (TMA) feed warpgroup MMAs
// (wgmma) through a ring of shared-memory stages, with float32 accumulation rounded once at
// the store.
//
// A block holds three warpgroups. The first is the producer: after giving most of its
// registers away (setmaxnreg), one thread issues the TMA copies of each K step (64 wide) into
// the next free stage, announcing the bytes on the stage's "full" mbarrier. The other two
// are consumers: each owns 64 rows of the 128 x BN block tile (BN = 256 or 128) and, once a
// stage is full, runs four wgmma m64nBNk16 on it straight from shared memory, then hands the
// stage back on its "empty" mbarrier when those MMAs have finished. Accumulators (BN / 2
// floats a thread) stay in registers and are written to global memory with bounds checks.
//
// The grid is persistent: one block per SM walks the output tiles (batches included) with a
// stride of the grid size, in groups of 8 tile rows so that the tiles in flight at one time
// share their A and B panels in L2. The producer runs ahead into the next tile while the
// consumers store the current one. When the tiles are too few for the SMs (few rows), each
// tile's K steps are split over several blocks whose partials the last one sums
// (gemm_split.cuh); the launcher picks the tile width and split with a cost model.
//
// Shared-memory layout and the consumers' loop: gemm_wgmma_tile.cuh. Edges: TMA zero-fills
// everything outside the tensor, so any M, N, K work.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstdlib>
#include <type_traits>

#include "gemm_split.cuh"
#include "gemm_wgmma.h"
#include "gemm_wgmma_tile.cuh"
#include "hopper_ptx.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "matmul_shape.cuh"
#include "numeric.cuh"
#include "scratch.h"

namespace blora {
namespace wgmma {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr int kProducerRegisters = 40;
constexpr int kConsumerRegisters = 232;  // 128 * 40 + 256 * 232 <= 64K registers of the block

// One box at (inner, outer) of a rank-2 map, or (inner, outer, batch) of a rank-3 one.
__device__ __forceinline__ void loadBox(uint32_t dst, const CUtensorMap* map, uint32_t bar, int inner, int outer,
                                        int batch, bool batched) {
  if (batched) hopper::tmaLoad3d(dst, map, bar, inner, outer, batch);
  else hopper::tmaLoad2d(dst, map, bar, inner, outer);
}
#endif

template <typename T, bool AKMajor, bool BKMajor, int BN, int Stages>
__global__ void __launch_bounds__(kThreads, 1)
    gemmWgmmaKernel(const __grid_constant__ CUtensorMap mapA, const __grid_constant__ CUtensorMap mapB,
                    T* __restrict__ C, int M, int N, SplitWalk walk, float* partials, int* counters, bool batchedA,
                    bool batchedB, bool pairedOut) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = Config<BN, Stages>;
  __shared__ __align__(8) uint64_t fullBars[Stages];   // stage loaded (TMA bytes arrived)
  __shared__ __align__(8) uint64_t emptyBars[Stages];  // stage read by every consumer warp
  extern __shared__ unsigned char dynamicShared[];
  const uint32_t stages = (hopper::sharedAddress(dynamicShared) + 1023u) & ~1023u;
  const uint32_t full0 = hopper::sharedAddress(fullBars), empty0 = hopper::sharedAddress(emptyBars);
  const int units = walk.units();
  const int warpgroup = int(threadIdx.x) / 128;

  if (threadIdx.x == 0) {
    for (int s = 0; s < Stages; s++) {
      hopper::mbarrierInit(full0 + 8 * s, 1);                // the producer's expect_tx arrival
      hopper::mbarrierInit(empty0 + 8 * s, kConsumers * 4);  // one arrival per consumer warp
    }
    hopper::fenceBarrierInit();
  }
  __syncthreads();

  if (warpgroup == 0) {
    hopper::releaseRegisters<kProducerRegisters>();
    if (threadIdx.x == 0) {
      hopper::prefetchTensorMap(&mapA);
      hopper::prefetchTensorMap(&mapB);
      uint32_t it = 0;  // K steps issued so far, over all tiles: stage it % Stages, round it / Stages
      for (int unit = int(blockIdx.x); unit < units; unit += int(gridDim.x)) {
        const TileCoords c = tileCoords(walk.tileOf(unit), walk.tilesM, walk.tilesN, BN);
        for (int kb = walk.firstStep(unit); kb < walk.endStep(unit); kb++, it++) {
          const uint32_t s = it % Stages;
          // Round r reuses the stage after the consumers released round r - 1 (phase r - 1
          // of its empty barrier, parity (r - 1) & 1); round 0 passes at once.
          hopper::mbarrierWait(empty0 + 8 * s, ((it / Stages) & 1) ^ 1);
          const uint32_t full = full0 + 8 * s;
          hopper::mbarrierArriveExpectTx(full, Cfg::kStageBytes);  // whole boxes, zero-filled parts included
          const uint32_t stageA = stages + s * Cfg::kStageBytes;
          const uint32_t stageB = stageA + Cfg::kABytes;
          const int k0 = kb * kBK;
          if constexpr (AKMajor) {
            loadBox(stageA, &mapA, full, k0, c.m0, c.batch, batchedA);
          } else {
#pragma unroll
            for (int j = 0; j < kBM / 64; j++) loadBox(stageA + j * kAtomBytes, &mapA, full, c.m0 + 64 * j, k0, c.batch, batchedA);
          }
          if constexpr (BKMajor) {
            loadBox(stageB, &mapB, full, k0, c.n0, c.batch, batchedB);
          } else {
#pragma unroll
            for (int j = 0; j < BN / 64; j++) loadBox(stageB + j * kAtomBytes, &mapB, full, c.n0 + 64 * j, k0, c.batch, batchedB);
          }
        }
      }
    }
  } else {
    hopper::claimRegisters<kConsumerRegisters>();
    const int consumer = warpgroup - 1;
    const int warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32;
    float acc[BN / 2];
    uint32_t it = 0;  // K steps consumed so far, in the producer's order
    for (int unit = int(blockIdx.x); unit < units; unit += int(gridDim.x)) {
      const TileCoords c = tileCoords(walk.tileOf(unit), walk.tilesM, walk.tilesN, BN);
      const int steps = walk.endStep(unit) - walk.firstStep(unit);
      multiplyTile<T, AKMajor, BKMajor, BN, Stages>(acc, stages, full0, empty0, it, steps, consumer, lane);
      if (walk.splits > 1 && !gatherSplits<BN>(acc, partials, counters, walk, unit, 4 * consumer + warp, lane)) continue;
      storeTile<T, BN>(acc, C + int64_t(c.batch) * M * N, M, N, c.m0, c.n0, consumer, warp, lane, pairedOut);
    }
  }
#endif
}

// Writes 1 when the image the driver loaded for this file was compiled for sm_90a.
__global__ void wgmmaImageProbe(int* flag) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *flag = 1;
#else
  *flag = 0;
#endif
}

// --- Host side. ---

PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      fn = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encoder;
}

bool runImageProbe() {
  const ProbeResult& p = probeDevice();
  if (!p.available || p.computeMajor != 9 || p.computeMinor != 0 || !tensorMapEncoder()) return false;
  int* flag = nullptr;
  if (cudaMalloc(&flag, sizeof(int)) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  int host = 0;
  wgmmaImageProbe<<<1, 1, 0, stream()>>>(flag);
  const bool launched = cudaGetLastError() == cudaSuccess;  // no image for this device: not usable
  if (launched) {
    check(cudaMemcpyAsync(&host, flag, sizeof(int), cudaMemcpyDeviceToHost, stream()), "reading the wgmma probe");
    check(cudaStreamSynchronize(stream()), "waiting for the wgmma probe");
  }
  cudaFree(flag);
  return launched && host == 1;
}

// The one stride that steps through the batch dims of `t` in row-major order (0 when the
// operand is broadcast over them); false when they do not collapse to one.
bool collapsedBatchStride(const TensorArg& t, int64_t& stride) {
  stride = 0;
  int64_t span = 0;
  for (int d = t.rank - 3; d >= 0; d--) {
    if (t.shape[d] == 1) continue;
    if (span == 0) {
      stride = t.strides[d];
      span = t.shape[d];
    } else {
      if (t.strides[d] != stride * span) return false;
      span *= t.shape[d];
    }
  }
  return true;
}

// TMA needs a 16-byte aligned start and 16-byte multiples for every stride; rows must not
// overlap (the stride covers the dense extent) and batches must not overlap either.
bool planOperand(const TensorArg& t, int64_t strideK, int64_t strideMN, int64_t extentK, int64_t extentMN,
                 int64_t batches, OperandPlan& p) {
  if (reinterpret_cast<uintptr_t>(t.first()) % 16 != 0) return false;
  int64_t outer = 0;
  if (strideK == 1 && strideMN % 8 == 0 && strideMN >= extentK) {
    p.kMajor = true;
    p.ld = strideMN;
    outer = extentMN;
  } else if (strideMN == 1 && strideK % 8 == 0 && strideK >= extentMN) {
    p.kMajor = false;
    p.ld = strideK;
    outer = extentK;
  } else {
    return false;
  }
  p.batched = false;
  p.batchStride = 0;
  if (batches > 1) {
    int64_t stride = 0;
    if (!collapsedBatchStride(t, stride)) return false;
    if (stride != 0) {
      if (stride % 8 != 0 || stride < p.ld * outer) return false;
      p.batched = true;
      p.batchStride = stride;
    }
  }
  return true;
}

// A tensor map over the operand with 128B swizzle and boxes of 64 dense elements by
// `boxOuter` rows (K-major: boxOuter rows of M / N; M/N-major: 64 rows of K).
bool encodeOperand(CUtensorMap& map, const TensorArg& t, const OperandPlan& p, int64_t extentK, int64_t extentMN,
                   int64_t batches, int boxOuter) {
  const cuuint64_t dims[3] = {cuuint64_t(p.kMajor ? extentK : extentMN), cuuint64_t(p.kMajor ? extentMN : extentK),
                              cuuint64_t(batches)};
  const cuuint64_t strides[2] = {cuuint64_t(p.ld) * 2, cuuint64_t(p.batchStride) * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(p.kMajor ? boxOuter : 64), 1};
  const cuuint32_t elementStrides[3] = {1, 1, 1};
  const CUtensorMapDataType type =
      t.dtype == DType::BFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUresult r = tensorMapEncoder()(&map, type, p.batched ? 3 : 2, t.first(), dims, strides, box, elementStrides,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}

// Both operands planned and their tensor maps encoded for a block tile of 128 x bn.
struct Prepared {
  CUtensorMap mapA, mapB;
  OperandPlan a, b;
  int tilesM = 0, tilesN = 0, tiles = 0;
};

bool prepare(const TensorArg& a, const TensorArg& b, const MatmulShape& s, int bn, Prepared& p) {
  if (a.dtype != DType::BFloat16 && a.dtype != DType::Float16) return false;
  if (s.M <= 0 || s.N <= 0 || s.K <= 0 || s.batches <= 0 || s.batches > INT32_MAX) return false;
  if (!tensorMapEncoder()) return false;
  const int64_t tilesM = (int64_t(s.M) + kBM - 1) / kBM, tilesN = (int64_t(s.N) + bn - 1) / bn;
  if (tilesM * tilesN * s.batches > INT32_MAX) return false;
  p.tilesM = int(tilesM);
  p.tilesN = int(tilesN);
  p.tiles = int(tilesM * tilesN * s.batches);
  return planOperand(a, s.sak, s.sam, s.K, s.M, s.batches, p.a) && planOperand(b, s.sbk, s.sbn, s.K, s.N, s.batches, p.b) &&
         encodeOperand(p.mapA, a, p.a, s.K, s.M, s.batches, kBM) && encodeOperand(p.mapB, b, p.b, s.K, s.N, s.batches, bn);
}

template <typename T, bool AKMajor, bool BKMajor, int BN, int Stages>
void launchKernel(const Prepared& p, const TensorArg& out, const MatmulShape& s, int splits) {
  constexpr int bytes = Config<BN, Stages>::kSharedBytes;
  auto kernel = gemmWgmmaKernel<T, AKMajor, BKMajor, BN, Stages>;
  static bool configured = false;
  if (!configured) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
          "setting the shared memory of the wgmma GEMM");
    configured = true;
  }
  const SplitWalk walk = makeSplitWalk(p.tilesM, p.tilesN, s.batches, (int64_t(s.K) + kBK - 1) / kBK, BN, splits);
  // Partials of a split walk, released once the launch is queued (the one stream orders its reuse).
  DeviceScratch partials(walk.splits > 1 ? splitPartialBytes(walk) : 0);
  int* counters = walk.splits > 1 ? splitCounters() : nullptr;
  const int blocks = std::min(walk.units(), smCount());
  const bool paired = s.N % 2 == 0 && reinterpret_cast<uintptr_t>(out.first()) % 4 == 0;
  kernel<<<blocks, kThreads, bytes, stream()>>>(p.mapA, p.mapB, reinterpret_cast<T*>(out.first()), s.M, s.N, walk,
                                                partials.as<float>(), counters, p.a.batched, p.b.batched, paired);
}

// Plans, encodes and queues one tile configuration with each tile's K steps in `splits` units,
// whatever the size of the product and without checking the device (the caller does); false
// when the operands do not suit TMA.
template <int BN, int Stages>
bool launchVariant(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s, int splits = 1) {
  if (size_t(Config<BN, Stages>::kSharedBytes) > maxSharedMemoryPerBlock()) return false;
  Prepared p;
  if (!prepare(a, b, s, BN, p)) return false;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.a.kMajor && p.b.kMajor) launchKernel<T, true, true, BN, Stages>(p, out, s, splits);
    else if (p.a.kMajor) launchKernel<T, true, false, BN, Stages>(p, out, s, splits);
    else if (p.b.kMajor) launchKernel<T, false, true, BN, Stages>(p, out, s, splits);
    else launchKernel<T, false, false, BN, Stages>(p, out, s, splits);
  };
  if (a.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  checkLaunch("matmul (tensor cores, TMA + wgmma)");
  return true;
}

// The configurations the matmul launcher uses: 192 KB of stages each.
constexpr int kWideStages = 4;    // 128 x 256 tiles, 48 KB a stage
constexpr int kNarrowStages = 6;  // 128 x 128 tiles, 32 KB a stage

// The launcher's cost model (see cheapestSplitPlan): a 128 x 128 step costs about half a
// 128 x 256 one, whether the MMAs bound it or the operands' bytes, and a unit's fixed cost is
// 20-25 steps; fitted on an H200 to x · Wᵀ at 1-4096 rows of the LLaMA-7B shapes with every
// width and split forced (dev/gemm_wgmma splits; bench/results/logs/gemm-wgmma-2026-12-01-splits.log).
constexpr SplitCosts kGemmCosts{600, 320, 15000, 12000};

GemmPath& pathSetting() {
  static GemmPath path = [] {
    const char* text = std::getenv("BLORA_CUDA_GEMM");
    return text ? parseGemmPath(text, "BLORA_CUDA_GEMM") : GemmPath::Auto;
  }();
  return path;
}

}  // namespace wgmma

const char* gemmPathName(GemmPath path) {
  switch (path) {
    case GemmPath::Wgmma: return "wgmma";
    case GemmPath::Pipelined: return "pipelined";
    default: return "auto";
  }
}

GemmPath parseGemmPath(const std::string& text, const char* source) {
  if (text.empty() || text == "auto") return GemmPath::Auto;
  if (text == "wgmma") return GemmPath::Wgmma;
  if (text == "pipelined") return GemmPath::Pipelined;
  fail(std::string(source) + " must be 'auto', 'wgmma' or 'pipelined', got '" + text + "'");
}

GemmPath gemmPath() { return wgmma::pathSetting(); }

GemmPath setGemmPath(GemmPath path) {
  const GemmPath old = wgmma::pathSetting();
  wgmma::pathSetting() = path;
  return old;
}

std::string setGemmPathByName(const std::string& name) {
  return gemmPathName(setGemmPath(parseGemmPath(name, "setGemmPath")));
}

bool wgmmaAvailable() {
  static int state = -1;  // probed at first use: the probe needs the device
  if (state < 0) {
    state = wgmma::runImageProbe() ? 1 : 0;
    // The split-K counters are zeroed now, with the probe's own waits, rather than at the
    // first split launch, which may come while a graph is being captured.
    if (state == 1) wgmma::splitCounters();
  }
  return state == 1;
}

wgmma::SplitPlan gemmWgmmaPlan(const TensorArg& a, const TensorArg& b, const MatmulShape& s) {
  const GemmPath path = gemmPath();
  if (path == GemmPath::Pipelined) return {};
  if (a.dtype != DType::BFloat16 && a.dtype != DType::Float16) return {};
  if (s.M == 0 || s.N == 0 || s.K == 0 || s.batches == 0 || !wgmmaAvailable()) return {};
  const int64_t tilesM = (int64_t(s.M) + wgmma::kBM - 1) / wgmma::kBM, kTiles = (int64_t(s.K) + wgmma::kBK - 1) / wgmma::kBK;
  wgmma::SplitPlan plan = wgmma::cheapestSplitPlan(tilesM, s.N, s.batches, kTiles, s.N > 128, true, wgmma::kGemmCosts);
  // Auto: only products whose units fill at least half of the device (smaller ones suit the
  // kernels with smaller tiles).
  const int64_t units = tilesM * ((int64_t(s.N) + plan.bn - 1) / plan.bn) * s.batches * plan.splits;
  if (path == GemmPath::Auto && (s.K < 64 || units * 2 < smCount())) return {};
  const int shared = plan.bn == 256 ? wgmma::Config<256, wgmma::kWideStages>::kSharedBytes
                                    : wgmma::Config<128, wgmma::kNarrowStages>::kSharedBytes;
  if (size_t(shared) > maxSharedMemoryPerBlock()) return {};
  wgmma::Prepared p;
  return wgmma::prepare(a, b, s, plan.bn, p) ? plan : wgmma::SplitPlan{};
}

bool launchGemmWgmma(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s) {
  const wgmma::SplitPlan plan = gemmWgmmaPlan(a, b, s);
  if (plan.bn == 256) return wgmma::launchVariant<256, wgmma::kWideStages>(a, b, out, s, plan.splits);
  if (plan.bn == 128) return wgmma::launchVariant<128, wgmma::kNarrowStages>(a, b, out, s, plan.splits);
  return false;
}

}  // namespace blora
