// Elementwise unary ops over strided inputs, computed in each dtype's compute type
// (float32 for float32/float16/bfloat16, float64 for float64, int64 for integers).
// Dense inputs take the 16-byte vector path of dense_map.cuh, views the strided kernel.
#include "dense_map.cuh"
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

const char* const kUnaryOpNames[int(UnaryOp::Count)] = {
    "neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu",
    "relu", "square", "reciprocal", "sin", "cos", "gelu", "gelu_tanh"};

// One functor per op. kInt marks the ops that also take integer dtypes (computed in int64).
struct NegOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C x) const { return -x; }
};
struct AbsOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C x) const { return mAbs(x); }
};
struct ExpOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mExp(x); }
};
struct LogOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mLog(x); }
};
struct SqrtOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mSqrt(x); }
};
struct RsqrtOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mRsqrt(x); }
};
struct TanhOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mTanh(x); }
};
struct SigmoidOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return sigmoidOf(x); }
};
struct SiluOp {  // -0 at -Infinity, its limit (the product would be -Inf * 0 = NaN)
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return siluOf(x); }
};
struct ReluOp {  // NaN passes through
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C x) const { return x <= C(0) ? C(0) : x; }
};
struct SquareOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C x) const { return x * x; }
};
struct ReciprocalOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return C(1) / x; }
};
struct SinOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mSin(x); }
};
struct CosOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const { return mCos(x); }
};
struct GeluOp {  // exact: x * Phi(x) = x/2 * erfc(-x / sqrt 2); erfc keeps the left tail accurate
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const {
    if (x == -C(INFINITY)) return -C(0);
    return C(0.5) * x * mErfc(-x * C(0.70710678118654752440));
  }
};
struct GeluTanhOp {  // x/2 * (1 + tanh(u)) computed as x * sigmoid(2u), which does not cancel to 0
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C x) const {
    if (x == -C(INFINITY)) return -C(0);
    const C u = C(0.79788456080286535588) * (x + C(0.044715) * x * x * x);
    return x * sigmoidOf(C(2) * u);
  }
};

// One element of a unary op: load into the compute type, apply, store.
template <typename Op, typename T>
struct UnaryElement {
  Op op;
  __device__ T operator()(T x) const { return Num<T>::store(op(Num<T>::load(x))); }
};

template <typename Op, typename T>
__global__ void unaryKernel(const T* x, T* out, int64_t n, StridedIndexer<1> ix, Op op) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    out[i] = Num<T>::store(op(Num<T>::load(x[off[0]])));
  }
}

template <typename Op>
void runUnary(const char* name, const TensorArg& x, const TensorArg& out) {
  const int64_t n = x.numel();
  const int64_t* strides[1] = {x.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(x.shape, x.rank, strides);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (tryDenseMap1<T, T>(ix, x.first(), out.first(), n, UnaryElement<Op, T>{Op{}})) return;
    launchDependent("unary", unaryKernel<Op, T>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const T*>(x.first()), reinterpret_cast<T*>(out.first()), n, ix, Op{});
  };
  visitDType<Op::kInt ? DTypeSet::All : DTypeSet::Float>(x.dtype, name, launch);
  checkLaunch(name);
}

void launchUnary(UnaryOp op, const TensorArg& x, const TensorArg& out) {
  const char* name = kUnaryOpNames[int(op)];
  requireSameShape(name, x, out);
  requireDType(name, out, x.dtype, "output");
  requireContiguous(name, out, "output");
  if (x.numel() == 0) return;
  switch (op) {
    case UnaryOp::Neg: return runUnary<NegOp>(name, x, out);
    case UnaryOp::Abs: return runUnary<AbsOp>(name, x, out);
    case UnaryOp::Exp: return runUnary<ExpOp>(name, x, out);
    case UnaryOp::Log: return runUnary<LogOp>(name, x, out);
    case UnaryOp::Sqrt: return runUnary<SqrtOp>(name, x, out);
    case UnaryOp::Rsqrt: return runUnary<RsqrtOp>(name, x, out);
    case UnaryOp::Tanh: return runUnary<TanhOp>(name, x, out);
    case UnaryOp::Sigmoid: return runUnary<SigmoidOp>(name, x, out);
    case UnaryOp::Silu: return runUnary<SiluOp>(name, x, out);
    case UnaryOp::Relu: return runUnary<ReluOp>(name, x, out);
    case UnaryOp::Square: return runUnary<SquareOp>(name, x, out);
    case UnaryOp::Reciprocal: return runUnary<ReciprocalOp>(name, x, out);
    case UnaryOp::Sin: return runUnary<SinOp>(name, x, out);
    case UnaryOp::Cos: return runUnary<CosOp>(name, x, out);
    case UnaryOp::Gelu: return runUnary<GeluOp>(name, x, out);
    case UnaryOp::GeluTanh: return runUnary<GeluTanhOp>(name, x, out);
    case UnaryOp::Count: break;
  }
  fail("unary: unknown op code");
}

template <typename T>
struct IsFiniteElement {
  __device__ uint8_t operator()(T x) const { return isfinite(double(Num<T>::load(x))) ? 1 : 0; }
};

template <typename T>
__global__ void isFiniteKernel(const T* x, uint8_t* out, int64_t n, StridedIndexer<1> ix) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    out[i] = isfinite(double(Num<T>::load(x[off[0]]))) ? 1 : 0;
  }
}

void launchIsFinite(const TensorArg& x, const TensorArg& out) {
  requireSameShape("isFinite", x, out);
  requireDType("isFinite", out, DType::UInt8, "output");
  requireContiguous("isFinite", out, "output");
  const int64_t n = x.numel();
  if (n == 0) return;
  const int64_t* strides[1] = {x.strides};
  const StridedIndexer<1> ix = makeIndexer<1>(x.shape, x.rank, strides);
  visitDType<DTypeSet::All>(x.dtype, "isFinite", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (tryDenseMap1<T, uint8_t>(ix, x.first(), out.first(), n, IsFiniteElement<T>{})) return;
    isFiniteKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const T*>(x.first()), reinterpret_cast<uint8_t*>(out.first()), n, ix);
  });
  checkLaunch("isFinite");
}

}  // namespace blora
