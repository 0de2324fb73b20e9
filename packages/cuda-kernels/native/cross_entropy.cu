// Softmax cross-entropy over a vocabulary without storing probabilities. One block per row
// computes the row's log-sum-exp in a single pass (an online max and rescaled sum per thread,
// then combined across the block). The loss is a float64 sum over rows in a fixed order
// (deterministic), divided by the number of counted rows for 'mean'.
// Targets are checked on the device: an out-of-range target (not ignoreIndex) is recorded
// in a small error buffer (the first such row, via atomicMin), which the host reads after
// the kernels and reports; such rows are never used to index the logits.
#include <climits>

#include "block_reduce.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "scratch.h"

namespace blora {

namespace {

constexpr int kNoError = 0x7f7f7f7f;  // the error buffer's bytes are set to 0x7f: no bad row yet
constexpr int kReduceThreads = 1024;

struct Logits2d {
  int64_t rows, cols, rowStride, colStride;
};

// A running (max, sum of exp(x - max)) pair; merging two keeps the larger max.
template <typename C>
struct MaxSum {
  C max;
  C sum;
};

template <typename C>
__device__ __forceinline__ MaxSum<C> merge(MaxSum<C> a, MaxSum<C> b) {
  if (b.max == -C(INFINITY)) return a;
  if (a.max == -C(INFINITY)) return b;
  if (a.max >= b.max) return {a.max, a.sum + b.sum * mExp(b.max - a.max)};
  if (b.max > a.max) return {b.max, b.sum + a.sum * mExp(a.max - b.max)};
  return {a.max + b.max, a.sum + b.sum};  // a NaN max stays NaN
}

// Combines every thread's pair; thread 0 gets the block's result.
template <typename C>
__device__ MaxSum<C> blockMerge(MaxSum<C> v) {
  __shared__ C maxes[32];
  __shared__ C sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum<C> other{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = merge(v, other);
  }
  __syncthreads();
  if (lane == 0) {
    maxes[warp] = v.max;
    sums[warp] = v.sum;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? MaxSum<C>{maxes[lane], sums[lane]} : MaxSum<C>{-C(INFINITY), C(0)};
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const MaxSum<C> other{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)};
      v = merge(v, other);
    }
  }
  return v;
}

// The log-sum-exp of one row (all threads of the block return it).
template <typename T>
__device__ typename Num<T>::Compute rowLogSumExp(const T* row, const Logits2d& g) {
  using C = typename Num<T>::Compute;
  __shared__ C result;
  MaxSum<C> acc{-C(INFINITY), C(0)};
  for (int64_t j = threadIdx.x; j < g.cols; j += blockDim.x) acc = merge(acc, MaxSum<C>{Num<T>::load(row[j * g.colStride]), C(1)});
  acc = blockMerge(acc);
  __syncthreads();
  if (threadIdx.x == 0) result = acc.max == -C(INFINITY) ? -C(INFINITY) : acc.max + mLog(acc.sum);
  __syncthreads();
  return result;
}

// True (and the error recorded) when `target` is neither ignored nor in [0, cols).
__device__ __forceinline__ bool badTarget(int64_t target, int64_t ignoreIndex, int64_t cols, int64_t row, int* error) {
  if (target == ignoreIndex || (target >= 0 && target < cols)) return false;
  atomicMin(error, int(row));
  return true;
}

template <typename T>
__global__ void lossRowsKernel(const T* logits, Logits2d g, const int32_t* targets, int64_t targetStride,
                               int64_t ignoreIndex, typename Num<T>::Compute* lse, double* rowLoss, int* error) {
  using C = typename Num<T>::Compute;
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    const T* row = logits + r * g.rowStride;
    const C rowLse = rowLogSumExp(row, g);
    if (threadIdx.x == 0) {
      lse[r] = rowLse;
      const int64_t target = targets[r * targetStride];
      double loss = 0;
      if (target != ignoreIndex && !badTarget(target, ignoreIndex, g.cols, r, error)) {
        loss = double(rowLse) - double(Num<T>::load(row[target * g.colStride]));
      }
      rowLoss[r] = loss;
    }
  }
}

// One block: counts the rows whose target is not ignored (checking the targets), and with
// `rowLoss` also sums the row losses into the loss. error[1] gets the first bad target.
template <typename S>
__global__ void countAndReduceKernel(const int32_t* targets, int64_t targetStride, int64_t rows, int64_t cols,
                                     int64_t ignoreIndex, const double* rowLoss, S* loss, bool mean, int* counted,
                                     int* error) {
  long long count = 0;
  double total = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t target = targets[r * targetStride];
    if (target == ignoreIndex) continue;
    if (badTarget(target, ignoreIndex, cols, r, error)) continue;
    count++;
    if (rowLoss) total += rowLoss[r];
  }
  count = blockReduce(count, [](long long a, long long b) { return a + b; }, 0LL);
  total = blockReduce(total, [](double a, double b) { return a + b; }, 0.0);
  if (threadIdx.x != 0) return;
  if (counted) *counted = int(count);
  if (loss) *loss = S(mean ? (count > 0 ? total / double(count) : 0.0) : total);
  const int bad = atomicAdd(error, 0);  // an atomic read sees every thread's atomicMin
  if (bad != kNoError) error[1] = targets[int64_t(bad) * targetStride];
}

template <typename T>
__global__ void lossBackwardKernel(const typename Num<T>::Compute* dloss, const T* logits, Logits2d g,
                                   const int32_t* targets, int64_t targetStride, int64_t ignoreIndex,
                                   const typename Num<T>::Compute* lse, const int* counted, bool mean, T* dlogits) {
  using C = typename Num<T>::Compute;
  const C scale = mean ? (*counted > 0 ? dloss[0] / C(*counted) : C(0)) : dloss[0];
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    const T* row = logits + r * g.rowStride;
    T* out = dlogits + r * g.cols;
    const int64_t target = targets[r * targetStride];
    const bool skip = target == ignoreIndex || target < 0 || target >= g.cols;
    const C rowLse = lse[r];
    for (int64_t j = threadIdx.x; j < g.cols; j += blockDim.x) {
      C d = C(0);
      if (!skip) {
        d = scale * mExp(Num<T>::load(row[j * g.colStride]) - rowLse);
        if (j == target) d -= scale;
      }
      out[j] = Num<T>::store(d);
    }
  }
}

DType statsDType(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

Logits2d checkLogits(const char* op, const TensorArg& logits, const TensorArg& targets) {
  if (logits.rank != 2) fail(std::string(op) + ": logits must be [N, V], got " + logits.describe());
  requireDType(op, targets, DType::Int32, "targets");
  if (targets.rank != 1 || targets.shape[0] != logits.shape[0]) {
    fail(std::string(op) + ": targets " + targets.describe() + " must be [N] for logits " + logits.describe());
  }
  if (logits.shape[0] >= kNoError) fail(std::string(op) + ": too many rows (" + std::to_string(logits.shape[0]) + ")");
  return {logits.shape[0], logits.shape[1], logits.strides[0], logits.strides[1]};
}

// Waits for the kernels and reads the error buffer.
TargetError readError(const int* deviceError) {
  int host[2] = {kNoError, 0};
  check(cudaMemcpyAsync(host, deviceError, sizeof(host), cudaMemcpyDeviceToHost, stream()), "reading the target check");
  synchronize();
  TargetError e;
  if (host[0] != kNoError) {
    e.found = true;
    e.position = host[0];
    e.target = host[1];
  }
  return e;
}

unsigned rowBlocks(int64_t rows) { return unsigned(std::min<int64_t>(std::max<int64_t>(rows, 1), int64_t(1) << 20)); }

}  // namespace

TargetError launchCrossEntropy(const TensorArg& logits, const TensorArg& targets, const TensorArg& loss,
                               const TensorArg& lse, int64_t ignoreIndex, bool mean) {
  const char* op = "crossEntropy";
  const Logits2d g = checkLogits(op, logits, targets);
  const DType stats = statsDType(logits.dtype);
  requireDType(op, loss, stats, "loss");
  requireDType(op, lse, stats, "lse");
  requireContiguous(op, lse, "lse");
  if (loss.numel() != 1 || lse.numel() != g.rows) fail(std::string(op) + ": wrong output shapes " + loss.describe() + ", " + lse.describe());
  DeviceScratch error(2 * sizeof(int));
  DeviceScratch rowLoss(size_t(std::max<int64_t>(g.rows, 1)) * sizeof(double));
  check(cudaMemsetAsync(error.as<int>(), 0x7f, 2 * sizeof(int), stream()), "clearing the target check");
  visitDType<DTypeSet::Float>(logits.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    if (g.rows > 0) {
      lossRowsKernel<T><<<rowBlocks(g.rows), rowThreads(g.cols, 512), 0, stream()>>>(
          reinterpret_cast<const T*>(logits.first()), g, reinterpret_cast<const int32_t*>(targets.first()),
          targets.strides[0], ignoreIndex, reinterpret_cast<C*>(lse.first()), rowLoss.as<double>(), error.as<int>());
      checkLaunch("crossEntropy (rows)");
    }
    countAndReduceKernel<C><<<1, kReduceThreads, 0, stream()>>>(
        reinterpret_cast<const int32_t*>(targets.first()), targets.strides[0], g.rows, g.cols, ignoreIndex,
        rowLoss.as<double>(), reinterpret_cast<C*>(loss.first()), mean, nullptr, error.as<int>());
    checkLaunch("crossEntropy (loss)");
  });
  return readError(error.as<int>());
}

TargetError launchCrossEntropyBackward(const TensorArg& dloss, const TensorArg& logits, const TensorArg& targets,
                                       const TensorArg& lse, const TensorArg& dlogits, int64_t ignoreIndex, bool mean) {
  const char* op = "crossEntropyBackward";
  const Logits2d g = checkLogits(op, logits, targets);
  const DType stats = statsDType(logits.dtype);
  requireDType(op, dloss, stats, "dloss");
  requireDType(op, lse, stats, "lse");
  requireContiguous(op, lse, "lse");
  requireSameShape(op, logits, dlogits);
  requireDType(op, dlogits, logits.dtype, "output");
  requireContiguous(op, dlogits, "output");
  if (dloss.numel() != 1 || lse.numel() != g.rows) fail(std::string(op) + ": wrong shapes " + dloss.describe() + ", " + lse.describe());
  DeviceScratch error(2 * sizeof(int));
  DeviceScratch counted(sizeof(int));
  check(cudaMemsetAsync(error.as<int>(), 0x7f, 2 * sizeof(int), stream()), "clearing the target check");
  visitDType<DTypeSet::Float>(logits.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    countAndReduceKernel<C><<<1, kReduceThreads, 0, stream()>>>(
        reinterpret_cast<const int32_t*>(targets.first()), targets.strides[0], g.rows, g.cols, ignoreIndex, nullptr,
        nullptr, mean, counted.as<int>(), error.as<int>());
    checkLaunch("crossEntropyBackward (count)");
    if (g.rows > 0 && g.cols > 0) {
      lossBackwardKernel<T><<<rowBlocks(g.rows), rowThreads(g.cols, 512), 0, stream()>>>(
          reinterpret_cast<const C*>(dloss.first()), reinterpret_cast<const T*>(logits.first()), g,
          reinterpret_cast<const int32_t*>(targets.first()), targets.strides[0], ignoreIndex,
          reinterpret_cast<const C*>(lse.first()), counted.as<int>(), mean, reinterpret_cast<T*>(dlogits.first()));
      checkLaunch("crossEntropyBackward (rows)");
    }
  });
  return readError(error.as<int>());
}

}  // namespace blora
