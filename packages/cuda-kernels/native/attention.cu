// Attention forward, flash style (the SIMT kernel; bfloat16 / float16 problems with head dims
// 64 and 128 take the tensor-core kernel of attention_tc.cu when it applies): the T x S score
// matrix never reaches global memory. A block takes 16 query rows of one (batch, head), 4 per
// warp, and walks the visible keys in tiles of 32 staged in shared memory (K, V), keeping per
// row a running max m, a running sum l of exp(score - m) and the unnormalized output (lanes own
// output dims), rescaled whenever m grows (online softmax). Scores and sums are in the compute
// type (float32 for float32 and the 16-bit types, float64 for float64). Rows that see no key
// get o = 0, lse = -Infinity.
#include "attention_common.cuh"
#include "block_reduce.cuh"
#include "dependent_launch.cuh"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = kWarps * kAttnRowsPerWarp;  // query rows per block

// Shared memory (in compute-type elements): Q [rows][D], K [keys][D + 1], V [keys][Dv], P [rows][keys].
size_t forwardSharedElements(const AttnDims& a) {
  return size_t(kRows * a.d + kAttnKeys * (a.d + 1) + kAttnKeys * a.dv + kRows * kAttnKeys);
}

template <typename T, int NL>
__global__ void __launch_bounds__(kWarps * 32)
    attentionForwardKernel(const T* q, const T* k, const T* v, T* o, typename Num<T>::Compute* lse, AttnDims a) {
  dependentKernelBegins();
  using C = typename Num<T>::Compute;
  a.readKeyLength();
  extern __shared__ __align__(16) unsigned char sharedBytes[];
  C* qs = reinterpret_cast<C*>(sharedBytes);
  C* ksh = qs + kRows * a.d;
  C* vsh = ksh + kAttnKeys * (a.d + 1);
  C* ps = vsh + kAttnKeys * a.dv;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = (a.t + kRows - 1) / kRows;
  const C scale = C(a.scale);
  for (int64_t work = blockIdx.x; work < a.b * a.h * tiles; work += gridDim.x) {
    const int64_t tile = work % tiles, bh = work / tiles;
    const int64_t hi = bh % a.h, bi = bh / a.h, kvh = hi / a.group;
    const int64_t t0 = tile * kRows;
    const T* qBase = q + bi * a.qs[0] + hi * a.qs[1];
    const T* kBase = k + bi * a.ks[0] + kvh * a.ks[1];
    const T* vBase = v + bi * a.vs[0] + kvh * a.vs[1];
    __syncthreads();  // the previous work item is done with shared memory
    stageRows(qs, a.d, qBase, a.qs[2], a.qs[3], t0, a.t, kRows, a.d);
    const int64_t tLast = (t0 + kRows < a.t ? t0 + kRows : a.t) - 1;
    const int64_t keyStart = a.keyLo(t0), keyEnd = a.keyHi(tLast);
    C m[kAttnRowsPerWarp], l[kAttnRowsPerWarp], acc[kAttnRowsPerWarp][NL];
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
      m[i] = -C(INFINITY);
      l[i] = 0;
#pragma unroll
      for (int e = 0; e < NL; e++) acc[i][e] = 0;
    }
    for (int64_t s0 = keyStart; s0 < keyEnd; s0 += kAttnKeys) {
      __syncthreads();  // Q is staged / the previous tile is consumed
      stageRows(ksh, a.d + 1, kBase, a.ks[2], a.ks[3], s0, keyEnd, kAttnKeys, a.d);
      stageRows(vsh, a.dv, vBase, a.vs[2], a.vs[3], s0, keyEnd, kAttnKeys, a.dv);
      __syncthreads();
      // Scores of this lane's key against the warp's rows: one K read serves every row.
      C dot[kAttnRowsPerWarp] = {};
      const C* kRow = ksh + lane * (a.d + 1);
      for (int64_t c = 0; c < a.d; c++) {
        const C kv = kRow[c];
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) dot[i] += qs[(warp * kAttnRowsPerWarp + i) * a.d + c] * kv;
      }
      const int64_t s = s0 + lane;
#pragma unroll
      for (int i = 0; i < kAttnRowsPerWarp; i++) {
        const int r = warp * kAttnRowsPerWarp + i;
        const int64_t t = t0 + r;
        const bool visible = t < a.t && s < keyEnd && a.sees(t, s);
        const C score = visible ? dot[i] * scale : -C(INFINITY);
        const C tileMax = warpReduce(score, [](C x, C y) { return x > y ? x : y; });
        const C mNew = tileMax > m[i] ? tileMax : m[i];
        C p = 0, correction = 1;
        if (mNew != -C(INFINITY)) {
          p = visible ? mExp(score - mNew) : C(0);
          correction = m[i] == -C(INFINITY) ? C(0) : mExp(m[i] - mNew);
        }
        l[i] = l[i] * correction + warpReduce(p, [](C x, C y) { return x + y; });
        m[i] = mNew;
#pragma unroll
        for (int e = 0; e < NL; e++) acc[i][e] *= correction;
        ps[r * kAttnKeys + lane] = p;
      }
      __syncwarp();
      for (int j = 0; j < kAttnKeys; j++) {
        C vj[NL];
#pragma unroll
        for (int e = 0; e < NL; e++) {
          const int64_t c = lane + 32 * e;
          vj[e] = c < a.dv ? vsh[j * a.dv + c] : C(0);
        }
#pragma unroll
        for (int i = 0; i < kAttnRowsPerWarp; i++) {
          const C pj = ps[(warp * kAttnRowsPerWarp + i) * kAttnKeys + j];
#pragma unroll
          for (int e = 0; e < NL; e++) acc[i][e] += pj * vj[e];
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kAttnRowsPerWarp; i++) {
      const int64_t t = t0 + warp * kAttnRowsPerWarp + i;
      if (t >= a.t) continue;
      const int64_t row = bh * a.t + t;
      const C inv = l[i] > C(0) ? C(1) / l[i] : C(0);
#pragma unroll
      for (int e = 0; e < NL; e++) {
        const int64_t c = lane + 32 * e;
        if (c < a.dv) o[row * a.dv + c] = Num<T>::store(acc[i][e] * inv);
      }
      if (lane == 0) lse[row] = l[i] > C(0) ? m[i] + mLog(l[i]) : -C(INFINITY);
    }
  }
}

}  // namespace

// attention_tc.cu: the tensor-core forward (bfloat16 / float16, D = Dv = 64 or 128, inputs
// readable in 16-byte rows) unless BLORA_CUDA_ATTENTION / setAttentionPath says 'simt'; false,
// launching nothing, when it does not apply.
bool launchAttentionTensorCore(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o,
                               const TensorArg& lse, const AttnDims& a);

void launchAttention(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o,
                     const TensorArg& lse, const AttentionMask& mask) {
  const char* op = "attention";
  const AttnDims a = attentionDims(op, q, k, v, mask);
  requireDType(op, o, q.dtype, "output");
  requireContiguous(op, o, "output");
  requireContiguous(op, lse, "lse");
  requireDType(op, lse, q.dtype == DType::Float64 ? DType::Float64 : DType::Float32, "lse");
  if (o.numel() != a.b * a.h * a.t * a.dv || lse.numel() != a.b * a.h * a.t) {
    fail(std::string(op) + ": outputs " + o.describe() + ", " + lse.describe() + " do not match q " + q.describe());
  }
  const int64_t work = a.b * a.h * ((a.t + kRows - 1) / kRows);
  if (work == 0) return;
  if (launchAttentionTensorCore(q, k, v, o, lse, a)) return;
  visitDType<DTypeSet::Float>(q.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    visitLaneWidth(a.dv, [&](auto width) {
      constexpr int NL = decltype(width)::value;
      const size_t bytes = forwardSharedElements(a) * sizeof(C);
      allowSharedMemory(attentionForwardKernel<T, NL>, bytes, op, a);
      launchDependent("attention", attentionForwardKernel<T, NL>, attentionGrid(work), kWarps * 32, bytes,
                      reinterpret_cast<const T*>(q.first()), reinterpret_cast<const T*>(k.first()), reinterpret_cast<const T*>(v.first()),
                      reinterpret_cast<T*>(o.first()), reinterpret_cast<C*>(lse.first()), a);
    });
  });
  checkLaunch(op);
}

}  // namespace blora
