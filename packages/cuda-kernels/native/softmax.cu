// softmax / log-softmax of each row of a contiguous [rows, cols] matrix, one block per
// row, three passes over the row (max, sum of exponentials, write) in the compute type.
#include "block_reduce.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

template <typename T, bool Log>
__global__ void softmaxRowsKernel(const T* x, T* out, int64_t rows, int64_t cols) {
  using C = typename Num<T>::Compute;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* src = x + row * cols;
    T* dst = out + row * cols;
    C localMax = -C(INFINITY);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) localMax = jsMax(localMax, Num<T>::load(src[j]));
    const C rowMax = blockReduce(localMax, [](C a, C b) { return jsMax(a, b); }, -C(INFINITY));
    C localSum = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) localSum += mExp(Num<T>::load(src[j]) - rowMax);
    const C rowSum = blockReduce(localSum, [](C a, C b) { return a + b; }, C(0));
    if constexpr (Log) {
      const C shift = rowMax + mLog(rowSum);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dst[j] = Num<T>::store(Num<T>::load(src[j]) - shift);
    } else {
      const C scale = C(1) / rowSum;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        dst[j] = Num<T>::store(mExp(Num<T>::load(src[j]) - rowMax) * scale);
      }
    }
  }
}

void launchSoftmaxRows(bool logSoftmax, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols) {
  const char* name = logSoftmax ? "logSoftmax" : "softmax";
  requireContiguous(name, x, "input");
  requireContiguous(name, out, "output");
  requireSameShape(name, x, out);
  requireDType(name, out, x.dtype, "output");
  if (rows < 0 || cols < 0 || x.numel() != rows * cols) {
    fail(std::string(name) + ": " + x.describe() + " does not hold " + std::to_string(rows) + " rows of " +
         std::to_string(cols));
  }
  if (rows == 0 || cols == 0) return;
  const int threads = rowThreads(cols, 512);
  const unsigned blocks = unsigned(std::min<int64_t>(rows, int64_t(1) << 20));
  visitDType<DTypeSet::Float>(x.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (logSoftmax) {
      softmaxRowsKernel<T, true><<<blocks, threads, 0, stream()>>>(reinterpret_cast<const T*>(x.first()),
                                                                  reinterpret_cast<T*>(out.first()), rows, cols);
    } else {
      softmaxRowsKernel<T, false><<<blocks, threads, 0, stream()>>>(reinterpret_cast<const T*>(x.first()),
                                                                   reinterpret_cast<T*>(out.first()), rows, cols);
    }
  });
  checkLaunch(name);
}

}  // namespace blora
