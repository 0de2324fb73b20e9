// indexSelect, gather, scatterAdd and indexAdd. Selections copy raw element bits (exact for
// every dtype). Additions accumulate atomically into a contiguous accumulator of the
// compute type (float32 for float32/float16/bfloat16, float64, int32 for integers); the
// caller seeds it with x and casts it to the output afterwards. Integer sums wrap like the
// CPU's typed-array stores: the low bits of a sum do not depend on where it wrapped.
// Float additions to one element from several threads land in an unspecified order, so
// float results can differ from the CPU in the last bits when indices repeat.
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

namespace {

// Product of the dims after `axis`.
int64_t innerSize(const TensorArg& t, int axis) {
  int64_t n = 1;
  for (int d = axis + 1; d < t.rank; d++) n *= t.shape[d];
  return n;
}

void requireAxis(const char* op, const TensorArg& t, int axis) {
  if (axis < 0 || axis >= t.rank) {
    fail(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for " + t.describe());
  }
}

void requireIndex(const char* op, const TensorArg& index) { requireDType(op, index, DType::Int32, "index"); }

// `strides` with the entry of `axis` set to 0: offsets computed with them point at coordinate 0.
void pinAxis(const TensorArg& t, int axis, int64_t (&pinned)[kMaxRank]) {
  for (int d = 0; d < kMaxRank; d++) pinned[d] = d < t.rank ? t.strides[d] : 0;
  pinned[axis] = 0;
}

template <typename U>
__global__ void indexSelectKernel(const U* x, const int32_t* index, int64_t indexStride, U* out, int64_t n,
                                  StridedIndexer<1> ix, int64_t count, int64_t inner, int64_t axisStride) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    const int64_t l = (i / inner) % count;
    out[i] = x[off[0] + int64_t(index[l * indexStride]) * axisStride];
  }
}

template <typename U>
__global__ void gatherKernel(const U* x, const int32_t* index, U* out, int64_t n, StridedIndexer<2> ix,
                             int64_t axisStride) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = x[off[0] + int64_t(index[off[1]]) * axisStride];
  }
}

// The accumulator type of each storage type.
template <typename T>
struct AccumOf {
  using type = int;
};
template <>
struct AccumOf<float> {
  using type = float;
};
template <>
struct AccumOf<double> {
  using type = double;
};
template <>
struct AccumOf<__half> {
  using type = float;
};
template <>
struct AccumOf<__nv_bfloat16> {
  using type = float;
};

// Integer accumulation wraps modulo 2^32 like int32 storage.
__device__ __forceinline__ void accumulate(int* at, long long v) { atomicAdd(at, int(static_cast<unsigned int>(v))); }
__device__ __forceinline__ void accumulate(float* at, float v) { atomicAdd(at, v); }
__device__ __forceinline__ void accumulate(double* at, double v) { atomicAdd(at, v); }

template <typename T>
__global__ void scatterAddKernel(typename AccumOf<T>::type* acc, const int32_t* index, const T* src, int64_t n,
                                 StridedIndexer<3> ix, int64_t axisStride) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];  // accumulator at coordinate 0 of the axis, index, src
    ix.offsets(i, off);
    accumulate(acc + off[0] + int64_t(index[off[1]]) * axisStride, Num<T>::load(src[off[2]]));
  }
}

template <typename T>
__global__ void indexAddKernel(typename AccumOf<T>::type* acc, const int32_t* index, int64_t indexStride,
                               const T* src, int64_t n, StridedIndexer<1> ix, int64_t count, int64_t inner,
                               int64_t size) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    const int64_t within = i % inner;
    const int64_t l = (i / inner) % count;
    const int64_t outer = i / (inner * count);
    const int64_t target = (outer * size + index[l * indexStride]) * inner + within;
    accumulate(acc + target, Num<T>::load(src[off[0]]));
  }
}

// Checks that `acc` is a contiguous accumulator of x's shape for `src`.
void requireAccumulator(const char* op, const TensorArg& acc, const TensorArg& src) {
  requireContiguous(op, acc, "accumulator");
  requireDType(op, acc, accumulationDType(src.dtype), "accumulator");
  if (acc.rank != src.rank) fail(std::string(op) + ": src " + src.describe() + " must have the rank of " + acc.describe());
}

}  // namespace

DType accumulationDType(DType dtype) {
  switch (dtype) {
    case DType::Float64: return DType::Float64;
    case DType::Float32:
    case DType::Float16:
    case DType::BFloat16: return DType::Float32;
    default: return DType::Int32;
  }
}

void launchIndexSelect(const TensorArg& x, const TensorArg& index, const TensorArg& out, int axis) {
  const char* op = "indexSelect";
  requireAxis(op, x, axis);
  requireIndex(op, index);
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  bool shapeOk = index.rank == 1 && out.rank == x.rank && out.shape[axis] == index.shape[0];
  for (int d = 0; shapeOk && d < x.rank; d++) shapeOk = d == axis || out.shape[d] == x.shape[d];
  if (!shapeOk) fail(std::string(op) + ": cannot select " + index.describe() + " from " + x.describe() + " into " + out.describe());
  const int64_t n = out.numel();
  if (n == 0) return;
  int64_t pinned[kMaxRank];
  pinAxis(x, axis, pinned);
  const int64_t* strides[1] = {pinned};
  const StridedIndexer<1> ix = makeIndexer<1>(out.shape, out.rank, strides);
  visitBits(x.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    launchDependent("indexSelect", indexSelectKernel<U>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const U*>(x.first()), reinterpret_cast<const int32_t*>(index.first()), index.strides[0],
                    reinterpret_cast<U*>(out.first()), n, ix, index.shape[0], innerSize(out, axis), x.strides[axis]);
  });
  checkLaunch(op);
}

void launchGather(const TensorArg& x, const TensorArg& index, const TensorArg& out, int axis) {
  const char* op = "gather";
  requireAxis(op, x, axis);
  requireIndex(op, index);
  requireSameShape(op, index, out);
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  if (index.rank != x.rank) fail(std::string(op) + ": index " + index.describe() + " must have the rank of " + x.describe());
  const int64_t n = out.numel();
  if (n == 0) return;
  int64_t pinned[kMaxRank];
  pinAxis(x, axis, pinned);
  const int64_t* strides[2] = {pinned, index.strides};
  const StridedIndexer<2> ix = makeIndexer<2>(index.shape, index.rank, strides);
  visitBits(x.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    gatherKernel<U><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const U*>(x.first()), reinterpret_cast<const int32_t*>(index.first()),
        reinterpret_cast<U*>(out.first()), n, ix, x.strides[axis]);
  });
  checkLaunch(op);
}

void launchScatterAdd(const TensorArg& acc, const TensorArg& index, const TensorArg& src, int axis) {
  const char* op = "scatterAdd";
  requireAxis(op, acc, axis);
  requireIndex(op, index);
  requireAccumulator(op, acc, src);
  if (index.rank != acc.rank) fail(std::string(op) + ": index " + index.describe() + " must have the rank of " + acc.describe());
  const int64_t n = index.numel();
  if (n == 0) return;
  int64_t pinned[kMaxRank];
  pinAxis(acc, axis, pinned);
  const int64_t* strides[3] = {pinned, index.strides, src.strides};
  const StridedIndexer<3> ix = makeIndexer<3>(index.shape, index.rank, strides);
  visitDType<DTypeSet::All>(src.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccumOf<T>::type;
    scatterAddKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<A*>(acc.first()), reinterpret_cast<const int32_t*>(index.first()),
        reinterpret_cast<const T*>(src.first()), n, ix, acc.strides[axis]);
  });
  checkLaunch(op);
}

void launchIndexAdd(const TensorArg& acc, const TensorArg& index, const TensorArg& src, int axis) {
  const char* op = "indexAdd";
  requireAxis(op, acc, axis);
  requireIndex(op, index);
  requireAccumulator(op, acc, src);
  bool shapeOk = index.rank == 1 && src.shape[axis] == index.shape[0];
  for (int d = 0; shapeOk && d < acc.rank; d++) shapeOk = d == axis || src.shape[d] == acc.shape[d];
  if (!shapeOk) fail(std::string(op) + ": cannot add " + src.describe() + " at " + index.describe() + " into " + acc.describe());
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t* strides[1] = {src.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(src.shape, src.rank, strides);
  visitDType<DTypeSet::All>(src.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccumOf<T>::type;
    indexAddKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<A*>(acc.first()), reinterpret_cast<const int32_t*>(index.first()), index.strides[0],
        reinterpret_cast<const T*>(src.first()), n, ix, index.shape[0], innerSize(src, axis), acc.shape[axis]);
  });
  checkLaunch(op);
}

}  // namespace blora
