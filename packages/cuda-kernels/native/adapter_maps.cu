// The element-wise ends of the adapters' fused products (poolLinear, repeatLinear), each one pass:
// - poolCast: out = the mean of each run of `kernel` elements of x's last dim, x of any float
//   dtype, out float32 / float64: the cast and the pooling of the A product's input together.
//   A run is summed in float64 and divided once, as the CPU kernels do.
// - repeatAdd: out[..., j * λ + e] = base[..., j * λ + e] + scale * z[..., j] for e < λ, z
//   float32 / float64, base and out of any float dtype (base optional): the scale, the repeat,
//   the add of the base layer's output and the rounding to its dtype after the B product.
//   Computed in z's type (scale * z rounded, then the add), rounded once to out's dtype.
// Operands are contiguous (the callers pass dense copies of other views).
#include <type_traits>

#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

template <typename In, typename Out>
__global__ void poolCastKernel(const In* x, Out* out, int64_t n, int64_t kernel) {
  BLORA_GRID_STRIDE_LOOP(o, n) {
    double sum = 0;
    for (int64_t j = 0; j < kernel; j++) sum += double(Num<In>::load(x[o * kernel + j]));
    out[o] = Out(sum / double(kernel));
  }
}

// Rounded products (no fusing with the add that follows, as the CPU computes them).
__device__ __forceinline__ float mulRounded(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mulRounded(double a, double b) { return __dmul_rn(a, b); }

// One thread per z element, writing its λ outputs (neighbouring threads write neighbouring runs).
template <typename Z, typename O, bool HasBase>
__global__ void repeatAddKernel(const Z* z, const O* base, O* out, int64_t n, int64_t lambda, Z scale) {
  using C = typename Num<Z>::Compute;
  BLORA_GRID_STRIDE_LOOP(q, n) {
    const C v = mulRounded(C(scale), C(z[q]));
    for (int64_t e = 0; e < lambda; e++) {
      const int64_t i = q * lambda + e;
      const C sum = HasBase ? C(Num<O>::load(base[i])) + v : v;
      out[i] = Num<O>::store(sum);
    }
  }
}

bool sameLeadingDims(const TensorArg& a, const TensorArg& b) {
  if (a.rank != b.rank || a.rank < 1) return false;
  for (int d = 0; d < a.rank - 1; d++) {
    if (a.shape[d] != b.shape[d]) return false;
  }
  return true;
}

}  // namespace

void launchPoolCast(const TensorArg& x, const TensorArg& out, int64_t kernel) {
  const char* op = "poolCast";
  requireContiguous(op, x, "input");
  requireContiguous(op, out, "output");
  if (out.dtype != DType::Float32 && out.dtype != DType::Float64) fail(std::string(op) + ": the output must be float32 or float64, got " + out.describe());
  if (kernel < 1 || !sameLeadingDims(x, out) || x.shape[x.rank - 1] != out.shape[out.rank - 1] * kernel) {
    fail(std::string(op) + ": cannot pool " + x.describe() + " by " + std::to_string(kernel) + " into " + out.describe());
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto inTag) {
    using In = typename decltype(inTag)::type;
    const In* xp = reinterpret_cast<const In*>(x.first());
    if (out.dtype == DType::Float32) {
      poolCastKernel<In, float><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(xp, reinterpret_cast<float*>(out.first()), n, kernel);
    } else {
      poolCastKernel<In, double><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(xp, reinterpret_cast<double*>(out.first()), n, kernel);
    }
  });
  checkLaunch(op);
}

void launchRepeatAdd(const TensorArg& z, const TensorArg* base, const TensorArg& out, int64_t lambda, double scale) {
  const char* op = "repeatAdd";
  requireContiguous(op, z, "product");
  requireContiguous(op, out, "output");
  if (z.dtype != DType::Float32 && z.dtype != DType::Float64) fail(std::string(op) + ": the product must be float32 or float64, got " + z.describe());
  if (lambda < 1 || !sameLeadingDims(z, out) || out.shape[out.rank - 1] != z.shape[z.rank - 1] * lambda) {
    fail(std::string(op) + ": cannot repeat " + z.describe() + " by " + std::to_string(lambda) + " into " + out.describe());
  }
  if (base) {
    requireContiguous(op, *base, "base");
    requireDType(op, *base, out.dtype, "base");
    if (base->numel() != out.numel()) fail(std::string(op) + ": base " + base->describe() + " does not match the output " + out.describe());
  }
  const int64_t n = z.numel();
  if (n == 0) return;
  auto launch = [&](auto zTag) {
    using Z = typename decltype(zTag)::type;
    visitDType<DTypeSet::Float>(out.dtype, op, [&](auto oTag) {
      using O = typename decltype(oTag)::type;
      const Z* zp = reinterpret_cast<const Z*>(z.first());
      O* dst = reinterpret_cast<O*>(out.first());
      if (base) {
        repeatAddKernel<Z, O, true><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
            zp, reinterpret_cast<const O*>(base->first()), dst, n, lambda, Z(scale));
      } else {
        repeatAddKernel<Z, O, false><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(zp, nullptr, dst, n, lambda, Z(scale));
      }
    });
  };
  if (z.dtype == DType::Float32) launch(TypeTag<float>{});
  else launch(TypeTag<double>{});
  checkLaunch(op);
}

}  // namespace blora
