// fill and copy: kernels that move bits without arithmetic. Dense ranges go through
// 16-byte vectors (dense_map.cuh); strided views through the general indexer.
#include "dense_map.cuh"
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "strided.cuh"

namespace blora {

// Packs of V copies of `value` from the split's head on, scalars at both edges.
template <int V, typename U>
__global__ void __launch_bounds__(kDenseThreads) fillKernel(U* out, int64_t n, DenseSplit split, U value) {
  dependentKernelBegins();
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  Pack<U, V> pack;
#pragma unroll
  for (int e = 0; e < V; e++) pack.v[e] = value;
  Pack<U, V>* ov = reinterpret_cast<Pack<U, V>*>(out + split.head);
  for (int64_t i = tid; i < split.packs; i += step) ov[i] = pack;
  const EdgeElements edges(split, n, V);
  if (tid < edges.count) out[edges.element(tid)] = value;
}

// Returns the value unchanged: the copy as a dense map.
template <typename U>
struct Identity {
  __device__ U operator()(U v) const { return v; }
};

void launchFill(const TensorArg& out, uint64_t bits) {
  requireContiguous("fill", out, "output");
  const int64_t n = out.numel();
  if (n == 0) return;
  visitBits(out.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    constexpr int V = vectorWidth<U>();
    const DenseSplit split = denseSplit(out.first(), sizeof(U), V, n);
    auto kernel = fillKernel<V, U>;
    const int64_t work = std::max<int64_t>(split.packs, n - split.packs * V);
    launchDependent("fill", kernel, denseBlocks(reinterpret_cast<const void*>(kernel), work), kDenseThreads, 0,
                    reinterpret_cast<U*>(out.first()), n, split, U(bits));
  });
  checkLaunch("fill");
}

template <typename U>
__global__ void copyKernel(const U* src, U* dst, int64_t n, StridedIndexer<1> ix) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    dst[i] = src[off[0]];
  }
}

void launchCopy(const TensorArg& src, const TensorArg& dst) {
  requireSameShape("copy", src, dst);
  requireDType("copy", dst, src.dtype, "output");
  requireContiguous("copy", dst, "output");
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t* strides[1] = {src.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(src.shape, src.rank, strides);
  visitBits(src.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (tryDenseMap1<U, U>(ix, src.first(), dst.first(), n, Identity<U>{})) return;
    launchDependent("copy", copyKernel<U>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const U*>(src.first()), reinterpret_cast<U*>(dst.first()), n, ix);
  });
  checkLaunch("copy");
}

template <typename U>
__global__ void copyIntoKernel(const U* src, U* dst, int64_t n, StridedIndexer<2> ix) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[1]] = src[off[0]];
  }
}

// copyIntoAt: the window of dst that src fills starts `*start` positions along the window's axis
// (of `limit` positions that fit): read on the device, so one captured launch serves every step.
template <typename U>
__global__ void copyIntoAtKernel(const U* src, U* dst, int64_t n, StridedIndexer<2> ix, const int32_t* start, int64_t axisStride,
                                 int64_t limit) {
  dependentKernelBegins();
  const int64_t at = *start;
  if (at < 0 || at > limit) return;  // does not fit: nothing is written
  dst += at * axisStride;
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[1]] = src[off[0]];
  }
}

void launchCopyInto(const TensorArg& src, const TensorArg& dst) {
  requireSameShape("copy", src, dst);
  requireDType("copy", dst, src.dtype, "output");
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t* strides[2] = {src.strides, dst.strides};
  const StridedIndexer<2> ix = makeIndexer<2>(src.shape, src.rank, strides);
  const bool bothDense = denseKind(ix, 0) == DenseKind::Dense && denseKind(ix, 1) == DenseKind::Dense;
  visitBits(src.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (bothDense) {
      const int64_t* srcStrides[1] = {src.strides};
      const StridedIndexer<1> dense = makeIndexer<1>(src.shape, src.rank, srcStrides);
      if (tryDenseMap1<U, U>(dense, src.first(), dst.first(), n, Identity<U>{})) return;
    }
    launchDependent("copyInto", copyIntoKernel<U>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const U*>(src.first()), reinterpret_cast<U*>(dst.first()), n, ix);
  });
  checkLaunch("copy (into a strided view)");
}

void launchCopyIntoAt(const TensorArg& src, const TensorArg& dst, const TensorArg& start, int axis) {
  const char* op = "copyIntoAt";
  requireDType(op, dst, src.dtype, "output");
  requireDType(op, start, DType::Int32, "position");
  if (start.numel() != 1) fail(std::string(op) + ": the position must be one int32, got " + start.describe());
  if (axis < 0 || axis >= dst.rank || src.rank != dst.rank || src.shape[axis] > dst.shape[axis]) {
    fail(std::string(op) + ": " + src.describe() + " does not fit " + dst.describe() + " along axis " + std::to_string(axis));
  }
  for (int d = 0; d < dst.rank; d++) {
    if (d != axis && src.shape[d] != dst.shape[d]) fail(std::string(op) + ": " + src.describe() + " does not fit " + dst.describe());
  }
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t* strides[2] = {src.strides, dst.strides};
  const StridedIndexer<2> ix = makeIndexer<2>(src.shape, src.rank, strides);
  visitBits(src.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    launchDependent("copyIntoAt", copyIntoAtKernel<U>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const U*>(src.first()), reinterpret_cast<U*>(dst.first()), n, ix,
                    reinterpret_cast<const int32_t*>(start.first()), dst.strides[axis], dst.shape[axis] - src.shape[axis]);
  });
  checkLaunch(op);
}

}  // namespace blora
