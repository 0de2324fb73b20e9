// The fused, in-place AdamW update. Every step is a float64 operation in the same order as
// the CPU kernel, written with round-to-nearest intrinsics so that the compiler cannot fuse
// a multiply and an add into one FMA (which rounds once instead of twice): the results are
// bit-identical to the CPU's. Moments are stored (rounded to float32 when they are float32)
// before they are used, as on the CPU.
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

namespace {

// An element of a float tensor of runtime dtype `dtype`, exactly, as float64.
__device__ __forceinline__ double loadAsDouble(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::Float64: return static_cast<const double*>(base)[i];
    case DType::Float16: return double(__half2float(static_cast<const __half*>(base)[i]));
    case DType::BFloat16: return double(bf16BitsToFloat(__bfloat16_as_ushort(static_cast<const __nv_bfloat16*>(base)[i])));
    default: return double(static_cast<const float*>(base)[i]);
  }
}

// Stores a moment in its dtype (float32 or float64) and returns the stored value.
__device__ __forceinline__ double storeMoment(void* base, bool isDouble, int64_t i, double value) {
  if (isDouble) {
    static_cast<double*>(base)[i] = value;
    return value;
  }
  const float rounded = __double2float_rn(value);
  static_cast<float*>(base)[i] = rounded;
  return double(rounded);
}

__device__ __forceinline__ double loadMoment(const void* base, bool isDouble, int64_t i) {
  return isDouble ? static_cast<const double*>(base)[i] : double(static_cast<const float*>(base)[i]);
}

template <typename P>
__global__ void adamwKernel(P* param, const void* grad, DType gradType, StridedIndexer<1> gradIx, void* m, bool mDouble,
                            void* v, bool vDouble, int64_t n, AdamWConstants c) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    gradIx.offsets(i, off);
    const double g = loadAsDouble(grad, gradType, off[0]);
    // m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
    double mi = __dadd_rn(__dmul_rn(c.beta1, loadMoment(m, mDouble, i)), __dmul_rn(c.oneMinusBeta1, g));
    mi = storeMoment(m, mDouble, i, mi);
    double vi = __dadd_rn(__dmul_rn(c.beta2, loadMoment(v, vDouble, i)), __dmul_rn(__dmul_rn(c.oneMinusBeta2, g), g));
    vi = storeMoment(v, vDouble, i, vi);
    // param = param * decay - stepSize * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
    const double value = double(Num<P>::load(param[i]));
    const double denominator = __dadd_rn(__ddiv_rn(__dsqrt_rn(vi), c.sqrtCorrection2), c.eps);
    const double updated = __dsub_rn(__dmul_rn(value, c.decay), __ddiv_rn(__dmul_rn(c.stepSize, mi), denominator));
    param[i] = Num<P>::fromDouble(updated);
  }
}

bool isFloat(DType d) { return d == DType::Float32 || d == DType::Float64 || d == DType::Float16 || d == DType::BFloat16; }

}  // namespace

void launchAdamW(const TensorArg& param, const TensorArg& grad, const TensorArg& m, const TensorArg& v,
                 const AdamWConstants& c) {
  const char* op = "adamwStep";
  requireSameShape(op, param, grad);
  requireSameShape(op, param, m);
  requireSameShape(op, param, v);
  requireContiguous(op, param, "param");
  requireContiguous(op, m, "first moment m");
  requireContiguous(op, v, "second moment v");
  if (!isFloat(grad.dtype)) fail(std::string(op) + ": grad " + grad.describe() + " must be a float tensor");
  for (const TensorArg* t : {&m, &v}) {
    if (t->dtype != DType::Float32 && t->dtype != DType::Float64) {
      fail(std::string(op) + ": moments must be float32 or float64, got " + t->describe());
    }
  }
  const int64_t n = param.numel();
  if (n == 0) return;
  const int64_t* strides[1] = {grad.strides};
  const StridedIndexer<1> gradIx = makeIndexer<1>(grad.shape, grad.rank, strides);
  visitDType<DTypeSet::Float>(param.dtype, op, [&](auto tag) {
    using P = typename decltype(tag)::type;
    adamwKernel<P><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<P*>(param.first()), grad.first(), grad.dtype, gradIx, m.first(), m.dtype == DType::Float64,
        v.first(), v.dtype == DType::Float64, n, c);
  });
  checkLaunch(op);
}

}  // namespace blora
