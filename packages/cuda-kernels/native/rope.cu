// Rotary position embeddings in Hugging Face's rotate_half layout: dim i is paired with
// i + Dh/2 and both use angle i of position t. One thread rotates one pair:
//   out[i] = x[i] cos - x[i + Dh/2] sin,  out[i + Dh/2] = x[i + Dh/2] cos + x[i] sin
// (sin negated for the inverse). x and the tables are read through their strides; the
// tables are float32 or x's dtype; arithmetic is in x's compute type.
#include "dependent_launch.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"

namespace blora {

namespace {

struct RopeDims {
  int64_t b, h, t, half;
  int64_t xs[4];            // strides of x
  int64_t cs0, cs1, ss0, ss1;  // strides of cos and sin
};

template <typename T, typename Table>
__global__ void ropeKernel(const T* x, const Table* cosTable, const Table* sinTable, T* out, int64_t pairs, RopeDims d,
                           typename Num<T>::Compute sign) {
  dependentKernelBegins();
  using C = typename Num<T>::Compute;
  BLORA_GRID_STRIDE_LOOP(p, pairs) {
    const int64_t i = p % d.half;
    const int64_t t = (p / d.half) % d.t;
    const int64_t bh = p / (d.half * d.t);
    const int64_t hi = bh % d.h;
    const int64_t bi = bh / d.h;
    const T* row = x + bi * d.xs[0] + hi * d.xs[1] + t * d.xs[2];
    const C lo = Num<T>::load(row[i * d.xs[3]]);
    const C up = Num<T>::load(row[(i + d.half) * d.xs[3]]);
    const C c = C(Num<Table>::load(cosTable[t * d.cs0 + i * d.cs1]));
    const C s = sign * C(Num<Table>::load(sinTable[t * d.ss0 + i * d.ss1]));
    T* o = out + (bh * d.t + t) * 2 * d.half;
    o[i] = Num<T>::store(lo * c - up * s);
    o[i + d.half] = Num<T>::store(up * c + lo * s);
  }
}

}  // namespace

void launchRope(const TensorArg& x, const TensorArg& cos, const TensorArg& sin, const TensorArg& out, bool inverse) {
  const char* op = "rope";
  requireSameShape(op, x, out);
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  requireDType(op, sin, cos.dtype, "sin table");
  if (cos.dtype != DType::Float32 && cos.dtype != x.dtype) {
    fail(std::string(op) + ": the tables " + cos.describe() + " must be float32 or the dtype of x " + x.describe());
  }
  if (x.rank != 4 || x.shape[3] % 2 != 0 || cos.rank != 2 || cos.shape[0] != x.shape[2] || cos.shape[1] * 2 != x.shape[3]) {
    fail(std::string(op) + ": expected x [B, H, T, Dh] with Dh even and tables [T, Dh/2], got " + x.describe() + " and " +
         cos.describe());
  }
  requireSameShape(op, cos, sin);
  RopeDims d{x.shape[0], x.shape[1], x.shape[2], x.shape[3] / 2, {x.strides[0], x.strides[1], x.strides[2], x.strides[3]},
             cos.strides[0], cos.strides[1], sin.strides[0], sin.strides[1]};
  const int64_t pairs = d.b * d.h * d.t * d.half;
  if (pairs == 0) return;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    const C sign = inverse ? C(-1) : C(1);
    auto launch = [&](auto tableTag) {
      using Table = typename decltype(tableTag)::type;
      launchDependent("rope", ropeKernel<T, Table>, elementwiseBlocks(pairs), kElementwiseThreads, 0,
                      reinterpret_cast<const T*>(x.first()), reinterpret_cast<const Table*>(cos.first()),
                      reinterpret_cast<const Table*>(sin.first()), reinterpret_cast<T*>(out.first()), pairs, d, sign);
    };
    if (cos.dtype == DType::Float32) launch(TypeTag<float>{});
    else launch(TypeTag<T>{});
  });
  checkLaunch(op);
}

}  // namespace blora
