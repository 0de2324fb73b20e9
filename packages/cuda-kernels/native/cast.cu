// cast: converts every element between any two dtypes, reading strided input.
// Each value goes through float64, which holds every source value exactly; the
// destination's fromDouble then applies the CPU backend's rounding and wrapping.
// Dense sources take the vector path of dense_map.cuh.
#include "dense_map.cuh"
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

template <typename From, typename To>
struct CastElement {
  __device__ To operator()(From v) const { return Num<To>::fromDouble(double(Num<From>::load(v))); }
};

template <typename From, typename To>
__global__ void castKernel(const From* src, To* dst, int64_t n, StridedIndexer<1> ix) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    dst[i] = Num<To>::fromDouble(double(Num<From>::load(src[off[0]])));
  }
}

void launchCast(const TensorArg& src, const TensorArg& dst) {
  requireSameShape("cast", src, dst);
  requireContiguous("cast", dst, "output");
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype == dst.dtype) return launchCopy(src, dst);
  const int64_t* strides[1] = {src.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(src.shape, src.rank, strides);
  visitDType<DTypeSet::All>(src.dtype, "cast", [&](auto fromTag) {
    using From = typename decltype(fromTag)::type;
    visitDType<DTypeSet::All>(dst.dtype, "cast", [&](auto toTag) {
      using To = typename decltype(toTag)::type;
      if (tryDenseMap1<From, To>(ix, src.first(), dst.first(), n, CastElement<From, To>{})) return;
      launchDependent("cast", castKernel<From, To>, elementwiseBlocks(n), kElementwiseThreads, 0,
                      reinterpret_cast<const From*>(src.first()), reinterpret_cast<To*>(dst.first()), n, ix);
    });
  });
  checkLaunch("cast");
}

}  // namespace blora
