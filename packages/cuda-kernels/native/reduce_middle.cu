// sum / mean / max / min over the middle axis of a contiguous [outer, reduced, inner] block:
// out[o, i] = reduction over r of x[o, r, i]. This is a reduction over leading axes (outer
// = 1), e.g. a bias gradient summed over tokens, read in place without a transposing copy.
//
// A block of 32 x 8 threads covers a strip of 32 column groups (V columns each, one 16-byte
// vector when the rows are aligned, else one column) of one outer index; its 8 thread rows
// walk the reduced rows 8 apart, four loads in flight, and meet through shared memory.
// When outer x strips is too small to fill the device, the reduced axis is cut into chunks
// (grid y) whose partial accumulators a second kernel combines.
#include "reduce_common.cuh"
#include "launch.cuh"
#include "scratch.h"

namespace blora {

namespace {

constexpr int kCols = 32, kRows = 8;  // block shape: column groups x reduced-row lanes

// Folds the V columns at p (one pack, or one element when V = 1) into acc.
template <typename T, ReduceOp Op, int V>
__device__ __forceinline__ void foldRow(typename Accum<T>::type (&acc)[V], const T* p) {
  using R = Reducer<T, Op>;
  if constexpr (V == 1) {
    acc[0] = R::combine(acc[0], Accum<T>::load(*p));
  } else {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int e = 0; e < V; e++) acc[e] = R::combine(acc[e], Accum<T>::load(v.v[e]));
  }
}

template <typename T, ReduceOp Op, int V, bool Final>
__global__ void __launch_bounds__(kCols* kRows)
    middleKernel(const T* x, T* out, typename Accum<T>::type* partials, int64_t outer, int64_t reduced, int64_t inner,
                 int64_t strips, int64_t rowsPerChunk) {
  using R = Reducer<T, Op>;
  using A = typename R::A;
  const int64_t o = int64_t(blockIdx.x) / strips, strip = int64_t(blockIdx.x) % strips;
  const int64_t col = (strip * kCols + threadIdx.x) * V;
  const int64_t r0 = int64_t(blockIdx.y) * rowsPerChunk;
  const int64_t r1 = r0 + rowsPerChunk < reduced ? r0 + rowsPerChunk : reduced;
  A acc[V];
#pragma unroll
  for (int e = 0; e < V; e++) acc[e] = R::identity();
  if (col < inner) {
    const T* base = x + o * reduced * inner + col;
    int64_t r = r0 + threadIdx.y;
    for (; r + 3 * kRows < r1; r += 4 * kRows) {
      if constexpr (V == 1) {
        const T v0 = base[r * inner], v1 = base[(r + kRows) * inner];
        const T v2 = base[(r + 2 * kRows) * inner], v3 = base[(r + 3 * kRows) * inner];
        acc[0] = R::combine(acc[0], Accum<T>::load(v0));
        acc[0] = R::combine(acc[0], Accum<T>::load(v1));
        acc[0] = R::combine(acc[0], Accum<T>::load(v2));
        acc[0] = R::combine(acc[0], Accum<T>::load(v3));
      } else {
        foldRow<T, Op, V>(acc, base + r * inner);
        foldRow<T, Op, V>(acc, base + (r + kRows) * inner);
        foldRow<T, Op, V>(acc, base + (r + 2 * kRows) * inner);
        foldRow<T, Op, V>(acc, base + (r + 3 * kRows) * inner);
      }
    }
    for (; r < r1; r += kRows) foldRow<T, Op, V>(acc, base + r * inner);
  }
  __shared__ A partial[kRows][kCols * V];
#pragma unroll
  for (int e = 0; e < V; e++) partial[threadIdx.y][threadIdx.x * V + e] = acc[e];
  __syncthreads();
  if (threadIdx.y != 0 || col >= inner) return;
#pragma unroll
  for (int e = 0; e < V; e++) {
    A a = partial[0][threadIdx.x * V + e];
    for (int j = 1; j < kRows; j++) a = R::combine(a, partial[j][threadIdx.x * V + e]);
    if constexpr (Final) {
      out[o * inner + col + e] = R::finish(a, reduced);
    } else {
      partials[(int64_t(blockIdx.y) * outer + o) * inner + col + e] = a;
    }
  }
}

// out[i] = the combination of partials[c][i] over the chunks c.
template <typename T, ReduceOp Op>
__global__ void __launch_bounds__(256)
    finishMiddleKernel(const typename Accum<T>::type* partials, T* out, int64_t count, int64_t chunks, int64_t reduced) {
  using R = Reducer<T, Op>;
  BLORA_GRID_STRIDE_LOOP(i, count) {
    typename R::A a = partials[i];
    for (int64_t c = 1; c < chunks; c++) a = R::combine(a, partials[c * count + i]);
    out[i] = R::finish(a, reduced);
  }
}

template <typename T, ReduceOp Op, int V>
void runMiddle(const T* x, T* out, int64_t outer, int64_t reduced, int64_t inner) {
  using A = typename Accum<T>::type;
  const int64_t strips = (inner + int64_t(kCols) * V - 1) / (int64_t(kCols) * V);
  const int64_t blocks = outer * strips;
  if (blocks > INT32_MAX) fail("reduce: too many output columns for one launch");
  // Cut the reduced axis when the columns alone give less than a full wave of blocks, but
  // keep at least 64 rows (8 per thread row) per chunk.
  static_assert(kCols * kRows == kDenseThreads, "residentBlocksPerSm assumes kDenseThreads per block");
  const int64_t wave = int64_t(smCount()) * residentBlocksPerSm(reinterpret_cast<const void*>(middleKernel<T, Op, V, false>));
  int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((wave + blocks - 1) / blocks, (reduced + 63) / 64));
  chunks = std::min<int64_t>(chunks, 65535);
  const int64_t rowsPerChunk = std::max<int64_t>(1, (reduced + chunks - 1) / chunks);
  chunks = std::max<int64_t>(1, (reduced + rowsPerChunk - 1) / rowsPerChunk);
  const dim3 grid{unsigned(blocks), unsigned(chunks)}, block{kCols, kRows};
  if (chunks == 1) {
    middleKernel<T, Op, V, true><<<grid, block, 0, stream()>>>(x, out, nullptr, outer, reduced, inner, strips,
                                                                rowsPerChunk);
    return;
  }
  DeviceScratch partials(size_t(chunks * outer * inner) * sizeof(A));
  middleKernel<T, Op, V, false><<<grid, block, 0, stream()>>>(x, out, partials.as<A>(), outer, reduced, inner, strips,
                                                               rowsPerChunk);
  finishMiddleKernel<T, Op><<<elementwiseBlocks(outer * inner), 256, 0, stream()>>>(partials.as<A>(), out,
                                                                                    outer * inner, chunks, reduced);
}

template <ReduceOp Op>
void dispatchMiddle(const char* name, const TensorArg& x, const TensorArg& out, int64_t outer, int64_t reduced,
                    int64_t inner) {
  visitDType<Op == ReduceOp::Mean ? DTypeSet::Float : DTypeSet::All>(x.dtype, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = vectorWidth<T>();
    const T* px = reinterpret_cast<const T*>(x.first());
    T* po = reinterpret_cast<T*>(out.first());
    // Whole vectors per thread when every row starts on a 16-byte boundary.
    if (inner % V == 0 && reinterpret_cast<uintptr_t>(px) % 16 == 0) runMiddle<T, Op, V>(px, po, outer, reduced, inner);
    else runMiddle<T, Op, 1>(px, po, outer, reduced, inner);
  });
  checkLaunch(name);
}

}  // namespace

void launchReduceMiddle(ReduceOp op, const TensorArg& x, const TensorArg& out, int64_t outer, int64_t reduced,
                        int64_t inner) {
  const char* name = kReduceOpNames[int(op)];
  requireContiguous(name, x, "input");
  requireContiguous(name, out, "output");
  requireDType(name, out, x.dtype, "output");
  if (outer < 0 || reduced < 0 || inner < 0 || x.numel() != outer * reduced * inner || out.numel() != outer * inner) {
    fail(std::string(name) + ": " + x.describe() + " -> " + out.describe() + " is not a reduction of [" +
         std::to_string(outer) + ", " + std::to_string(reduced) + ", " + std::to_string(inner) + "] over its middle axis");
  }
  if (outer * inner == 0) return;
  if (inner == 1) return launchReduceRows(op, x, out, outer, reduced);
  switch (op) {
    case ReduceOp::Sum: return dispatchMiddle<ReduceOp::Sum>(name, x, out, outer, reduced, inner);
    case ReduceOp::Mean: return dispatchMiddle<ReduceOp::Mean>(name, x, out, outer, reduced, inner);
    case ReduceOp::Max: return dispatchMiddle<ReduceOp::Max>(name, x, out, outer, reduced, inner);
    case ReduceOp::Min: return dispatchMiddle<ReduceOp::Min>(name, x, out, outer, reduced, inner);
    case ReduceOp::Count: break;
  }
  fail("reduce: unknown op code");
}

}  // namespace blora
