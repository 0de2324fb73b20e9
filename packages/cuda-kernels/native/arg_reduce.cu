// argmax / argmin over the middle axis of a contiguous [outer, reduced, inner] block into int32
// indices [outer, inner]: the first of the largest (smallest) values, or the first NaN when there
// is one, as the CPU kernel. Values are compared as doubles, which every dtype here converts to
// exactly (the CPU kernel compares in float64 too).
//
// A row (inner = 1, the vocabulary of a token's logits) takes a block: its threads walk the row
// 256 apart and meet in shared memory. Columns (inner > 1) take a thread each, reading the reduced
// axis in order, neighbouring threads on neighbouring columns.
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

constexpr int kArgThreads = 256;

// Whether value v at index i goes before the best so far (b at bi): a NaN before any number,
// then the larger (IsMax) or smaller value, then the lower index.
template <bool IsMax>
__device__ __forceinline__ bool goesBefore(double v, int64_t i, double b, int64_t bi) {
  const bool vNaN = v != v, bNaN = b != b;
  if (vNaN || bNaN) return vNaN && (!bNaN || i < bi);
  if (v != b) return IsMax ? v > b : v < b;
  return i < bi;
}

template <typename T, bool IsMax>
__global__ void __launch_bounds__(kArgThreads) argRowsKernel(const T* x, int32_t* out, int64_t reduced) {
  const T* row = x + int64_t(blockIdx.x) * reduced;
  double best = 0;
  int64_t index = -1;  // none yet (a thread past the row's end keeps it)
  for (int64_t r = threadIdx.x; r < reduced; r += kArgThreads) {
    const double v = double(Num<T>::load(row[r]));
    if (index < 0 || goesBefore<IsMax>(v, r, best, index)) best = v, index = r;
  }
  __shared__ double values[kArgThreads];
  __shared__ int64_t indices[kArgThreads];
  values[threadIdx.x] = best;
  indices[threadIdx.x] = index;
  __syncthreads();
  for (int half = kArgThreads / 2; half > 0; half >>= 1) {
    if (int(threadIdx.x) < half) {
      const int64_t other = indices[threadIdx.x + half];
      const int64_t mine = indices[threadIdx.x];
      if (other >= 0 && (mine < 0 || goesBefore<IsMax>(values[threadIdx.x + half], other, values[threadIdx.x], mine))) {
        values[threadIdx.x] = values[threadIdx.x + half];
        indices[threadIdx.x] = other;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = int32_t(indices[0]);
}

template <typename T, bool IsMax>
__global__ void __launch_bounds__(kElementwiseThreads) argColumnsKernel(const T* x, int32_t* out, int64_t outer, int64_t reduced,
                                                                         int64_t inner) {
  BLORA_GRID_STRIDE_LOOP(k, outer * inner) {
    const T* column = x + (k / inner) * reduced * inner + k % inner;
    double best = double(Num<T>::load(column[0]));
    int64_t index = 0;
    for (int64_t r = 1; r < reduced; r++) {
      const double v = double(Num<T>::load(column[r * inner]));
      if (goesBefore<IsMax>(v, r, best, index)) best = v, index = r;
    }
    out[k] = int32_t(index);
  }
}

}  // namespace

void launchArgReduce(bool isMax, const TensorArg& x, const TensorArg& out, int64_t outer, int64_t reduced, int64_t inner) {
  const char* name = isMax ? "argmax" : "argmin";
  requireContiguous(name, x, "input");
  requireContiguous(name, out, "output");
  requireDType(name, out, DType::Int32, "output");
  if (outer < 0 || reduced < 1 || inner < 0 || reduced > INT32_MAX || x.numel() != outer * reduced * inner || out.numel() != outer * inner) {
    fail(std::string(name) + ": " + x.describe() + " -> " + out.describe() + " is not a reduction of [" + std::to_string(outer) + ", " +
         std::to_string(reduced) + ", " + std::to_string(inner) + "] over a non-empty middle axis");
  }
  if (outer * inner == 0) return;
  if (inner == 1 && outer > INT32_MAX) fail(std::string(name) + ": too many rows for one launch");
  visitDType<DTypeSet::All>(x.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = reinterpret_cast<const T*>(x.first());
    int32_t* po = reinterpret_cast<int32_t*>(out.first());
    auto launch = [&](auto maxTag) {
      constexpr bool kMax = decltype(maxTag)::value;
      if (inner == 1) argRowsKernel<T, kMax><<<unsigned(outer), kArgThreads, 0, stream()>>>(px, po, reduced);
      else argColumnsKernel<T, kMax><<<elementwiseBlocks(outer * inner), kElementwiseThreads, 0, stream()>>>(px, po, outer, reduced, inner);
    };
    if (isMax) launch(std::true_type{});
    else launch(std::false_type{});
  });
  checkLaunch(name);
}

}  // namespace blora
