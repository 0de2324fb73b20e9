// avgPool1d: the mean of each run of `kernel` consecutive elements of the last dim, one
// thread per output. Like the CPU kernel, the run is summed in float64 and divided once
// (dividing rather than multiplying by 1/kernel keeps the mean of equal values exact).
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

namespace {

template <typename T>
__global__ void avgPoolKernel(const T* x, T* out, int64_t n, StridedIndexer<1> ix, int64_t kernel, int64_t step) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    double sum = 0;
    for (int64_t j = 0; j < kernel; j++) sum += double(Num<T>::load(x[off[0] + j * step]));
    out[i] = Num<T>::fromDouble(sum / double(kernel));
  }
}

}  // namespace

void launchAvgPool1d(const TensorArg& x, const TensorArg& out, int64_t kernel) {
  const char* op = "avgPool1d";
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  const int r = x.rank;
  bool shapeOk = r >= 1 && out.rank == r && kernel >= 1 && x.shape[r - 1] == out.shape[r - 1] * kernel;
  for (int d = 0; shapeOk && d < r - 1; d++) shapeOk = out.shape[d] == x.shape[d];
  if (!shapeOk) fail(std::string(op) + ": cannot pool " + x.describe() + " by " + std::to_string(kernel) + " into " + out.describe());
  const int64_t n = out.numel();
  if (n == 0) return;
  // Output element (..., j) starts at input element (..., j * kernel).
  int64_t strides[kMaxRank];
  for (int d = 0; d < r; d++) strides[d] = x.strides[d];
  strides[r - 1] = x.strides[r - 1] * kernel;
  const int64_t* list[1] = {strides};
  const StridedIndexer<1> ix = makeIndexer<1>(out.shape, r, list);
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    avgPoolKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const T*>(x.first()), reinterpret_cast<T*>(out.first()), n, ix, kernel, x.strides[r - 1]);
  });
  checkLaunch(op);
}

}  // namespace blora
