// RMSNorm over the last dim and its backward, in the compute type (float32 for float32 and
// the 16-bit types, float64 for float64); rstd is stored in that type.
//   forward:  rstd = 1 / sqrt(mean(x^2) + eps),  y = x * rstd * (offset + w)
//   backward: dx = rstd g dy - x rstd^3 / D * sum_j(dy_j g_j x_j),  dw = sum over rows of dy x rstd
// The row kernels use one block per row. dw is a column sum over all rows, done without
// atomics so it is deterministic: blocks sum fixed chunks of rows into partial sums, then
// one thread per column adds the chunk partials in order.
#include "block_reduce.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "scratch.h"

namespace blora {

namespace {

constexpr int kChunkRows = 128;  // rows per partial sum of dw
constexpr int kColTile = 32;     // columns per partial-sum block (one warp wide)
constexpr int kRowLanes = 8;     // rows summed side by side in a partial-sum block

unsigned rowBlocks(int64_t rows) { return unsigned(std::min<int64_t>(rows, int64_t(1) << 20)); }

template <typename T>
__global__ void rmsNormKernel(const T* x, const T* w, int64_t ws, T* y, typename Num<T>::Compute* rstd, int64_t rows,
                              int64_t d, typename Num<T>::Compute eps, typename Num<T>::Compute offset) {
  using C = typename Num<T>::Compute;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * d;
    C sumSquares = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const C v = Num<T>::load(xr[j]);
      sumSquares += v * v;
    }
    sumSquares = blockReduce(sumSquares, [](C a, C b) { return a + b; }, C(0));
    const C inv = C(1) / mSqrt((d > 0 ? sumSquares / C(d) : C(0)) + eps);
    if (threadIdx.x == 0) rstd[row] = inv;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      y[row * d + j] = Num<T>::store(Num<T>::load(xr[j]) * inv * (offset + Num<T>::load(w[j * ws])));
    }
  }
}

template <typename T>
__global__ void rmsNormDxKernel(const T* dy, const T* x, const T* w, int64_t ws, const typename Num<T>::Compute* rstd,
                                T* dx, int64_t rows, int64_t d, typename Num<T>::Compute offset) {
  using C = typename Num<T>::Compute;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * d;
    C dot = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      dot += Num<T>::load(dy[base + j]) * (offset + Num<T>::load(w[j * ws])) * Num<T>::load(x[base + j]);
    }
    dot = blockReduce(dot, [](C a, C b) { return a + b; }, C(0));
    const C inv = rstd[row];
    const C coef = inv * inv * inv * dot / C(d);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const C g = offset + Num<T>::load(w[j * ws]);
      dx[base + j] = Num<T>::store(inv * g * Num<T>::load(dy[base + j]) - Num<T>::load(x[base + j]) * coef);
    }
  }
}

// Block (col tile, chunk): partial[chunk][col] = sum over the chunk's rows of dy x rstd.
template <typename T>
__global__ void rmsNormDwPartialKernel(const T* dy, const T* x, const typename Num<T>::Compute* rstd,
                                       typename Num<T>::Compute* partial, int64_t rows, int64_t d) {
  using C = typename Num<T>::Compute;
  __shared__ C sums[kRowLanes][kColTile];
  const int64_t col = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t end = (chunk + 1) * kChunkRows < rows ? (chunk + 1) * kChunkRows : rows;
  C acc = 0;
  if (col < d) {
    for (int64_t row = chunk * kChunkRows + threadIdx.y; row < end; row += kRowLanes) {
      acc += Num<T>::load(dy[row * d + col]) * Num<T>::load(x[row * d + col]) * rstd[row];
    }
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < d) {
    C total = 0;
    for (int k = 0; k < kRowLanes; k++) total += sums[k][threadIdx.x];
    partial[chunk * d + col] = total;
  }
}

template <typename T>
__global__ void rmsNormDwFinalKernel(const typename Num<T>::Compute* partial, T* dw, int64_t chunks, int64_t d) {
  using C = typename Num<T>::Compute;
  BLORA_GRID_STRIDE_LOOP(col, d) {
    C total = 0;
    for (int64_t c = 0; c < chunks; c++) total += partial[c * d + col];
    dw[col] = Num<T>::store(total);
  }
}

DType statsDType(DType dtype) { return dtype == DType::Float64 ? DType::Float64 : DType::Float32; }

// Checks x [rows, D] (contiguous), weight [D], a contiguous stats vector of `rows`.
void checkRows(const char* op, const TensorArg& x, const TensorArg& weight, const TensorArg& rstd) {
  requireContiguous(op, x, "input");
  requireContiguous(op, rstd, "rstd");
  requireDType(op, weight, x.dtype, "weight");
  requireDType(op, rstd, statsDType(x.dtype), "rstd");
  const int64_t d = x.rank > 0 ? x.shape[x.rank - 1] : 0;
  if (x.rank < 1 || weight.rank != 1 || weight.shape[0] != d || rstd.numel() * d != x.numel()) {
    fail(std::string(op) + ": expected x [..., D], weight [D] and rstd [...], got " + x.describe() + ", " +
         weight.describe() + " and " + rstd.describe());
  }
}

}  // namespace

void launchRmsNorm(const TensorArg& x, const TensorArg& weight, const TensorArg& y, const TensorArg& rstd, double eps,
                   double offset) {
  const char* op = "rmsNorm";
  checkRows(op, x, weight, rstd);
  requireSameShape(op, x, y);
  requireDType(op, y, x.dtype, "output");
  requireContiguous(op, y, "output");
  const int64_t d = x.shape[x.rank - 1];
  const int64_t rows = rstd.numel();
  if (rows == 0) return;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    rmsNormKernel<T><<<rowBlocks(rows), rowThreads(d, 512), 0, stream()>>>(
        reinterpret_cast<const T*>(x.first()), reinterpret_cast<const T*>(weight.first()), weight.strides[0],
        reinterpret_cast<T*>(y.first()), reinterpret_cast<C*>(rstd.first()), rows, d, C(eps), C(offset));
  });
  checkLaunch(op);
}

void launchRmsNormBackward(const TensorArg& dy, const TensorArg& x, const TensorArg& weight, const TensorArg& rstd,
                           const TensorArg& dx, const TensorArg& dweight, double offset) {
  const char* op = "rmsNormBackward";
  checkRows(op, x, weight, rstd);
  requireSameShape(op, x, dy);
  requireSameShape(op, x, dx);
  requireSameShape(op, weight, dweight);
  requireContiguous(op, dy, "output gradient");
  requireContiguous(op, dx, "input gradient");
  requireContiguous(op, dweight, "weight gradient");
  requireDType(op, dy, x.dtype, "output gradient");
  requireDType(op, dx, x.dtype, "input gradient");
  requireDType(op, dweight, x.dtype, "weight gradient");
  const int64_t d = x.shape[x.rank - 1];
  const int64_t rows = rstd.numel();
  if (d == 0) return;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = typename Num<T>::Compute;
    const T* pdy = reinterpret_cast<const T*>(dy.first());
    const T* px = reinterpret_cast<const T*>(x.first());
    const C* pr = reinterpret_cast<const C*>(rstd.first());
    if (rows > 0) {
      rmsNormDxKernel<T><<<rowBlocks(rows), rowThreads(d, 512), 0, stream()>>>(
          pdy, px, reinterpret_cast<const T*>(weight.first()), weight.strides[0], pr, reinterpret_cast<T*>(dx.first()),
          rows, d, C(offset));
      checkLaunch("rmsNormBackward (dx)");
    }
    const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
    if (chunks > 65535) fail(std::string(op) + ": too many rows (" + std::to_string(rows) + ") for one launch");
    DeviceScratch partial(size_t(std::max<int64_t>(chunks, 1) * d) * sizeof(C));
    C* pp = partial.as<C>();
    if (chunks > 0) {
      const dim3 grid(unsigned((d + kColTile - 1) / kColTile), unsigned(chunks));
      rmsNormDwPartialKernel<T><<<grid, dim3(kColTile, kRowLanes), 0, stream()>>>(pdy, px, pr, pp, rows, d);
      checkLaunch("rmsNormBackward (dw partial sums)");
    }
    rmsNormDwFinalKernel<T><<<elementwiseBlocks(d), kElementwiseThreads, 0, stream()>>>(
        pp, reinterpret_cast<T*>(dweight.first()), chunks, d);
    checkLaunch("rmsNormBackward (dw)");
  });
}

}  // namespace blora
