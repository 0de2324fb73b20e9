// The parameter-free maps around the adapters, over the last dim unless said otherwise:
// - avgPool1d: the mean of each run of `kernel` consecutive elements. Like the CPU kernel, a run
//   is summed in float64 in order and divided once (dividing rather than multiplying by
//   1/kernel keeps the mean of equal values exact);
// - sumRuns: the same sums without the division (the gradient of repeatInterleave);
// - avgPool1dBackward: every gradient element repeated `kernel` times and divided by kernel
//   in the compute type, as div(repeatInterleave(dy), kernel) does;
// - repeatInterleave along any axis of a contiguous tensor (raw bits, every dtype).
// Contiguous inputs take vectorized kernels (16-byte loads or stores per thread, 32-bit index
// math where the sizes allow; avgPool1dBackward by 2, 4 or 8 reads each thread's gradient
// elements with one load); other views take a strided one-thread-per-output kernel.
#include <type_traits>

#include "kernels.h"
#include "launch.cuh"
#include "numeric.cuh"
#include "strided.cuh"

namespace blora {

namespace {

// Elements of T in one 16-byte vector.
template <typename T>
__host__ __device__ constexpr int vectorElems() {
  return int(16 / sizeof(T));
}

template <typename T>
union Vector {
  uint4 raw;
  T v[vectorElems<T>()];
};

template <typename T>
__device__ __forceinline__ T poolResult(double sum, int64_t kernel, bool mean) {
  return Num<T>::fromDouble(mean ? sum / double(kernel) : sum);
}

// Any view: one thread per output, the run located through the indexer.
template <typename T>
__global__ void stridedPoolKernel(const T* x, T* out, int64_t n, StridedIndexer<1> ix, int64_t kernel, int64_t step,
                                  bool mean) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    double sum = 0;
    for (int64_t j = 0; j < kernel; j++) sum += double(Num<T>::load(x[off[0] + j * step]));
    out[i] = poolResult<T>(sum, kernel, mean);
  }
}

// Contiguous, kernel divides the vector: thread v reads input vector v and writes its
// vectorElems / kernel outputs; outputs past the last whole vector are done one per thread.
template <typename T, int kernel>
__global__ void smallRunPoolKernel(const T* x, T* out, int64_t vectors, int64_t tailRuns, bool mean) {
  constexpr int VE = vectorElems<T>();
  constexpr int per = VE / kernel;
  BLORA_GRID_STRIDE_LOOP(v, vectors) {
    Vector<T> in;
    in.raw = __ldg(reinterpret_cast<const uint4*>(x) + v);
#pragma unroll
    for (int o = 0; o < per; o++) {
      double sum = 0;
#pragma unroll
      for (int j = 0; j < kernel; j++) sum += double(Num<T>::load(in.v[o * kernel + j]));
      out[v * per + o] = poolResult<T>(sum, kernel, mean);
    }
  }
  BLORA_GRID_STRIDE_LOOP(r, tailRuns) {
    const int64_t o = vectors * per + r;
    double sum = 0;
    for (int j = 0; j < kernel; j++) sum += double(Num<T>::load(x[o * kernel + j]));
    out[o] = poolResult<T>(sum, kernel, mean);
  }
}

// Contiguous, the vector divides kernel: one thread per output reads kernel / vectorElems vectors.
template <typename T>
__global__ void largeRunPoolKernel(const T* x, T* out, int64_t n, int64_t kernel, bool mean) {
  constexpr int VE = vectorElems<T>();
  const int64_t vectorsPerRun = kernel / VE;
  BLORA_GRID_STRIDE_LOOP(o, n) {
    const uint4* src = reinterpret_cast<const uint4*>(x) + o * vectorsPerRun;
    double sum = 0;
    for (int64_t q = 0; q < vectorsPerRun; q++) {
      Vector<T> in;
      in.raw = __ldg(src + q);
#pragma unroll
      for (int e = 0; e < VE; e++) sum += double(Num<T>::load(in.v[e]));
    }
    out[o] = poolResult<T>(sum, kernel, mean);
  }
}

// Contiguous, any kernel: one thread per output.
template <typename T>
__global__ void denseRunPoolKernel(const T* x, T* out, int64_t n, int64_t kernel, bool mean) {
  BLORA_GRID_STRIDE_LOOP(o, n) {
    double sum = 0;
    for (int64_t j = 0; j < kernel; j++) sum += double(Num<T>::load(x[o * kernel + j]));
    out[o] = poolResult<T>(sum, kernel, mean);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void launchPool(const char* op, const TensorArg& x, const TensorArg& out, int64_t kernel, bool mean) {
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  const int r = x.rank;
  bool shapeOk = r >= 1 && out.rank == r && kernel >= 1 && x.shape[r - 1] == out.shape[r - 1] * kernel;
  for (int d = 0; shapeOk && d < r - 1; d++) shapeOk = out.shape[d] == x.shape[d];
  if (!shapeOk) fail(std::string(op) + ": cannot pool " + x.describe() + " by " + std::to_string(kernel) + " into " + out.describe());
  const int64_t n = out.numel();
  if (n == 0) return;
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int VE = vectorElems<T>();
    const T* xp = reinterpret_cast<const T*>(x.first());
    T* dst = reinterpret_cast<T*>(out.first());
    if (x.isContiguous()) {
      const int64_t inputs = n * kernel;
      if (VE % kernel == 0 && aligned16(xp)) {
        const int64_t vectors = inputs / VE;
        const int64_t tailRuns = (inputs - vectors * VE) / kernel;
        const unsigned blocks = elementwiseBlocks(std::max<int64_t>(vectors, tailRuns));
        auto run = [&](auto kernelTag) {
          constexpr int K = decltype(kernelTag)::value;
          if constexpr (VE % K == 0) {
            smallRunPoolKernel<T, K><<<blocks, kElementwiseThreads, 0, stream()>>>(xp, dst, vectors, tailRuns, mean);
          }
        };
        switch (kernel) {
          case 1: run(std::integral_constant<int, 1>{}); break;
          case 2: run(std::integral_constant<int, 2>{}); break;
          case 4: run(std::integral_constant<int, 4>{}); break;
          case 8: run(std::integral_constant<int, 8>{}); break;
          default: run(std::integral_constant<int, 16>{}); break;
        }
      } else if (kernel % VE == 0 && aligned16(xp)) {
        largeRunPoolKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(xp, dst, n, kernel, mean);
      } else {
        denseRunPoolKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(xp, dst, n, kernel, mean);
      }
      return;
    }
    // Output element (..., j) starts at input element (..., j * kernel).
    int64_t strides[kMaxRank];
    for (int d = 0; d < r; d++) strides[d] = x.strides[d];
    strides[r - 1] = x.strides[r - 1] * kernel;
    const int64_t* list[1] = {strides};
    const StridedIndexer<1> ix = makeIndexer<1>(out.shape, r, list);
    stridedPoolKernel<T><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(xp, dst, n, ix, kernel,
                                                                                   x.strides[r - 1], mean);
  });
  checkLaunch(op);
}

// dx[i] = dy[i / kernel] / kernel; thread v writes output vector v (16 bytes) when aligned.
template <typename T, typename Index>
__global__ void poolBackwardKernel(const T* dy, T* dx, Index vectors, Index total, Index kernel) {
  using C = typename Num<T>::Compute;
  constexpr int VE = vectorElems<T>();
  const C divisor = C(kernel);
  for (Index v = Index(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors; v += Index(blockDim.x) * gridDim.x) {
    const Index first = v * VE;
    Index src = first / kernel, rem = first - src * kernel;
    Vector<T> o;
    T value = Num<T>::store(Num<T>::load(dy[src]) / divisor);
#pragma unroll
    for (int e = 0; e < VE; e++) {
      o.v[e] = value;
      if (++rem == kernel && e + 1 < VE) {
        rem = 0;
        value = Num<T>::store(Num<T>::load(dy[++src]) / divisor);
      }
    }
    reinterpret_cast<uint4*>(dx)[v] = o.raw;
  }
  // Elements after the last whole vector.
  for (Index i = vectors * VE + Index(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += Index(blockDim.x) * gridDim.x) {
    dx[i] = Num<T>::store(Num<T>::load(dy[i / kernel]) / divisor);
  }
}

// The same for a kernel K dividing the vector (2, 4 or 8 for 16-bit types, 2 or 4 for float32):
// the VE / K gradient elements of output vector v are read with one aligned load of 16 / K bytes
// (dy aligned to it), and the division by the constant power of two is exact either way.
template <typename T, int K, typename Index>
__global__ void poolBackwardSpreadKernel(const T* dy, T* dx, Index vectors) {
  using C = typename Num<T>::Compute;
  constexpr int VE = vectorElems<T>();
  constexpr int S = VE / K;  // gradient elements per output vector
  using Load = typename std::conditional<S * sizeof(T) == 8, uint2,
                                         typename std::conditional<S * sizeof(T) == 4, uint32_t, uint16_t>::type>::type;
  static_assert(sizeof(Load) == S * sizeof(T), "one load per output vector");
  for (Index v = Index(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors; v += Index(blockDim.x) * gridDim.x) {
    union {
      Load raw;
      T v[S];
    } in;
    in.raw = __ldg(reinterpret_cast<const Load*>(dy) + v);
    Vector<T> o;
#pragma unroll
    for (int j = 0; j < S; j++) {
      const T value = Num<T>::store(Num<T>::load(in.v[j]) / C(K));
#pragma unroll
      for (int e = 0; e < K; e++) o.v[j * K + e] = value;
    }
    reinterpret_cast<uint4*>(dx)[v] = o.raw;
  }
}

// out viewed as [blocks, repeats, inner] takes x [blocks, inner] (raw bits). Inner == 1: thread v
// writes output vector v from consecutive sources; otherwise inner is a multiple of the vector
// and whole vectors are copied.
template <typename U, typename Index>
__global__ void repeatVectorKernel(const U* x, U* out, Index vectors, Index repeats, Index inner) {
  constexpr int VE = vectorElems<U>();
  for (Index v = Index(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors; v += Index(blockDim.x) * gridDim.x) {
    const Index first = v * VE;
    if (inner == 1) {
      Index src = first / repeats, rem = first - src * repeats;
      Vector<U> o;
      U value = x[src];
#pragma unroll
      for (int e = 0; e < VE; e++) {
        o.v[e] = value;
        if (++rem == repeats && e + 1 < VE) {
          rem = 0;
          value = x[++src];
        }
      }
      reinterpret_cast<uint4*>(out)[v] = o.raw;
    } else {
      const Index block = first / (inner * repeats);
      const Index q = first - (first / inner) * inner;
      reinterpret_cast<uint4*>(out)[v] = __ldg(reinterpret_cast<const uint4*>(x + block * inner + q));
    }
  }
}

// Scalar tail of the inner == 1 case: outputs from `start` to `total`.
template <typename U, typename Index>
__global__ void repeatTailKernel(const U* x, U* out, Index start, Index total, Index repeats) {
  const Index i = start + Index(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) out[i] = x[i / repeats];
}

// Runs fn(Index tag) with uint32_t when every index fits, else uint64_t.
template <typename Fn>
void withIndexType(int64_t largest, Fn&& fn) {
  if (largest < (int64_t(1) << 32) - 64) fn(TypeTag<uint32_t>{});
  else fn(TypeTag<uint64_t>{});
}

}  // namespace

void launchAvgPool1d(const TensorArg& x, const TensorArg& out, int64_t kernel) { launchPool("avgPool1d", x, out, kernel, true); }

void launchSumRuns(const TensorArg& x, const TensorArg& out, int64_t kernel) { launchPool("sumRuns", x, out, kernel, false); }

void launchAvgPool1dBackward(const TensorArg& dy, const TensorArg& dx, int64_t kernel) {
  const char* op = "avgPool1dBackward";
  requireDType(op, dx, dy.dtype, "output");
  requireContiguous(op, dy, "gradient");
  requireContiguous(op, dx, "output");
  if (kernel < 1 || dx.numel() != dy.numel() * kernel || dy.rank < 1 || dx.rank != dy.rank ||
      dx.shape[dx.rank - 1] != dy.shape[dy.rank - 1] * kernel) {
    fail(std::string(op) + ": cannot spread " + dy.describe() + " by " + std::to_string(kernel) + " into " + dx.describe());
  }
  const int64_t total = dx.numel();
  if (total == 0) return;
  visitDType<DTypeSet::Float>(dy.dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int VE = vectorElems<T>();
    T* dxp = reinterpret_cast<T*>(dx.first());
    const int64_t vectors = aligned16(dxp) ? total / VE : 0;
    const T* dyp = reinterpret_cast<const T*>(dy.first());
    withIndexType(total, [&](auto indexTag) {
      using Index = typename decltype(indexTag)::type;
      // Whole vectors only (a dividing kernel leaves no tail) and dy aligned to its loads.
      auto spread = [&](auto kernelTag) {
        constexpr int K = decltype(kernelTag)::value;
        if constexpr (VE % K != 0 || VE == K) {
          return false;
        } else {
          if (total % VE != 0 || vectors == 0 || reinterpret_cast<uintptr_t>(dyp) % (sizeof(T) * (VE / K)) != 0) return false;
          poolBackwardSpreadKernel<T, K, Index><<<elementwiseBlocks(vectors), kElementwiseThreads, 0, stream()>>>(
              dyp, dxp, Index(vectors));
          return true;
        }
      };
      const bool spread2 = kernel == 2 && spread(std::integral_constant<int, 2>{});
      const bool spread4 = kernel == 4 && spread(std::integral_constant<int, 4>{});
      const bool spread8 = kernel == 8 && spread(std::integral_constant<int, 8>{});
      if (spread2 || spread4 || spread8) return;
      const int64_t work = std::max<int64_t>(vectors, total - vectors * VE);
      poolBackwardKernel<T, Index><<<elementwiseBlocks(work), kElementwiseThreads, 0, stream()>>>(
          dyp, dxp, Index(vectors), Index(total), Index(kernel));
    });
  });
  checkLaunch(op);
}

bool launchRepeatInterleave(const TensorArg& x, const TensorArg& out, int64_t repeats, int axis) {
  const char* op = "repeatInterleave";
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  if (axis < 0 || axis >= x.rank || out.rank != x.rank || out.shape[axis] != x.shape[axis] * repeats) {
    fail(std::string(op) + ": cannot repeat " + x.describe() + " " + std::to_string(repeats) + " times along axis " +
         std::to_string(axis) + " into " + out.describe());
  }
  if (!x.isContiguous() || !aligned16(x.first()) || !aligned16(out.first())) return false;
  int64_t inner = 1;
  for (int d = axis + 1; d < x.rank; d++) inner *= x.shape[d];
  const int64_t total = out.numel();
  if (total == 0) return true;
  bool launched = false;
  visitBits(x.dtype, [&](auto tag) {
    using U = typename decltype(tag)::type;
    constexpr int VE = vectorElems<U>();
    if (inner != 1 && inner % VE != 0) return;
    const int64_t vectors = total / VE;
    withIndexType(total, [&](auto indexTag) {
      using Index = typename decltype(indexTag)::type;
      const U* xp = reinterpret_cast<const U*>(x.first());
      U* outp = reinterpret_cast<U*>(out.first());
      if (vectors > 0) {
        repeatVectorKernel<U, Index><<<elementwiseBlocks(vectors), kElementwiseThreads, 0, stream()>>>(
            xp, outp, Index(vectors), Index(repeats), Index(inner));
      }
      if (vectors * VE < total) {  // only when inner == 1
        repeatTailKernel<U, Index><<<1, VE, 0, stream()>>>(xp, outp, Index(vectors * VE), Index(total), Index(repeats));
      }
    });
    launched = true;
  });
  if (launched) checkLaunch(op);
  return launched;
}

}  // namespace blora
