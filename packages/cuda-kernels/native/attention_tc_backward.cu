// Attention backward on tensor cores (bfloat16 / float16, head dims 64 and 128), FlashAttention-2
// style, from the saved log-sum-exp: probabilities are recomputed, never stored. With
// P = exp(scale q.k - lse), Delta_t = dO_t . o_t and dS = P (dO.v - Delta):
//   dq = scale dS K,   dk = scale dSᵀ Q,   dv = Pᵀ dO.
// Three kernels, no atomics, so results are deterministic run to run:
// - Delta: one warp per query row, float32;
// - dk/dv: a block owns 64 keys of one key/value head (16 per warp) and walks the query tiles
//   (64 rows for D = 64, 32 for D = 128) of every query head of its group that see them, Q, dO,
//   lse and Delta double-buffered with cp.async. Per warp: Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (mma),
//   Pᵀ and dSᵀ in registers, then dV += Pᵀ dO and dK += dSᵀ Q with Pᵀ / dSᵀ reused as A fragments;
// - dq: a block owns 64 query rows (16 per warp) and walks the key tiles they see, K and V
//   double-buffered: S = Q Kᵀ, dP = dO Vᵀ, dS in registers, dQ += dS K.
// Tiles that every pair sees skip the mask; tiles no pair sees are never visited.
#include <cmath>

#include "attention_tc.cuh"
#include "launch.cuh"
#include "scratch.h"

namespace blora {
namespace attn_tc {

constexpr int kBackwardWarps = 4;
constexpr int kBackwardThreads = kBackwardWarps * 32;
constexpr int kDqRows = kBackwardWarps * 16;  // query rows per dq block

// delta[row] = sum_c dO[row, c] o[row, c] for the B H T rows, any strides (one warp per row).
template <typename T>
__global__ void __launch_bounds__(256)
    attentionTcDeltaKernel(const T* __restrict__ dO, RowStrides dOs, const T* __restrict__ o, RowStrides os,
                           int64_t oLastStride, int64_t dOLastStride, float* __restrict__ delta, AttnDims a) {
  const int lane = int(threadIdx.x) % 32;
  const int64_t rows = a.b * a.h * a.t;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    const int64_t t = row % a.t, bh = row / a.t, hi = bh % a.h, bi = bh / a.h;
    const T* pdO = dO + bi * dOs.batch + hi * dOs.head + t * dOs.row;
    const T* po = o + bi * os.batch + hi * os.head + t * os.row;
    float sum = 0.f;
    for (int64_t c = lane; c < a.dv; c += 32) sum += Num<T>::load(pdO[c * dOLastStride]) * Num<T>::load(po[c * oLastStride]);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) delta[row] = sum;
  }
}

// --- dk / dv. ---

template <int D>
struct DkDvConfig {
  static constexpr int kQueries = D <= 64 ? 64 : 32;  // query rows per tile
  static constexpr uint32_t kKeyBytes = Tile<D>::bytes(kKeyTile);
  static constexpr uint32_t kQueryBytes = Tile<D>::bytes(kQueries);
  // K, V, then two buffers each of Q, dO, and lse and Delta (float32).
  static constexpr size_t kSharedBytes = 2 * size_t(kKeyBytes) + 4 * size_t(kQueryBytes) + 4 * kQueries * sizeof(float);
};

template <typename T, int D>
__global__ void __launch_bounds__(kBackwardThreads)
    attentionTcDkDvKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                          const T* __restrict__ dO, RowStrides dOs, const float* __restrict__ lse,
                          const float* __restrict__ delta, T* __restrict__ dk, T* __restrict__ dv, AttnDims a,
                          float scaleLog2) {
  using Config = DkDvConfig<D>;
  constexpr int kQueries = Config::kQueries, kSteps = D / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t kTile = smemAddress(smem);
  const uint32_t vTile = kTile + Config::kKeyBytes;
  const uint32_t qTiles = vTile + Config::kKeyBytes;               // two buffers
  const uint32_t dOTiles = qTiles + 2 * Config::kQueryBytes;      // two buffers
  const uint32_t statsAddress = dOTiles + 2 * Config::kQueryBytes;  // lse[2][kQueries], delta[2][kQueries]
  const float* lseShared = reinterpret_cast<const float*>(smem + (statsAddress - kTile));
  const float* deltaShared = lseShared + 2 * kQueries;
  const int warp = int(threadIdx.x) / 32, laneId = int(threadIdx.x) % 32, quad = laneId & 3;

  const int64_t bkv = blockIdx.x, kvh = bkv % a.hkv, bi = bkv / a.hkv;
  const int64_t s0 = int64_t(blockIdx.y) * kKeyTile;
  const int64_t sLast = (s0 + kKeyTile < a.s ? s0 + kKeyTile : a.s) - 1;
  // Queries that see some key of [s0, sLast]: t >= s0 - S + T when causal, t < sLast + T - S + window with a window.
  int64_t tStart = a.causal ? s0 - a.s + a.t : 0;
  int64_t tEnd = a.window > 0 ? sLast + a.t - a.s + a.window : a.t;
  tStart = tStart < 0 ? 0 : tStart;
  tEnd = tEnd > a.t ? a.t : tEnd;
  const int queryTiles = tEnd > tStart ? int((tEnd - tStart + kQueries - 1) / kQueries) : 0;
  const int items = queryTiles * int(a.group);

  const int64_t qStride = a.qs[2], dOStride = dOs.row, queryCount = a.t;
  auto loadItem = [=](int i) {
    const int64_t hq = kvh * a.group + i / queryTiles;
    const int64_t t0 = tStart + int64_t(i % queryTiles) * kQueries;
    const uint32_t buffer = uint32_t(i & 1);
    loadRows<T, D, kQueries, kBackwardThreads>(qTiles + buffer * Config::kQueryBytes, q + bi * a.qs[0] + hq * a.qs[1],
                                               qStride, t0, queryCount);
    loadRows<T, D, kQueries, kBackwardThreads>(dOTiles + buffer * Config::kQueryBytes,
                                               dO + bi * dOs.batch + hq * dOs.head, dOStride, t0, queryCount);
    const int r = int(threadIdx.x);
    if (r < kQueries) {
      const int64_t row = (bi * a.h + hq) * a.t + t0 + r;
      const int bytes = t0 + r < queryCount ? 4 : 0;
      cpAsync4(statsAddress + (buffer * kQueries + r) * 4u, bytes ? lse + row : lse, bytes);
      cpAsync4(statsAddress + ((2 + buffer) * kQueries + r) * 4u, bytes ? delta + row : delta, bytes);
    }
  };

  loadRows<T, D, kKeyTile, kBackwardThreads>(kTile, k + bi * a.ks[0] + kvh * a.ks[1], a.ks[2], s0, a.s);
  loadRows<T, D, kKeyTile, kBackwardThreads>(vTile, v + bi * a.vs[0] + kvh * a.vs[1], a.vs[2], s0, a.s);
  if (items > 0) loadItem(0);
  cpAsyncCommit();
  cpAsyncWaitAll();
  __syncthreads();

  // K and V fragments of the warp's 16 keys stay in registers for D = 64 (re-read for D = 128).
  constexpr bool kKvInRegisters = D <= 64;
  uint32_t kFrag[kKvInRegisters ? kSteps : 1][4], vFrag[kKvInRegisters ? kSteps : 1][4];
  if constexpr (kKvInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) {
      loadA<D>(kFrag[ks], kTile, warp * 16, ks, laneId);
      loadA<D>(vFrag[ks], vTile, warp * 16, ks, laneId);
    }
  }

  float dkAcc[D / 8][4], dvAcc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) dkAcc[n][e] = dvAcc[n][e] = 0.f;
  }
  // This thread's keys: s0 + warp * 16 + lane / 4 (+ 8 for accumulators 2 and 3).
  const int64_t key0 = s0 + warp * 16 + (laneId >> 2);

  for (int i = 0; i < items; i++) {
    if (i > 0) {
      cpAsyncWaitAll();
      __syncthreads();
    }
    if (i + 1 < items) loadItem(i + 1);
    cpAsyncCommit();
    const int buffer = i & 1;
    const uint32_t qTile = qTiles + uint32_t(buffer) * Config::kQueryBytes;
    const uint32_t dOTile = dOTiles + uint32_t(buffer) * Config::kQueryBytes;
    const int64_t t0 = tStart + int64_t(i % queryTiles) * kQueries;
    const int lane = opaque(laneId);

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for the warp's 16 keys x kQueries queries.
    float s[kQueries / 8][4], dp[kQueries / 8][4];
#pragma unroll
    for (int n = 0; n < kQueries / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
    }
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) {
      uint32_t ka[4], va[4];
      if constexpr (kKvInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; e++) ka[e] = kFrag[ks][e], va[e] = vFrag[ks][e];
      } else {
        loadA<D>(ka, kTile, warp * 16, ks, lane);
        loadA<D>(va, vTile, warp * 16, ks, lane);
      }
      mmaWithRows<T, D, kQueries>(s, ka, qTile, ks, lane);
      mmaWithRows<T, D, kQueries>(dp, va, dOTile, ks, lane);
    }

    // Pᵀ = 2^(S scale log2 e - lse log2 e) and dSᵀ = Pᵀ (dPᵀ - Delta); masked pairs give 0.
    const bool full = t0 + kQueries <= a.t && a.keyLo(t0 + kQueries - 1) <= s0 && a.keyHi(t0) >= s0 + kKeyTile;
#pragma unroll
    for (int n = 0; n < kQueries / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int col = n * 8 + 2 * quad + (e & 1);
        const float rowLse = lseShared[buffer * kQueries + col], rowDelta = deltaShared[buffer * kQueries + col];
        bool visible = true;
        if (!full) {
          const int64_t t = t0 + col;
          visible = t < a.t && a.sees(t, key0 + 8 * (e >> 1));
        }
        const float p = visible ? fastExp2(s[n][e] * scaleLog2 - rowLse * kLog2e) : 0.f;
        s[n][e] = p;
        dp[n][e] = p * (dp[n][e] - rowDelta);
      }
    }

    // dV += Pᵀ dO and dK += dSᵀ Q: the query dim is the k dim, dO and Q read transposed.
#pragma unroll
    for (int kk = 0; kk < kQueries / 16; kk++) {
      uint32_t pa[4], dsa[4];
      accumulatorsToA<T>(pa, s[2 * kk], s[2 * kk + 1]);
      accumulatorsToA<T>(dsa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dj = 0; dj < D / 16; dj++) {
        uint32_t b[4];
        loadBFromCols<D>(b, dOTile, kk * 16, dj * 16, lane);
        mma<T>(dvAcc[2 * dj], pa, b[0], b[1]);
        mma<T>(dvAcc[2 * dj + 1], pa, b[2], b[3]);
        loadBFromCols<D>(b, qTile, kk * 16, dj * 16, lane);
        mma<T>(dkAcc[2 * dj], dsa, b[0], b[1]);
        mma<T>(dkAcc[2 * dj + 1], dsa, b[2], b[3]);
      }
    }
  }

  const float scale = float(a.scale);
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int64_t key = key0 + 8 * h;
    if (key >= a.s) continue;
    const int64_t offset = (bkv * a.s + key) * D + 2 * quad;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      storePair<T>(dk + offset + n * 8, dkAcc[n][2 * h] * scale, dkAcc[n][2 * h + 1] * scale);
      storePair<T>(dv + offset + n * 8, dvAcc[n][2 * h], dvAcc[n][2 * h + 1]);
    }
  }
}

// --- dq. ---

template <int D>
struct DqConfig {
  static constexpr uint32_t kRowBytes = Tile<D>::bytes(kDqRows);
  static constexpr uint32_t kKeyBytes = Tile<D>::bytes(kKeyTile);
  // Q, dO, then two buffers each of K and V.
  static constexpr size_t kSharedBytes = 2 * size_t(kRowBytes) + 4 * size_t(kKeyBytes);
};

template <typename T, int D>
__global__ void __launch_bounds__(kBackwardThreads)
    attentionTcDqKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const T* __restrict__ dO, RowStrides dOs, const float* __restrict__ lse,
                        const float* __restrict__ delta, T* __restrict__ dq, AttnDims a, float scaleLog2) {
  using Config = DqConfig<D>;
  constexpr int kSteps = D / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t qTile = smemAddress(smem);
  const uint32_t dOTile = qTile + Config::kRowBytes;
  const uint32_t kTiles = dOTile + Config::kRowBytes;  // two buffers
  const uint32_t vTiles = kTiles + 2 * Config::kKeyBytes;
  const int warp = int(threadIdx.x) / 32, laneId = int(threadIdx.x) % 32, quad = laneId & 3;

  // The last query tiles see the most keys under a causal mask: they are scheduled first.
  const int64_t bh = blockIdx.x, hi = bh % a.h, bi = bh / a.h, kvh = hi / a.group;
  const int64_t t0 = int64_t(gridDim.y - 1 - blockIdx.y) * kDqRows;
  const int64_t tLast = (t0 + kDqRows < a.t ? t0 + kDqRows : a.t) - 1;
  const int64_t keyLo = a.keyLo(t0), keyHi = a.keyHi(tLast);
  const int64_t firstTile = keyLo / kKeyTile;
  const int tiles = keyHi > keyLo ? int((keyHi + kKeyTile - 1) / kKeyTile - firstTile) : 0;
  const T* kBase = k + bi * a.ks[0] + kvh * a.ks[1];
  const T* vBase = v + bi * a.vs[0] + kvh * a.vs[1];
  const int64_t kStride = a.ks[2], vStride = a.vs[2], keys = a.s;
  auto loadKeys = [=](int j) {
    const int64_t s0 = (firstTile + j) * kKeyTile;
    const uint32_t buffer = uint32_t(j & 1) * Config::kKeyBytes;
    loadRows<T, D, kKeyTile, kBackwardThreads>(kTiles + buffer, kBase, kStride, s0, keys);
    loadRows<T, D, kKeyTile, kBackwardThreads>(vTiles + buffer, vBase, vStride, s0, keys);
  };

  loadRows<T, D, kDqRows, kBackwardThreads>(qTile, q + bi * a.qs[0] + hi * a.qs[1], a.qs[2], t0, a.t);
  loadRows<T, D, kDqRows, kBackwardThreads>(dOTile, dO + bi * dOs.batch + hi * dOs.head, dOs.row, t0, a.t);
  if (tiles > 0) loadKeys(0);
  cpAsyncCommit();

  // This thread's rows: t0 + warp * 16 + lane / 4 (+ 8): their lse (log2 units) and Delta.
  const int64_t row0 = t0 + warp * 16 + (laneId >> 2);
  float rowLse[2], rowDelta[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const bool inside = row0 + 8 * h < a.t;
    rowLse[h] = inside ? lse[bh * a.t + row0 + 8 * h] * kLog2e : 0.f;
    rowDelta[h] = inside ? delta[bh * a.t + row0 + 8 * h] : 0.f;
  }
  cpAsyncWaitAll();
  __syncthreads();

  constexpr bool kRowsInRegisters = D <= 64;  // Q and dO fragments (re-read for D = 128)
  uint32_t qFrag[kRowsInRegisters ? kSteps : 1][4], dOFrag[kRowsInRegisters ? kSteps : 1][4];
  if constexpr (kRowsInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) {
      loadA<D>(qFrag[ks], qTile, warp * 16, ks, laneId);
      loadA<D>(dOFrag[ks], dOTile, warp * 16, ks, laneId);
    }
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int j = 0; j < tiles; j++) {
    if (j > 0) {
      cpAsyncWaitAll();
      __syncthreads();
    }
    if (j + 1 < tiles) loadKeys(j + 1);
    cpAsyncCommit();
    const uint32_t kTile = kTiles + uint32_t(j & 1) * Config::kKeyBytes;
    const uint32_t vTile = vTiles + uint32_t(j & 1) * Config::kKeyBytes;
    const int lane = opaque(laneId);

    // S = Q Kᵀ and dP = dO Vᵀ for the warp's 16 rows x 64 keys.
    float s[kKeyTile / 8][4], dp[kKeyTile / 8][4];
#pragma unroll
    for (int n = 0; n < kKeyTile / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
    }
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) {
      uint32_t qa[4], da[4];
      if constexpr (kRowsInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; e++) qa[e] = qFrag[ks][e], da[e] = dOFrag[ks][e];
      } else {
        loadA<D>(qa, qTile, warp * 16, ks, lane);
        loadA<D>(da, dOTile, warp * 16, ks, lane);
      }
      mmaWithRows<T, D, kKeyTile>(s, qa, kTile, ks, lane);
      mmaWithRows<T, D, kKeyTile>(dp, da, vTile, ks, lane);
    }

    // dS = P (dP - Delta), P = 2^(S scale log2 e - lse log2 e); masked pairs give 0.
    const int64_t s0 = (firstTile + j) * kKeyTile;
    const bool full = s0 + kKeyTile <= a.keyHi(t0) && s0 >= a.keyLo(tLast);
    int lo[2], hi[2];
    visibleInTile(a, row0, s0, lo, hi);
#pragma unroll
    for (int n = 0; n < kKeyTile / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = n * 8 + 2 * quad + (e & 1), h = e >> 1;
        const bool visible = full || (key >= lo[h] && key < hi[h]);
        const float p = visible ? fastExp2(s[n][e] * scaleLog2 - rowLse[h]) : 0.f;
        dp[n][e] = p * (dp[n][e] - rowDelta[h]);
      }
    }

    // acc += dS K: the key dim is the k dim, K read transposed.
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; kk++) {
      uint32_t dsa[4];
      accumulatorsToA<T>(dsa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dj = 0; dj < D / 16; dj++) {
        uint32_t b[4];
        loadBFromCols<D>(b, kTile, kk * 16, dj * 16, lane);
        mma<T>(acc[2 * dj], dsa, b[0], b[1]);
        mma<T>(acc[2 * dj + 1], dsa, b[2], b[3]);
      }
    }
  }

  const float scale = float(a.scale);
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int64_t t = row0 + 8 * h;
    if (t >= a.t) continue;
    T* dst = dq + (bh * a.t + t) * D + 2 * quad;
#pragma unroll
    for (int n = 0; n < D / 8; n++) storePair<T>(dst + n * 8, acc[n][2 * h] * scale, acc[n][2 * h + 1] * scale);
  }
}

// Sets a kernel's dynamic shared memory limit once; false when the GPU has less.
template <typename Kernel>
bool configureShared(Kernel* kernel, size_t bytes, bool& configured) {
  if (bytes > maxSharedMemoryPerBlock()) return false;
  if (!configured) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
          "setting the shared memory of the tensor-core attention backward");
    configured = true;
  }
  return true;
}

template <typename T, int D>
bool launchBackward(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                    const TensorArg& o, const TensorArg& lse, const TensorArg& dq, const TensorArg& dk,
                    const TensorArg& dv, const AttnDims& a) {
  static bool dkdvConfigured = false, dqConfigured = false;
  auto dkdvKernel = attentionTcDkDvKernel<T, D>;
  auto dqKernel = attentionTcDqKernel<T, D>;
  if (!configureShared(dkdvKernel, DkDvConfig<D>::kSharedBytes, dkdvConfigured) ||
      !configureShared(dqKernel, DqConfig<D>::kSharedBytes, dqConfigured)) {
    return false;
  }
  const int64_t rows = a.b * a.h * a.t;
  DeviceScratch delta(size_t(rows) * sizeof(float));
  const T* pdO = reinterpret_cast<const T*>(dO.first());
  const T* pq = reinterpret_cast<const T*>(q.first());
  const T* pk = reinterpret_cast<const T*>(k.first());
  const T* pv = reinterpret_cast<const T*>(v.first());
  const float* plse = reinterpret_cast<const float*>(lse.first());
  const float scaleLog2 = float(a.scale * 1.4426950408889634);

  const int64_t deltaBlocks = std::min<int64_t>((rows + 7) / 8, int64_t(smCount()) * 16);
  attentionTcDeltaKernel<T><<<unsigned(deltaBlocks), 256, 0, stream()>>>(
      pdO, rowStridesOf(dO), reinterpret_cast<const T*>(o.first()), rowStridesOf(o), o.strides[3], dO.strides[3],
      delta.as<float>(), a);
  checkLaunch("attentionBackward (tensor cores, Delta)");

  const dim3 dkdvGrid(unsigned(a.b * a.hkv), unsigned((a.s + kKeyTile - 1) / kKeyTile));
  dkdvKernel<<<dkdvGrid, kBackwardThreads, DkDvConfig<D>::kSharedBytes, stream()>>>(
      pq, pk, pv, pdO, rowStridesOf(dO), plse, delta.as<float>(), reinterpret_cast<T*>(dk.first()),
      reinterpret_cast<T*>(dv.first()), a, scaleLog2);
  checkLaunch("attentionBackward (tensor cores, dk and dv)");

  const dim3 dqGrid(unsigned(a.b * a.h), unsigned((a.t + kDqRows - 1) / kDqRows));
  dqKernel<<<dqGrid, kBackwardThreads, DqConfig<D>::kSharedBytes, stream()>>>(
      pq, pk, pv, pdO, rowStridesOf(dO), plse, delta.as<float>(), reinterpret_cast<T*>(dq.first()), a, scaleLog2);
  checkLaunch("attentionBackward (tensor cores, dq)");
  return true;
}

}  // namespace attn_tc

// Declared where used (attention_backward.cu) rather than in kernels.h.
bool launchAttentionBackwardTensorCore(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                                       const TensorArg& o, const TensorArg& lse, const TensorArg& dq,
                                       const TensorArg& dk, const TensorArg& dv, const AttnDims& a);

// The tensor-core backward when it applies (the caller checked every argument: dq, dk, dv and
// lse contiguous, shapes and dtypes); false, launching nothing, otherwise.
bool launchAttentionBackwardTensorCore(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                                       const TensorArg& o, const TensorArg& lse, const TensorArg& dq,
                                       const TensorArg& dk, const TensorArg& dv, const AttnDims& a) {
  using namespace attn_tc;
  if (!tensorCoreAttentionApplies(q, k, v, &dO, a)) return false;
  for (const TensorArg* out : {&dq, &dk, &dv}) {
    if (reinterpret_cast<uintptr_t>(out->first()) % 4 != 0) return false;
  }
  bool launched = false;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    launched = a.d == 64 ? launchBackward<T, 64>(dO, q, k, v, o, lse, dq, dk, dv, a)
                         : launchBackward<T, 128>(dO, q, k, v, o, lse, dq, dk, dv, a);
  };
  if (q.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  return launched;
}

}  // namespace blora
