// Comparisons (uint8 results), where and clamp, over strided, broadcast inputs.
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

const char* const kCompareOpNames[int(CompareOp::Count)] = {"eq", "ne", "lt", "le", "gt", "ge"};

struct EqOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a == b; }
};
struct NeOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a != b; }
};
struct LtOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a < b; }
};
struct LeOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a <= b; }
};
struct GtOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a > b; }
};
struct GeOp {
  template <typename C> __device__ bool operator()(C a, C b) const { return a >= b; }
};

template <typename Op, typename T>
__global__ void compareKernel(const T* a, const T* b, uint8_t* out, int64_t n, StridedIndexer<2> ix, Op op) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = op(Num<T>::load(a[off[0]]), Num<T>::load(b[off[1]])) ? 1 : 0;
  }
}

template <typename Op>
void runCompare(const char* name, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const int64_t n = out.numel();
  const int64_t* strides[2] = {a.strides, b.strides};
  const StridedIndexer<2> ix = makeIndexer<2>(a.shape, a.rank, strides);
  visitDType<DTypeSet::All>(a.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    compareKernel<Op, T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const T*>(a.first()), reinterpret_cast<const T*>(b.first()),
        reinterpret_cast<uint8_t*>(out.first()), n, ix, Op{});
  });
  checkLaunch(name);
}

void launchCompare(CompareOp op, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const char* name = kCompareOpNames[int(op)];
  requireSameShape(name, a, b);
  requireSameShape(name, a, out);
  requireDType(name, b, a.dtype, "second input");
  requireDType(name, out, DType::UInt8, "output");
  requireContiguous(name, out, "output");
  if (out.numel() == 0) return;
  switch (op) {
    case CompareOp::Eq: return runCompare<EqOp>(name, a, b, out);
    case CompareOp::Ne: return runCompare<NeOp>(name, a, b, out);
    case CompareOp::Lt: return runCompare<LtOp>(name, a, b, out);
    case CompareOp::Le: return runCompare<LeOp>(name, a, b, out);
    case CompareOp::Gt: return runCompare<GtOp>(name, a, b, out);
    case CompareOp::Ge: return runCompare<GeOp>(name, a, b, out);
    case CompareOp::Count: break;
  }
  fail("compare: unknown op code");
}

// where only selects, so it works on raw bits of any dtype.
template <typename U>
__global__ void whereKernel(const uint8_t* cond, const U* a, const U* b, U* out, int64_t n, StridedIndexer<3> ix) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[i] = cond[off[0]] ? a[off[1]] : b[off[2]];
  }
}

void launchWhere(const TensorArg& cond, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  requireDType("where", cond, DType::UInt8, "condition");
  requireSameShape("where", cond, out);
  requireSameShape("where", a, out);
  requireSameShape("where", b, out);
  requireDType("where", b, a.dtype, "third input");
  requireDType("where", out, a.dtype, "output");
  requireContiguous("where", out, "output");
  const int64_t n = out.numel();
  if (n == 0) return;
  const int64_t* strides[3] = {cond.strides, a.strides, b.strides};
  const StridedIndexer<3> ix = makeIndexer<3>(out.shape, out.rank, strides);
  visitBits(a.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    whereKernel<U><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const uint8_t*>(cond.first()), reinterpret_cast<const U*>(a.first()),
        reinterpret_cast<const U*>(b.first()), reinterpret_cast<U*>(out.first()), n, ix);
  });
  checkLaunch("where");
}

// Bounds are compared in float64 and the result stored with the dtype's rounding, as the
// CPU does (a bound that is not representable is rounded only when it is chosen).
template <typename T>
__global__ void clampKernel(const T* x, T* out, int64_t n, StridedIndexer<1> ix, bool hasLo, double lo, bool hasHi,
                            double hi) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    double v = double(Num<T>::load(x[off[0]]));
    if (hasLo && v < lo) v = lo;
    if (hasHi && v > hi) v = hi;
    out[i] = Num<T>::fromDouble(v);
  }
}

void launchClamp(const TensorArg& x, const TensorArg& out, bool hasLo, double lo, bool hasHi, double hi) {
  requireSameShape("clamp", x, out);
  requireDType("clamp", out, x.dtype, "output");
  requireContiguous("clamp", out, "output");
  const int64_t n = x.numel();
  if (n == 0) return;
  const int64_t* strides[1] = {x.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(x.shape, x.rank, strides);
  visitDType<DTypeSet::All>(x.dtype, "clamp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    clampKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const T*>(x.first()), reinterpret_cast<T*>(out.first()), n, ix, hasLo, lo, hasHi, hi);
  });
  checkLaunch("clamp");
}

}  // namespace blora
