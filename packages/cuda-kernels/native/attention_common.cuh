// Shared by the attention forward and backward kernels: the problem dims, the end-aligned
// causal / sliding-window mask, the tile sizes and launch helpers.
//
// Query t (of T) sees keys [lo(t), hi(t)) of S, with `last = t + S - T` the key aligned with it:
//   hi(t) = causal ? min(S, last + 1) : S,   lo(t) = window ? max(0, last - window + 1) : 0.
// Both bounds grow with t, so a tile of consecutive queries sees [lo(first), hi(last)).
#pragma once

#include <string>
#include <type_traits>

#include "common.h"
#include "kernels.h"
#include "numeric.cuh"

namespace blora {

constexpr int kAttnKeys = 32;         // keys per tile: one per lane
constexpr int kAttnRowsPerWarp = 4;   // query rows (forward, dq) or keys (dk/dv) per warp
constexpr int kAttnMaxHeadDim = 256;  // D and Dv up to 32 lanes x 8 values

// Sizes and strides of one attention problem; `group` query heads share a key/value head.
struct AttnDims {
  int64_t b, h, t, d, hkv, s, dv, group;
  int64_t qs[4], ks[4], vs[4];
  bool causal;
  int64_t window;  // 0: none
  double scale;
  const int32_t* keyLength;  // forward only: the live keys, read on the device (AttentionMask)

  // Called first by the forward kernels: S becomes the live key count when one is given.
  __device__ void readKeyLength() {
    if (keyLength) {
      const int64_t live = *keyLength;
      s = live < 0 ? 0 : live < s ? live : s;
    }
  }

  __host__ __device__ int64_t keyHi(int64_t query) const {
    const int64_t last = query + s - t;
    return causal ? (last + 1 < s ? last + 1 : s) : s;
  }
  __host__ __device__ int64_t keyLo(int64_t query) const {
    const int64_t last = query + s - t;
    return window > 0 ? (last - window + 1 > 0 ? last - window + 1 : 0) : 0;
  }
  __host__ __device__ bool sees(int64_t query, int64_t key) const { return key >= keyLo(query) && key < keyHi(query); }
};

inline void requireStrides4(const char* op, const TensorArg& t, const char* role) {
  if (t.rank != 4) fail(std::string(op) + ": " + role + " must have rank 4, got " + t.describe());
}

// Reads the dims of q, k, v (rank 4, matching shapes, one float dtype).
inline AttnDims attentionDims(const char* op, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                              const AttentionMask& mask) {
  requireStrides4(op, q, "q");
  requireStrides4(op, k, "k");
  requireStrides4(op, v, "v");
  requireDType(op, k, q.dtype, "k");
  requireDType(op, v, q.dtype, "v");
  AttnDims a{};
  a.b = q.shape[0];
  a.h = q.shape[1];
  a.t = q.shape[2];
  a.d = q.shape[3];
  a.hkv = k.shape[1];
  a.s = k.shape[2];
  a.dv = v.shape[3];
  if (k.shape[0] != a.b || k.shape[3] != a.d || v.shape[0] != a.b || v.shape[1] != a.hkv || v.shape[2] != a.s ||
      a.hkv < 1 || a.h % a.hkv != 0) {
    fail(std::string(op) + ": q " + q.describe() + ", k " + k.describe() + " and v " + v.describe() +
         " do not form an attention problem");
  }
  if (a.d > kAttnMaxHeadDim || a.dv > kAttnMaxHeadDim) {
    fail(std::string(op) + ": head dims up to " + std::to_string(kAttnMaxHeadDim) + " are supported on cuda, got D = " +
         std::to_string(a.d) + ", Dv = " + std::to_string(a.dv));
  }
  a.group = a.h / a.hkv;
  for (int i = 0; i < 4; i++) {
    a.qs[i] = q.strides[i];
    a.ks[i] = k.strides[i];
    a.vs[i] = v.strides[i];
  }
  a.causal = mask.causal;
  a.window = mask.window;
  a.scale = mask.scale;
  a.keyLength = mask.keyLength;
  return a;
}

// Values per lane (a power of two) for a head dim of `dim` spread over 32 lanes.
inline int valuesPerLane(int64_t dim) { return dim <= 64 ? 2 : dim <= 128 ? 4 : 8; }

// Calls fn(std::integral_constant-like tag) with the lane width for `dim`.
template <typename Fn>
void visitLaneWidth(int64_t dim, Fn&& fn) {
  switch (valuesPerLane(dim)) {
    case 2: return fn(std::integral_constant<int, 2>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    default: return fn(std::integral_constant<int, 8>{});
  }
}

// Allows `kernel` `bytes` of dynamic shared memory; fails clearly when the GPU has less.
template <typename Kernel>
void allowSharedMemory(Kernel* kernel, size_t bytes, const char* op, const AttnDims& a) {
  if (bytes > maxSharedMemoryPerBlock()) {
    fail(std::string(op) + ": head dims D = " + std::to_string(a.d) + ", Dv = " + std::to_string(a.dv) +
         " need " + std::to_string(bytes) + " bytes of shared memory per block, more than this GPU allows (" +
         std::to_string(maxSharedMemoryPerBlock()) + ")");
  }
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
        "setting the shared memory of an attention kernel");
}

// Blocks of a 1-D grid over `count` work items (the kernels loop over the rest).
inline unsigned attentionGrid(int64_t count) { return unsigned(count < (int64_t(1) << 30) ? count : (int64_t(1) << 30)); }

// Stages `rows` rows of an attention operand in shared memory as compute-type values, all threads
// of the block taking part: dst[r * pitch + c] = src[(first + r) * rowStride + c * colStride] for
// c < cols, zeros for rows at or past `end`.
template <typename T, typename C>
__device__ __forceinline__ void stageRows(C* dst, int64_t pitch, const T* src, int64_t rowStride, int64_t colStride,
                                          int64_t first, int64_t end, int64_t rows, int64_t cols) {
  for (int64_t idx = threadIdx.x; idx < rows * cols; idx += blockDim.x) {
    const int64_t r = idx / cols, c = idx % cols, row = first + r;
    dst[r * pitch + c] = row < end ? Num<T>::load(src[row * rowStride + c * colStride]) : C(0);
  }
}

}  // namespace blora
