// fill and copy: kernels that move bits without arithmetic.
#include "kernels.h"
#include "launch.cuh"
#include "strided.cuh"

namespace blora {

template <typename U>
__global__ void fillKernel(U* out, int64_t n, U value) {
  BLORA_GRID_STRIDE_LOOP(i, n) { out[i] = value; }
}

void launchFill(const TensorArg& out, uint64_t bits) {
  requireContiguous("fill", out, "output");
  const int64_t n = out.numel();
  if (n == 0) return;
  visitBits(out.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    fillKernel<U><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(reinterpret_cast<U*>(out.first()), n, U(bits));
  });
  checkLaunch("fill");
}

template <typename U>
__global__ void copyKernel(const U* src, U* dst, int64_t n, StridedIndexer<1> ix) {
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
    copyKernel<U><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const U*>(src.first()), reinterpret_cast<U*>(dst.first()), n, ix);
  });
  checkLaunch("copy");
}

template <typename U>
__global__ void copyIntoKernel(const U* src, U* dst, int64_t n, StridedIndexer<2> ix) {
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
  visitBits(src.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    copyIntoKernel<U><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const U*>(src.first()), reinterpret_cast<U*>(dst.first()), n, ix);
  });
  checkLaunch("copy (into a strided view)");
}

}  // namespace blora
