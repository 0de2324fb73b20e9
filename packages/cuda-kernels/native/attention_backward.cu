// Attention backward from the saved log-sum-exp: probabilities are recomputed, never stored.
// (The SIMT kernels; bfloat16 / float16 problems with head dims 64 and 128 take the tensor-core
// kernels of attention_tc_backward.cu when they apply.)
// With P = exp(scale q.k - lse), Delta_t = dO_t . o_t and dS = P (dO.v - Delta) scale:
//   dq_t = sum_s dS_ts k_s,   dk_s = sum_t dS_ts q_t,   dv_s = sum_t P_ts dO_t.
// Two kernels, no atomics (so results are deterministic):
// - dq: like the forward, a block takes 16 query rows (4 per warp, lanes own keys of a tile of
//   32, then output dims); it also computes Delta and saves it for the second kernel;
// - dk/dv: a block takes 32 keys of one key/value head (4 per warp, lanes own queries of a tile
//   of 32, then output dims) and walks every query row of every query head of its group that
//   sees them, so the grouped heads' contributions add up in a fixed order.
#include "attention_common.cuh"
#include "block_reduce.cuh"
#include "launch.cuh"
#include "numeric.cuh"
#include "scratch.h"

namespace blora {

namespace {

constexpr int kDqWarps = 4;
constexpr int kDqRows = kDqWarps * kAttnRowsPerWarp;  // query rows per dq block
constexpr int kKvWarps = kAttnKeys / kAttnRowsPerWarp;  // 8 warps: 4 keys each
constexpr int kQueries = 32;                            // query rows per dk/dv tile: one per lane

struct Strides4 {
  int64_t s[4];
};

Strides4 stridesOf(const TensorArg& t) { return {{t.strides[0], t.strides[1], t.strides[2], t.strides[3]}}; }

// Q [rows][D], dO [rows][Dv], K [keys][D + 1], V [keys][Dv + 1], dS [rows][keys], lse and Delta [rows].
size_t dqSharedElements(const AttnDims& a) {
  return size_t(kDqRows * (a.d + a.dv) + kAttnKeys * (a.d + 1 + a.dv + 1) + kDqRows * kAttnKeys + 2 * kDqRows);
}

// K [keys][D], V [keys][Dv], Q [queries][D + 1], dO [queries][Dv + 1], P and dS [keys][queries], lse and Delta [queries].
size_t kvSharedElements(const AttnDims& a) {
  return size_t(kAttnKeys * (a.d + a.dv) + kQueries * (a.d + 1 + a.dv + 1) + 2 * kAttnKeys * kQueries + 2 * kQueries);
}

template <typename T, int NL>
__global__ void __launch_bounds__(kDqWarps * 32)
    attentionDqKernel(const T* dO, Strides4 dos, const T* q, const T* k, const T* v, const T* o, Strides4 os,
                      const typename Num<T>::Compute* lse, typename Num<T>::Compute* delta, T* dq, AttnDims a) {
  using C = typename Num<T>::Compute;
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  C* qsh = reinterpret_cast<C*>(sharedBytes);
  C* dosh = qsh + kDqRows * a.d;
  C* ksh = dosh + kDqRows * a.dv;
  C* vsh = ksh + kAttnKeys * (a.d + 1);
  C* dssh = vsh + kAttnKeys * (a.dv + 1);
  C* lsesh = dssh + kDqRows * kAttnKeys;
  C* deltash = lsesh + kDqRows;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = (a.t + kDqRows - 1) / kDqRows;
  const C scale = C(a.scale);
  for (int64_t work = blockIdx.x; work < a.b * a.h * tiles; work += gridDim.x) {
    const int64_t tile = work % tiles, bh = work / tiles;
    const int64_t hi = bh % a.h, bi = bh / a.h, kvh = hi / a.group;
    const int64_t t0 = tile * kDqRows;
    const T* qBase = q + bi * a.qs[0] + hi * a.qs[1];
    const T* dOBase = dO + bi * dos.s[0] + hi * dos.s[1];
    const T* oBase = o + bi * os.s[0] + hi * os.s[1];
    const T* kBase = k + bi * a.ks[0] + kvh * a.ks[1];
    const T* vBase = v + bi * a.vs[0] + kvh * a.vs[1];
    __syncthreads();  // the previous work item is done with shared memory
    stageRows(qsh, a.d, qBase, a.qs[2], a.qs[3], t0, a.t, kDqRows, a.d);
    stageRows(dosh, a.dv, dOBase, dos.s[2], dos.s[3], t0, a.t, kDqRows, a.dv);
    // Delta and lse of the warp's rows.
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
      const int r = warp * kAttnRowsPerWarp + i;
      const int64_t t = t0 + r;
      C partial = 0;
      if (t < a.t) {
        for (int64_t c = lane; c < a.dv; c += 32) {
          partial += Num<T>::load(dOBase[t * dos.s[2] + c * dos.s[3]]) * Num<T>::load(oBase[t * os.s[2] + c * os.s[3]]);
        }
      }
      const C rowDelta = warpReduce(partial, [](C x, C y) { return x + y; });
      if (lane == 0) {
        deltash[r] = rowDelta;
        lsesh[r] = t < a.t ? lse[bh * a.t + t] : C(0);
        if (t < a.t) delta[bh * a.t + t] = rowDelta;
      }
    }
    C acc[kAttnRowsPerWarp][NL];
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
#pragma unroll
      for (int e = 0; e < NL; e++) acc[i][e] = 0;
    }
    const int64_t tLast = (t0 + kDqRows < a.t ? t0 + kDqRows : a.t) - 1;
    const int64_t keyStart = a.keyLo(t0), keyEnd = a.keyHi(tLast);
    for (int64_t s0 = keyStart; s0 < keyEnd; s0 += kAttnKeys) {
      __syncthreads();
      stageRows(ksh, a.d + 1, kBase, a.ks[2], a.ks[3], s0, keyEnd, kAttnKeys, a.d);
      stageRows(vsh, a.dv + 1, vBase, a.vs[2], a.vs[3], s0, keyEnd, kAttnKeys, a.dv);
      __syncthreads();
      C dot[kAttnRowsPerWarp] = {}, dp[kAttnRowsPerWarp] = {};
      for (int64_t c = 0; c < a.d; c++) {
        const C kv = ksh[lane * (a.d + 1) + c];
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) dot[i] += qsh[(warp * kAttnRowsPerWarp + i) * a.d + c] * kv;
      }
      for (int64_t c = 0; c < a.dv; c++) {
        const C vv = vsh[lane * (a.dv + 1) + c];
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) dp[i] += dosh[(warp * kAttnRowsPerWarp + i) * a.dv + c] * vv;
      }
      const int64_t s = s0 + lane;
#pragma unroll
      for (int i = 0; i < kAttnRowsPerWarp; i++) {
        const int r = warp * kAttnRowsPerWarp + i;
        const int64_t t = t0 + r;
        const bool visible = t < a.t && s < keyEnd && a.sees(t, s);
        const C p = visible ? mExp(dot[i] * scale - lsesh[r]) : C(0);
        dssh[r * kAttnKeys + lane] = p * (dp[i] - deltash[r]) * scale;
      }
      __syncwarp();
      for (int j = 0; j < kAttnKeys; j++) {
        C kj[NL];
#pragma unroll
        for (int e = 0; e < NL; e++) {
          const int64_t c = lane + 32 * e;
          kj[e] = c < a.d ? ksh[j * (a.d + 1) + c] : C(0);
        }
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) {
          const C ds = dssh[(warp * kAttnRowsPerWarp + i) * kAttnKeys + j];
#pragma unroll
          for (int e = 0; e < NL; e++) acc[i][e] += ds * kj[e];
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
      const int64_t t = t0 + warp * kAttnRowsPerWarp + i;
      if (t >= a.t) continue;
#pragma unroll
      for (int e = 0; e < NL; e++) {
        const int64_t c = lane + 32 * e;
        if (c < a.d) dq[(bh * a.t + t) * a.d + c] = Num<T>::store(acc[i][e]);
      }
    }
  }
}

template <typename T, int NL>
__global__ void __launch_bounds__(kKvWarps * 32)
    attentionDkDvKernel(const T* dO, Strides4 dos, const T* q, const T* k, const T* v,
                        const typename Num<T>::Compute* lse, const typename Num<T>::Compute* delta, T* dk, T* dv,
                        AttnDims a) {
  using C = typename Num<T>::Compute;
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  C* ksh = reinterpret_cast<C*>(sharedBytes);
  C* vsh = ksh + kAttnKeys * a.d;
  C* qsh = vsh + kAttnKeys * a.dv;
  C* dosh = qsh + kQueries * (a.d + 1);
  C* psh = dosh + kQueries * (a.dv + 1);
  C* dssh = psh + kAttnKeys * kQueries;
  C* lsesh = dssh + kAttnKeys * kQueries;
  C* deltash = lsesh + kQueries;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = (a.s + kAttnKeys - 1) / kAttnKeys;
  const C scale = C(a.scale);
  for (int64_t work = blockIdx.x; work < a.b * a.hkv * tiles; work += gridDim.x) {
    const int64_t tile = work % tiles, bkv = work / tiles;
    const int64_t kvh = bkv % a.hkv, bi = bkv / a.hkv;
    const int64_t s0 = tile * kAttnKeys;
    const T* kBase = k + bi * a.ks[0] + kvh * a.ks[1];
    const T* vBase = v + bi * a.vs[0] + kvh * a.vs[1];
    __syncthreads();  // the previous work item is done with shared memory
    stageRows(ksh, a.d, kBase, a.ks[2], a.ks[3], s0, a.s, kAttnKeys, a.d);
    stageRows(vsh, a.dv, vBase, a.vs[2], a.vs[3], s0, a.s, kAttnKeys, a.dv);
    C dkAcc[kAttnRowsPerWarp][NL], dvAcc[kAttnRowsPerWarp][NL];
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
#pragma unroll
      for (int e = 0; e < NL; e++) dkAcc[i][e] = dvAcc[i][e] = 0;
    }
    // Queries that see some key of [s0, sLast]: t >= s0 - S + T when causal, t < sLast + T - S + window with a window.
    const int64_t sLast = (s0 + kAttnKeys < a.s ? s0 + kAttnKeys : a.s) - 1;
    int64_t tStart = a.causal ? s0 - a.s + a.t : 0;
    int64_t tEnd = a.window > 0 ? sLast + a.t - a.s + a.window : a.t;
    tStart = tStart < 0 ? 0 : tStart;
    tEnd = tEnd > a.t ? a.t : tEnd;
    for (int64_t g = 0; g < a.group; g++) {
      const int64_t hq = kvh * a.group + g;
      const int64_t rowBase = (bi * a.h + hq) * a.t;
      const T* qBase = q + bi * a.qs[0] + hq * a.qs[1];
      const T* dOBase = dO + bi * dos.s[0] + hq * dos.s[1];
      for (int64_t t0 = tStart; t0 < tEnd; t0 += kQueries) {
        __syncthreads();  // K and V are staged / the previous query tile is consumed
        stageRows(qsh, a.d + 1, qBase, a.qs[2], a.qs[3], t0, tEnd, kQueries, a.d);
        stageRows(dosh, a.dv + 1, dOBase, dos.s[2], dos.s[3], t0, tEnd, kQueries, a.dv);
        if (threadIdx.x < kQueries) {
          const int64_t t = t0 + threadIdx.x;
          lsesh[threadIdx.x] = t < tEnd ? lse[rowBase + t] : C(0);
          deltash[threadIdx.x] = t < tEnd ? delta[rowBase + t] : C(0);
        }
        __syncthreads();
        C dot[kAttnRowsPerWarp] = {}, dp[kAttnRowsPerWarp] = {};
        for (int64_t c = 0; c < a.d; c++) {
          const C qv = qsh[lane * (a.d + 1) + c];
#pragma unroll
          for (int i = 0; i < kAttnRowsPerWarp; i++) dot[i] += qv * ksh[(warp * kAttnRowsPerWarp + i) * a.d + c];
        }
        for (int64_t c = 0; c < a.dv; c++) {
          const C dov = dosh[lane * (a.dv + 1) + c];
#pragma unroll
          for (int i = 0; i < kAttnRowsPerWarp; i++) dp[i] += dov * vsh[(warp * kAttnRowsPerWarp + i) * a.dv + c];
        }
        const int64_t t = t0 + lane;
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) {
          const int key = warp * kAttnRowsPerWarp + i;
          const int64_t s = s0 + key;
          const bool visible = t < tEnd && s < a.s && a.sees(t, s);
          const C p = visible ? mExp(dot[i] * scale - lsesh[lane]) : C(0);
          psh[key * kQueries + lane] = p;
          dssh[key * kQueries + lane] = p * (dp[i] - deltash[lane]) * scale;
        }
        __syncwarp();
        for (int j = 0; j < kQueries; j++) {
          C qj[NL], doj[NL];
#pragma unroll
          for (int e = 0; e < NL; e++) {
            const int64_t c = lane + 32 * e;
            qj[e] = c < a.d ? qsh[j * (a.d + 1) + c] : C(0);
            doj[e] = c < a.dv ? dosh[j * (a.dv + 1) + c] : C(0);
          }
#pragma unroll
          for (int i = 0; i < kAttnRowsPerWarp; i++) {
            const int key = warp * kAttnRowsPerWarp + i;
            const C p = psh[key * kQueries + j], ds = dssh[key * kQueries + j];
#pragma unroll
            for (int e = 0; e < NL; e++) {
              dvAcc[i][e] += p * doj[e];
              dkAcc[i][e] += ds * qj[e];
            }
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
      const int64_t s = s0 + warp * kAttnRowsPerWarp + i;
      if (s >= a.s) continue;
      const int64_t row = bkv * a.s + s;
#pragma unroll
      for (int e = 0; e < NL; e++) {
        const int64_t c = lane + 32 * e;
        if (c < a.d) dk[row * a.d + c] = Num<T>::store(dkAcc[i][e]);
        if (c < a.dv) dv[row * a.dv + c] = Num<T>::store(dvAcc[i][e]);
      }
    }
  }
}

void requireGradient(const char* op, const TensorArg& grad, const TensorArg& like, const char* role) {
  requireSameShape(op, grad, like);
  requireDType(op, grad, like.dtype, role);
  requireContiguous(op, grad, role);
}

}  // namespace

// attention_tc_backward.cu: the tensor-core backward (same conditions as the forward's, dO
// readable in 16-byte rows too); false, launching nothing, when it does not apply.
bool launchAttentionBackwardTensorCore(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                                       const TensorArg& o, const TensorArg& lse, const TensorArg& dq,
                                       const TensorArg& dk, const TensorArg& dv, const AttnDims& a);

void launchAttentionBackward(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                             const TensorArg& o, const TensorArg& lse, const TensorArg& dq, const TensorArg& dk,
                             const TensorArg& dv, const AttentionMask& mask) {
  const char* op = "attentionBackward";
  const AttnDims a = attentionDims(op, q, k, v, mask);
  requireStrides4(op, dO, "dO");
  requireStrides4(op, o, "o");
  requireDType(op, dO, q.dtype, "dO");
  requireDType(op, o, q.dtype, "o");
  requireSameShape(op, dO, o);
  if (o.shape[0] != a.b || o.shape[1] != a.h || o.shape[2] != a.t || o.shape[3] != a.dv) {
    fail(std::string(op) + ": o " + o.describe() + " does not match q " + q.describe() + " and v " + v.describe());
  }
  requireContiguous(op, lse, "lse");
  requireDType(op, lse, q.dtype == DType::Float64 ? DType::Float64 : DType::Float32, "lse");
  if (lse.numel() != a.b * a.h * a.t) fail(std::string(op) + ": lse " + lse.describe() + " does not match q " + q.describe());
  requireGradient(op, dq, q, "dq");
  requireGradient(op, dk, k, "dk");
  requireGradient(op, dv, v, "dv");
  if (launchAttentionBackwardTensorCore(dO, q, k, v, o, lse, dq, dk, dv, a)) return;
  const int64_t dqWork = a.b * a.h * ((a.t + kDqRows - 1) / kDqRows);
  const int64_t kvWork = a.b * a.hkv * ((a.s + kAttnKeys - 1) / kAttnKeys);
  visitDType<DTypeSet::Float>(q.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    DeviceScratch delta(size_t(std::max<int64_t>(a.b * a.h * a.t, 1)) * sizeof(C));
    const T* pdO = reinterpret_cast<const T*>(dO.first());
    const T* pq = reinterpret_cast<const T*>(q.first());
    const T* pk = reinterpret_cast<const T*>(k.first());
    const T* pv = reinterpret_cast<const T*>(v.first());
    const C* plse = reinterpret_cast<const C*>(lse.first());
    if (dqWork > 0) {
      visitLaneWidth(a.d, [&](auto width) {
        constexpr int NL = decltype(width)::value;
        const size_t bytes = dqSharedElements(a) * sizeof(C);
        allowSharedMemory(attentionDqKernel<T, NL>, bytes, op, a);
        attentionDqKernel<T, NL><<<attentionGrid(dqWork), kDqWarps * 32, bytes, stream()>>>(
            pdO, stridesOf(dO), pq, pk, pv, reinterpret_cast<const T*>(o.first()), stridesOf(o), plse, delta.as<C>(),
            reinterpret_cast<T*>(dq.first()), a);
      });
      checkLaunch("attentionBackward (dq)");
    }
    if (kvWork > 0) {
      visitLaneWidth(a.d > a.dv ? a.d : a.dv, [&](auto width) {
        constexpr int NL = decltype(width)::value;
        const size_t bytes = kvSharedElements(a) * sizeof(C);
        allowSharedMemory(attentionDkDvKernel<T, NL>, bytes, op, a);
        attentionDkDvKernel<T, NL><<<attentionGrid(kvWork), kKvWarps * 32, bytes, stream()>>>(
            pdO, stridesOf(dO), pq, pk, pv, plse, delta.as<C>(), reinterpret_cast<T*>(dk.first()),
            reinterpret_cast<T*>(dv.first()), a);
      });
      checkLaunch("attentionBackward (dk, dv)");
    }
  });
}

}  // namespace blora
