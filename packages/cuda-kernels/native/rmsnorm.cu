// RMSNorm over the last dim and its backward, in the compute type (float32 for float32 and
// the 16-bit types, float64 for float64); rstd is stored in that type.
//   forward:  rstd = 1 / sqrt(mean(x^2) + eps),  y = x * rstd * (offset + w)
//   backward: dx = rstd g dy - x rstd^3 / D * sum_j(dy_j g_j x_j),  dw = sum over rows of dy x rstd
// The row kernels use one block per row. Rows that are 16-byte aligned and a whole number of
// 16-byte packs long (the usual bfloat16 / float16 / float32 hidden states) are read in packs,
// and each thread keeps its packs in registers from the reduction to the output pass, so the
// row crosses memory once; other rows take the scalar kernels, which read x twice. dw is a
// column sum over all rows, done without atomics so it is deterministic: blocks sum fixed
// chunks of rows into partial sums, then one thread per column adds the chunk partials in order.
#include "block_reduce.cuh"
#include "dense_map.cuh"
#include "dependent_launch.cuh"
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
  dependentKernelBegins();
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

// Packs of a row a thread keeps in registers: rows of up to kMaxPacks x 512 packs take the
// packed kernels (16,384 bfloat16 values).
constexpr int kMaxPacks = 4;
constexpr int kPackedThreads = 512;

// Calls f(i, p) for the packs p = threadIdx.x + i * blockDim.x (i < kMaxPacks) of a row of
// `packs` packs: the ones this thread holds, slot i of its registers.
template <typename F>
__device__ __forceinline__ void forHeldPacks(int64_t packs, F f) {
#pragma unroll
  for (int i = 0; i < kMaxPacks; i++) {
    const int64_t p = threadIdx.x + int64_t(i) * blockDim.x;
    if (p < packs) f(i, p);
  }
}

// The packed forward: V elements of T per 16-byte pack, packs = d / V.
template <typename T, int V>
__global__ void rmsNormPackedKernel(const T* x, const T* w, T* y, typename Num<T>::Compute* rstd, int64_t rows,
                                    int64_t packs, typename Num<T>::Compute eps, typename Num<T>::Compute offset) {
  dependentKernelBegins();
  using C = typename Num<T>::Compute;
  using P = Pack<T, V>;
  const P* wp = reinterpret_cast<const P*>(w);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const P* xr = reinterpret_cast<const P*>(x) + row * packs;
    P held[kMaxPacks];
    C sumSquares = 0;
    forHeldPacks(packs, [&](int i, int64_t p) {
      held[i] = xr[p];
#pragma unroll
      for (int e = 0; e < V; e++) {
        const C v = Num<T>::load(held[i].v[e]);
        sumSquares += v * v;
      }
    });
    sumSquares = blockReduce(sumSquares, [](C a, C b) { return a + b; }, C(0));
    const C inv = C(1) / mSqrt(sumSquares / C(packs * V) + eps);
    if (threadIdx.x == 0) rstd[row] = inv;
    P* yr = reinterpret_cast<P*>(y) + row * packs;
    forHeldPacks(packs, [&](int i, int64_t p) {
      const P g = wp[p];
      P out;
#pragma unroll
      for (int e = 0; e < V; e++) {
        out.v[e] = Num<T>::store(Num<T>::load(held[i].v[e]) * inv * (offset + Num<T>::load(g.v[e])));
      }
      yr[p] = out;
    });
  }
}

// The packed dx: dy and x stay in registers between the dot product and the output pass.
template <typename T, int V>
__global__ void rmsNormDxPackedKernel(const T* dy, const T* x, const T* w, const typename Num<T>::Compute* rstd, T* dx,
                                      int64_t rows, int64_t packs, typename Num<T>::Compute offset) {
  using C = typename Num<T>::Compute;
  using P = Pack<T, V>;
  const P* wp = reinterpret_cast<const P*>(w);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const P* dyr = reinterpret_cast<const P*>(dy) + row * packs;
    const P* xr = reinterpret_cast<const P*>(x) + row * packs;
    P heldDy[kMaxPacks], heldX[kMaxPacks];
    C dot = 0;
    forHeldPacks(packs, [&](int i, int64_t p) {
      heldDy[i] = dyr[p];
      heldX[i] = xr[p];
      const P g = wp[p];
#pragma unroll
      for (int e = 0; e < V; e++) {
        dot += Num<T>::load(heldDy[i].v[e]) * (offset + Num<T>::load(g.v[e])) * Num<T>::load(heldX[i].v[e]);
      }
    });
    dot = blockReduce(dot, [](C a, C b) { return a + b; }, C(0));
    const C inv = rstd[row];
    const C coef = inv * inv * inv * dot / C(packs * V);
    P* dxr = reinterpret_cast<P*>(dx) + row * packs;
    forHeldPacks(packs, [&](int i, int64_t p) {
      const P g = wp[p];
      P out;
#pragma unroll
      for (int e = 0; e < V; e++) {
        const C gv = offset + Num<T>::load(g.v[e]);
        out.v[e] = Num<T>::store(inv * gv * Num<T>::load(heldDy[i].v[e]) - Num<T>::load(heldX[i].v[e]) * coef);
      }
      dxr[p] = out;
    });
  }
}

// Elements per 16-byte pack when every row of these tensors is a whole number of aligned packs
// that the packed kernels hold (and the weight is dense); 0 otherwise.
template <typename T>
int packWidth(int64_t d, const TensorArg& weight, std::initializer_list<const TensorArg*> rowsOf) {
  constexpr int V = int(16 / sizeof(T));
  if (sizeof(T) > 4 || d == 0 || d % V != 0 || d / V > int64_t(kMaxPacks) * kPackedThreads) return 0;
  if (weight.strides[0] != 1 || reinterpret_cast<uintptr_t>(weight.first()) % 16 != 0) return 0;
  for (const TensorArg* t : rowsOf) {
    if (reinterpret_cast<uintptr_t>(t->first()) % 16 != 0) return 0;
  }
  return V;
}

// Threads for rows of `packs` packs: each thread holds up to kMaxPacks of them.
int packedThreads(int64_t packs) { return rowThreads((packs + kMaxPacks - 1) / kMaxPacks, kPackedThreads); }

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
    if (packWidth<T>(d, weight, {&x, &y}) > 0) {
      constexpr int V = int(16 / sizeof(T));
      launchDependent("rmsNorm", rmsNormPackedKernel<T, V>, rowBlocks(rows), packedThreads(d / V), 0,
                      reinterpret_cast<const T*>(x.first()), reinterpret_cast<const T*>(weight.first()), reinterpret_cast<T*>(y.first()),
                      reinterpret_cast<C*>(rstd.first()), rows, d / V, C(eps), C(offset));
      return;
    }
    launchDependent("rmsNorm", rmsNormKernel<T>, rowBlocks(rows), rowThreads(d, 512), 0,
                    reinterpret_cast<const T*>(x.first()), reinterpret_cast<const T*>(weight.first()), weight.strides[0],
                    reinterpret_cast<T*>(y.first()), reinterpret_cast<C*>(rstd.first()), rows, d, C(eps), C(offset));
  });
  checkLaunch(op);
}

void launchRmsNormBackward(const TensorArg& dy, const TensorArg& x, const TensorArg& weight, const TensorArg& rstd,
                           const TensorArg& dx, const TensorArg& dweight, double offset, bool weightGrad) {
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
    if (rows > 0 && packWidth<T>(d, weight, {&dy, &x, &dx}) > 0) {
      constexpr int V = int(16 / sizeof(T));
      rmsNormDxPackedKernel<T, V><<<rowBlocks(rows), packedThreads(d / V), 0, stream()>>>(
          pdy, px, reinterpret_cast<const T*>(weight.first()), pr, reinterpret_cast<T*>(dx.first()), rows, d / V, C(offset));
      checkLaunch("rmsNormBackward (dx)");
    } else if (rows > 0) {
      rmsNormDxKernel<T><<<rowBlocks(rows), rowThreads(d, 512), 0, stream()>>>(
          pdy, px, reinterpret_cast<const T*>(weight.first()), weight.strides[0], pr, reinterpret_cast<T*>(dx.first()),
          rows, d, C(offset));
      checkLaunch("rmsNormBackward (dx)");
    }
    if (!weightGrad) {
      check(cudaMemsetAsync(dweight.first(), 0, size_t(d) * sizeof(T), stream()), "rmsNormBackward (zero dweight)");
      return;
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
