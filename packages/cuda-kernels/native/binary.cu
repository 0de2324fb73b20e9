// Elementwise binary arithmetic over strided, broadcast inputs (and siluBackward, silu's
// gradient in one pass, siluMul, SwiGLU's silu(gate) * up, and gelu's gradients in one pass). add, sub, mul, maximum
// and minimum also take integer dtypes: they compute in int64 and wrap on store, which
// gives the CPU's two's-complement results (Math.imul for products). div and pow are
// float-only; pow follows C99 (pow(1, NaN) = 1, pow(-1, +-Inf) = 1) like the CPU.
// Dense operands (or a dense one and a broadcast scalar) take the 16-byte vector path of
// dense_map.cuh; other views the strided kernel.
#include "dense_map.cuh"
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

const char* const kBinaryOpNames[int(BinaryOp::Count)] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                         "siluBackward", "siluMul", "geluBackward", "geluTanhBackward"};

struct AddOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C a, C b) const { return a + b; }
};
struct SubOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C a, C b) const { return a - b; }
};
struct MulOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C a, C b) const { return a * b; }
};
struct DivOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const { return a / b; }
};
struct PowOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const { return mPow(a, b); }
};
struct MaximumOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C a, C b) const { return jsMax(a, b); }
};
struct MinimumOp {
  static constexpr bool kInt = true;
  template <typename C> __device__ C operator()(C a, C b) const { return jsMin(a, b); }
};

// The gradient of silu: b s (1 + a (1 - s)) with s = sigmoid(a), a = x, b = dy; the limits
// b and 0 b at a = +-Infinity (as the CPU kernel).
struct SiluBackwardOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const {
    if (isinf(a)) return a > C(0) ? b : C(0) * b;
    const C s = C(1) / (C(1) + mExp(-a));
    return b * s * (C(1) + a * (C(1) - s));
  }
};

// SwiGLU: silu(a) b with silu as the unary kernel computes it (-0 at a = -Infinity), rounded once.
struct SiluMulOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const { return siluOf(a) * b; }
};

// The gradient of exact gelu: b (Phi(a) + a phi(a)), Phi(a) = erfc(-a / sqrt 2) / 2; the limits
// b and 0 b at a = +-Infinity (as the CPU kernel).
struct GeluBackwardOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const {
    if (isinf(a)) return a > C(0) ? b : C(0) * b;
    return b * (C(0.5) * mErfc(-a * C(0.70710678118654752440)) + a * mExp(C(-0.5) * a * a) * C(0.39894228040143267794));
  }
};

// The gradient of tanh gelu a s(2u), u = sqrt(2/pi) (a + 0.044715 a^3): b (s + a s (1 - s) 2u');
// the limits b and 0 b at a = +-Infinity.
struct GeluTanhBackwardOp {
  static constexpr bool kInt = false;
  template <typename C> __device__ C operator()(C a, C b) const {
    if (isinf(a)) return a > C(0) ? b : C(0) * b;
    const C k = C(0.79788456080286535588), c = C(0.044715);
    const C s = sigmoidOf(C(2) * k * (a + c * a * a * a));
    return b * (s + a * s * (C(1) - s) * C(2) * k * (C(1) + C(3) * c * a * a));
  }
};

// One element of a binary op: load both into the compute type, apply, store.
template <typename Op, typename T>
struct BinaryElement {
  Op op;
  __device__ T operator()(T a, T b) const { return Num<T>::store(op(Num<T>::load(a), Num<T>::load(b))); }
};

template <typename Op, typename T>
__global__ void binaryKernel(const T* a, const T* b, T* out, int64_t n, StridedIndexer<2> ix, Op op) {
  dependentKernelBegins();
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = Num<T>::store(op(Num<T>::load(a[off[0]]), Num<T>::load(b[off[1]])));
  }
}

template <typename Op>
void runBinary(const char* name, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const int64_t n = out.numel();
  const int64_t* strides[2] = {a.strides, b.strides};
  const StridedIndexer<2> ix = makeIndexer<2>(a.shape, a.rank, strides);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (tryDenseMap2<T, T>(ix, a.first(), b.first(), out.first(), n, BinaryElement<Op, T>{Op{}})) return;
    launchDependent("binary", binaryKernel<Op, T>, elementwiseBlocks(n), kElementwiseThreads, 0,
                    reinterpret_cast<const T*>(a.first()), reinterpret_cast<const T*>(b.first()), reinterpret_cast<T*>(out.first()), n, ix,
                    Op{});
  };
  visitDType<Op::kInt ? DTypeSet::All : DTypeSet::Float>(a.dtype, name, launch);
  checkLaunch(name);
}

void launchBinary(BinaryOp op, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const char* name = kBinaryOpNames[int(op)];
  requireSameShape(name, a, b);
  requireSameShape(name, a, out);
  requireDType(name, b, a.dtype, "second input");
  requireDType(name, out, a.dtype, "output");
  requireContiguous(name, out, "output");
  if (out.numel() == 0) return;
  switch (op) {
    case BinaryOp::Add: return runBinary<AddOp>(name, a, b, out);
    case BinaryOp::Sub: return runBinary<SubOp>(name, a, b, out);
    case BinaryOp::Mul: return runBinary<MulOp>(name, a, b, out);
    case BinaryOp::Div: return runBinary<DivOp>(name, a, b, out);
    case BinaryOp::Pow: return runBinary<PowOp>(name, a, b, out);
    case BinaryOp::Maximum: return runBinary<MaximumOp>(name, a, b, out);
    case BinaryOp::Minimum: return runBinary<MinimumOp>(name, a, b, out);
    case BinaryOp::SiluBackward: return runBinary<SiluBackwardOp>(name, a, b, out);
    case BinaryOp::SiluMul: return runBinary<SiluMulOp>(name, a, b, out);
    case BinaryOp::GeluBackward: return runBinary<GeluBackwardOp>(name, a, b, out);
    case BinaryOp::GeluTanhBackward: return runBinary<GeluTanhBackwardOp>(name, a, b, out);
    case BinaryOp::Count: break;
  }
  fail("binary: unknown op code");
}

}  // namespace blora
