// sum / mean / max / min of each row of a contiguous [rows, cols] matrix, one block per
// row. Reductions over other axes are brought to this form by the caller (the reduced
// axes are permuted last and, when that view is not dense, copied).
// Like the CPU backend, float dtypes accumulate in float64 and round once at the store;
// integers accumulate in int64 and wrap at the store. max and min propagate NaN.
#include <climits>
#include <type_traits>

#include "block_reduce.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

const char* const kReduceOpNames[int(ReduceOp::Count)] = {"sum", "mean", "max", "min"};

// The accumulator of a storage type, with the reduction identities and the final store.
template <typename T, bool IsInt = std::is_same<typename Num<T>::Compute, long long>::value>
struct Accum {
  using type = double;
  __device__ static double load(T v) { return double(Num<T>::load(v)); }
  __device__ static double lowest() { return -INFINITY; }
  __device__ static double highest() { return INFINITY; }
  __device__ static T store(double v) { return Num<T>::fromDouble(v); }
  __device__ static T storeMean(double sum, int64_t cols) { return Num<T>::fromDouble(sum / double(cols)); }
};

template <typename T>
struct Accum<T, true> {
  using type = long long;
  __device__ static long long load(T v) { return Num<T>::load(v); }
  __device__ static long long lowest() { return LLONG_MIN; }
  __device__ static long long highest() { return LLONG_MAX; }
  __device__ static T store(long long v) { return Num<T>::store(v); }
  __device__ static T storeMean(long long sum, int64_t cols) { return Num<T>::fromDouble(double(sum) / double(cols)); }
};

// max / min where NaN wins (the comparisons are false for integers' non-NaN values).
template <typename A>
__device__ __forceinline__ A maxNaN(A a, A b) {
  return a != a ? a : (b != b || b > a ? b : a);
}
template <typename A>
__device__ __forceinline__ A minNaN(A a, A b) {
  return a != a ? a : (b != b || b < a ? b : a);
}

template <typename T, ReduceOp Op>
__global__ void reduceRowsKernel(const T* x, T* out, int64_t rows, int64_t cols) {
  using Acc = Accum<T>;
  using A = typename Acc::type;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* src = x + row * cols;
    A acc = Op == ReduceOp::Max ? Acc::lowest() : Op == ReduceOp::Min ? Acc::highest() : A(0);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A v = Acc::load(src[j]);
      if constexpr (Op == ReduceOp::Max) acc = maxNaN(acc, v);
      else if constexpr (Op == ReduceOp::Min) acc = minNaN(acc, v);
      else acc += v;
    }
    if constexpr (Op == ReduceOp::Max) {
      acc = blockReduce(acc, [](A a, A b) { return maxNaN(a, b); }, Acc::lowest());
    } else if constexpr (Op == ReduceOp::Min) {
      acc = blockReduce(acc, [](A a, A b) { return minNaN(a, b); }, Acc::highest());
    } else {
      acc = blockReduce(acc, [](A a, A b) { return a + b; }, A(0));
    }
    if (threadIdx.x == 0) out[row] = Op == ReduceOp::Mean ? Acc::storeMean(acc, cols) : Acc::store(acc);
  }
}

template <ReduceOp Op>
void runReduce(const char* name, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols) {
  const int threads = rowThreads(cols, 512);
  const unsigned blocks = unsigned(std::min<int64_t>(rows, int64_t(1) << 20));
  visitDType<Op == ReduceOp::Mean ? DTypeSet::Float : DTypeSet::All>(x.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    reduceRowsKernel<T, Op><<<blocks, threads, 0, stream()>>>(reinterpret_cast<const T*>(x.first()),
                                                             reinterpret_cast<T*>(out.first()), rows, cols);
  });
  checkLaunch(name);
}

void launchReduceRows(ReduceOp op, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols) {
  const char* name = kReduceOpNames[int(op)];
  requireContiguous(name, x, "input");
  requireContiguous(name, out, "output");
  requireDType(name, out, x.dtype, "output");
  if (rows < 0 || cols < 0 || x.numel() != rows * cols || out.numel() != rows) {
    fail(std::string(name) + ": " + x.describe() + " -> " + out.describe() + " is not a reduction of " +
         std::to_string(rows) + " rows of " + std::to_string(cols));
  }
  if (rows == 0) return;
  switch (op) {
    case ReduceOp::Sum: return runReduce<ReduceOp::Sum>(name, x, out, rows, cols);
    case ReduceOp::Mean: return runReduce<ReduceOp::Mean>(name, x, out, rows, cols);
    case ReduceOp::Max: return runReduce<ReduceOp::Max>(name, x, out, rows, cols);
    case ReduceOp::Min: return runReduce<ReduceOp::Min>(name, x, out, rows, cols);
    case ReduceOp::Count: break;
  }
  fail("reduce: unknown op code");
}

}  // namespace blora
