// Attention forward on tensor cores (bfloat16 / float16, head dims 64 and 128), FlashAttention-2
// style. A block takes 16 query rows per warp (64 with 4 warps, 128 with 8) of one (batch,
// head) and walks the key tiles of 64 that its rows can see; tiles that every row sees
// completely skip the mask, tiles no row sees are never visited (causal / sliding window).
// K and V tiles are double-buffered in shared memory with cp.async, so the copy of the next
// tile overlaps the math of the current one. Per warp and tile:
//   S = Q Kᵀ (mma, float32), in log2 units (scale · log2 e folded into one multiply);
//   online softmax in registers: running row max m and partial row sums l per thread (a row
//   lives on the four lanes of a quad, reduced with two shuffles);
//   P = 2^(S - m) rounded to 16 bits in registers and used directly as the A operand of P V.
// At the end o = acc / l and lse = (m + log2 l) ln 2 (float32, [B, H, T] like the op returns);
// rows that see no key get o = 0 and lse = -Infinity. No atomics: the result is deterministic.
//
// This file also holds the path setting (BLORA_CUDA_ATTENTION / setAttentionPath).
#include <cmath>
#include <cstdlib>

#include "attention_tc.cuh"
#include "dependent_launch.cuh"
#include "launch.cuh"

namespace blora {
namespace attn_tc {

template <typename T, int D, int Warps>
__global__ void __launch_bounds__(Warps * 32)
    attentionTcForwardKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                             T* __restrict__ o, float* __restrict__ lse, AttnDims a, float scaleLog2) {
  dependentKernelBegins();
  constexpr int kRows = Warps * 16, kThreads = Warps * 32, kSteps = D / 16;
  constexpr uint32_t kKvBytes = Tile<D>::bytes(kKeyTile);
  a.readKeyLength();
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t qTile = smemAddress(smem);
  const uint32_t kTiles = qTile + Tile<D>::bytes(kRows);  // two K buffers, then two V buffers
  const uint32_t vTiles = kTiles + 2 * kKvBytes;
  const int warp = int(threadIdx.x) / 32, laneId = int(threadIdx.x) % 32, quad = laneId & 3;

  // The last query tiles see the most keys under a causal mask: they are scheduled first.
  const int64_t bh = blockIdx.x, hi = bh % a.h, bi = bh / a.h, kvh = hi / a.group;
  const int64_t t0 = int64_t(gridDim.y - 1 - blockIdx.y) * kRows;
  const int64_t tLast = (t0 + kRows < a.t ? t0 + kRows : a.t) - 1;
  const int64_t keyLo = a.keyLo(t0), keyHi = a.keyHi(tLast);
  const int64_t firstTile = keyLo / kKeyTile;
  const int tiles = keyHi > keyLo ? int((keyHi + kKeyTile - 1) / kKeyTile - firstTile) : 0;
  const T* kBase = k + bi * a.ks[0] + kvh * a.ks[1];
  const T* vBase = v + bi * a.vs[0] + kvh * a.vs[1];
  const int64_t kStride = a.ks[2], vStride = a.vs[2], keys = a.s;
  auto loadKeys = [=](int j) {
    const int64_t s0 = (firstTile + j) * kKeyTile;
    const uint32_t buffer = uint32_t(j & 1) * kKvBytes;
    loadRows<T, D, kKeyTile, kThreads>(kTiles + buffer, kBase, kStride, s0, keys);
    loadRows<T, D, kKeyTile, kThreads>(vTiles + buffer, vBase, vStride, s0, keys);
  };

  loadRows<T, D, kRows, kThreads>(qTile, q + bi * a.qs[0] + hi * a.qs[1], a.qs[2], t0, a.t);
  if (tiles > 0) loadKeys(0);
  cpAsyncCommit();
  cpAsyncWaitAll();
  __syncthreads();
  // Q fragments stay in registers for D = 64; for D = 128 they are re-read from shared memory
  // (one ldmatrix per eight mma), which keeps the kernel within its registers.
  constexpr bool kQInRegisters = D <= 64;
  uint32_t qFrag[kQInRegisters ? kSteps : 1][4];
  if constexpr (kQInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) loadA<D>(qFrag[ks], qTile, warp * 16, ks, laneId);
  }

  // This thread's rows: t0 + warp * 16 + lane / 4 (+ 8 for accumulators 2 and 3).
  const int64_t row0 = t0 + warp * 16 + (laneId >> 2);
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  float rowMax[2] = {-INFINITY, -INFINITY}, rowSum[2] = {0.f, 0.f};

  for (int j = 0; j < tiles; j++) {
    if (j > 0) {
      cpAsyncWaitAll();  // tile j has landed (for this thread) ...
      __syncthreads();   // ... for every thread, and every warp is done with tile j - 1
    }
    if (j + 1 < tiles) loadKeys(j + 1);  // into the buffer tile j - 1 used
    cpAsyncCommit();
    const uint32_t kTile = kTiles + uint32_t(j & 1) * kKvBytes, vTile = vTiles + uint32_t(j & 1) * kKvBytes;
    const int lane = opaque(laneId);

    float s[kKeyTile / 8][4];
#pragma unroll
    for (int n = 0; n < kKeyTile / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < kSteps; ks++) {
      uint32_t qa[4];
      if constexpr (kQInRegisters) {
        qa[0] = qFrag[ks][0], qa[1] = qFrag[ks][1], qa[2] = qFrag[ks][2], qa[3] = qFrag[ks][3];
      } else {
        loadA<D>(qa, qTile, warp * 16, ks, lane);
      }
      mmaWithRows<T, D, kKeyTile>(s, qa, kTile, ks, lane);
    }

    // Scores in log2 units; masked ones -inf (only on tiles some row does not fully see).
    const int64_t s0 = (firstTile + j) * kKeyTile;
    const bool full = s0 + kKeyTile <= a.keyHi(t0) && s0 >= a.keyLo(tLast);
    int lo[2], hi[2];
    visibleInTile(a, row0, s0, lo, hi);
#pragma unroll
    for (int n = 0; n < kKeyTile / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = n * 8 + 2 * quad + (e & 1);
        float x = s[n][e] * scaleLog2;
        if (!full && (key < lo[e >> 1] || key >= hi[e >> 1])) x = -INFINITY;
        s[n][e] = x;
      }
    }

    // Online softmax: new row max, rescale of the running sums and accumulators.
    float base[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float mx = rowMax[h];
#pragma unroll
      for (int n = 0; n < kKeyTile / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      mx = quadMax(mx);
      base[h] = mx == -INFINITY ? 0.f : mx;  // a row that has seen nothing yet keeps p = 0
      const float correction = fastExp2(rowMax[h] - base[h]);
      rowMax[h] = mx;
      rowSum[h] *= correction;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        acc[n][2 * h] *= correction;
        acc[n][2 * h + 1] *= correction;
      }
    }
#pragma unroll
    for (int n = 0; n < kKeyTile / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        s[n][e] = fastExp2(s[n][e] - base[e >> 1]);
        rowSum[e >> 1] += s[n][e];
      }
    }

    // acc += P V: P from registers, V [key][d] read transposed.
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; kk++) {
      uint32_t p[4];
      accumulatorsToA<T>(p, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dj = 0; dj < D / 16; dj++) {
        uint32_t b[4];
        loadBFromCols<D>(b, vTile, kk * 16, dj * 16, lane);
        mma<T>(acc[2 * dj], p, b[0], b[1]);
        mma<T>(acc[2 * dj + 1], p, b[2], b[3]);
      }
    }
  }

#pragma unroll
  for (int h = 0; h < 2; h++) {
    const float sum = quadSum(rowSum[h]);
    const int64_t t = row0 + 8 * h;
    if (t >= a.t) continue;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T* dst = o + (bh * a.t + t) * D + 2 * quad;
#pragma unroll
    for (int n = 0; n < D / 8; n++) storePair<T>(dst + n * 8, acc[n][2 * h] * inv, acc[n][2 * h + 1] * inv);
    if (quad == 0) lse[bh * a.t + t] = sum > 0.f ? rowMax[h] * kLn2 + logf(sum) : -INFINITY;
  }
}

// Dynamic shared memory of the forward kernel: Q, then K and V twice each.
template <int D, int Warps>
constexpr size_t forwardSharedBytes() {
  return size_t(Tile<D>::bytes(Warps * 16)) + 4 * size_t(Tile<D>::bytes(kKeyTile));
}

// Launches one configuration; false (nothing launched) when the GPU lacks the shared memory.
template <typename T, int D, int Warps>
bool launchForward(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o, const TensorArg& lse,
                   const AttnDims& a) {
  constexpr size_t bytes = forwardSharedBytes<D, Warps>();
  if (bytes > maxSharedMemoryPerBlock()) return false;
  auto kernel = attentionTcForwardKernel<T, D, Warps>;
  static bool configured = false;
  if (!configured) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
          "setting the shared memory of the tensor-core attention forward");
    configured = true;
  }
  const int64_t rows = Warps * 16;
  const dim3 grid(unsigned(a.b * a.h), unsigned((a.t + rows - 1) / rows));
  const float scaleLog2 = float(a.scale * 1.4426950408889634);
  launchDependent("attentionTc", kernel, grid, Warps * 32, bytes, reinterpret_cast<const T*>(q.first()), reinterpret_cast<const T*>(k.first()),
                  reinterpret_cast<const T*>(v.first()), reinterpret_cast<T*>(o.first()), reinterpret_cast<float*>(lse.first()), a, scaleLog2);
  return true;
}

AttentionPath& pathSetting();

}  // namespace attn_tc

// Declared where used (attention.cu, the bindings) rather than in kernels.h.
bool launchAttentionTensorCore(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o,
                               const TensorArg& lse, const AttnDims& a);
std::string setAttentionPathByName(const std::string& name);
std::string attentionKernelName(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg* dO);

// The tensor-core forward when it applies (the caller checked o and lse: contiguous, right
// shapes and dtypes); false, launching nothing, otherwise.
bool launchAttentionTensorCore(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o,
                               const TensorArg& lse, const AttnDims& a) {
  using namespace attn_tc;
  if (!tensorCoreAttentionApplies(q, k, v, nullptr, a) || reinterpret_cast<uintptr_t>(o.first()) % 4 != 0) return false;
  bool launched = false;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    launched = a.d == 64 ? launchForward<T, 64, 4>(q, k, v, o, lse, a) : launchForward<T, 128, 4>(q, k, v, o, lse, a);
  };
  if (q.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  if (launched) checkLaunch("attention (tensor cores)");
  return launched;
}

namespace attn_tc {

const char* attentionPathName(AttentionPath path) {
  switch (path) {
    case AttentionPath::TensorCore: return "tensorcore";
    case AttentionPath::Simt: return "simt";
    default: return "auto";
  }
}

AttentionPath parseAttentionPath(const std::string& text, const char* source) {
  if (text.empty() || text == "auto") return AttentionPath::Auto;
  if (text == "tensorcore") return AttentionPath::TensorCore;
  if (text == "simt") return AttentionPath::Simt;
  fail(std::string(source) + " must be 'auto', 'tensorcore' or 'simt', got '" + text + "'");
}

// Read once, at the first attention call (an invalid value throws at every call until fixed).
AttentionPath& pathSetting() {
  static AttentionPath path = [] {
    const char* text = std::getenv("BLORA_CUDA_ATTENTION");
    return text ? parseAttentionPath(text, "BLORA_CUDA_ATTENTION") : AttentionPath::Auto;
  }();
  return path;
}

AttentionPath attentionPath() { return pathSetting(); }

}  // namespace attn_tc

// Sets the attention path by name ('auto', 'tensorcore' or 'simt'); returns the previous one's name.
std::string setAttentionPathByName(const std::string& name) {
  using namespace attn_tc;
  const AttentionPath next = parseAttentionPath(name, "setAttentionPath");
  const AttentionPath old = pathSetting();
  pathSetting() = next;
  return attentionPathName(old);
}

// 'tensorcore' or 'simt': the kernels attention (dO null) or attentionBackward would run these operands on.
std::string attentionKernelName(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg* dO) {
  const AttnDims a = attentionDims("attentionKernel", q, k, v, AttentionMask{});
  return attn_tc::tensorCoreAttentionApplies(q, k, v, dO, a) ? "tensorcore" : "simt";
}

}  // namespace blora
