// Fast paths of the elementwise kernels for dense operands: 16-byte vector loads and
// stores, a grid-stride loop over one full wave of blocks, and two vectors per thread in
// flight per step, which is what it takes to approach the copy bandwidth of the device. A range
// too small to give every SM a block that way runs on small blocks, a vector a thread (denseLaunch).
//
// A dense range is split into a scalar head (up to the first 16-byte boundary), packs of
// kVec elements and a scalar tail. Every operand must reach its boundary after the same
// number of elements ("the same phase"); the launchers fall back to the strided kernels
// when that fails (e.g. slices at different odd offsets).
#pragma once

#include <cstdint>
#include <unordered_map>

#include "dependent_launch.cuh"
#include "launch.cuh"
#include "strided.cuh"

namespace blora {

// V elements of T, aligned to their size (so a pack is one vector load or store).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Elements per 16-byte vector of the widest of the types.
template <typename... Ts>
__host__ __device__ constexpr int vectorWidth() {
  size_t widest = 1;
  ((widest = sizeof(Ts) > widest ? sizeof(Ts) : widest), ...);
  return int(16 / widest);
}

// Where the packs of a dense range of n elements start: head scalars, then whole packs.
struct DenseSplit {
  int64_t head = 0;   // scalars before the first pack
  int64_t packs = 0;  // whole packs after the head
};

// The split of n elements at `address` (element size `size`) into packs of `width`
// elements; ok is false when another operand's phase differs (see samePhase).
inline DenseSplit denseSplit(const void* address, size_t size, int width, int64_t n) {
  DenseSplit s;
  const uintptr_t a = reinterpret_cast<uintptr_t>(address);
  if (a % size != 0) return {n, 0};  // not even element aligned: all scalars
  const int64_t phase = int64_t((a / size) % uint64_t(width));
  s.head = std::min<int64_t>(n, phase == 0 ? 0 : width - phase);
  s.packs = (n - s.head) / width;
  return s;
}

// True when `address` (element size `size`) reaches a pack boundary after `head` elements,
// like the first operand, or when there are no packs at all.
inline bool samePhase(const void* address, size_t size, int width, const DenseSplit& s) {
  if (s.packs == 0) return true;
  const uintptr_t a = reinterpret_cast<uintptr_t>(address);
  return a % size == 0 && ((a / size) + uint64_t(s.head)) % uint64_t(width) == 0;
}

// Threads of a dense launch.
constexpr int kDenseThreads = 256;

// Blocks of `kernel` (kDenseThreads each) that fit on one SM at once, asked once per kernel.
inline int residentBlocksPerSm(const void* kernel) {
  static std::unordered_map<const void*, int> known;
  auto it = known.find(kernel);
  if (it != known.end()) return it->second;
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kDenseThreads, 0) != cudaSuccess || blocks < 1) {
    cudaGetLastError();
    blocks = 2048 / kDenseThreads;
  }
  known.emplace(kernel, blocks);
  return blocks;
}

// Blocks for `work` threads of a grid-stride kernel: one full wave at most, so no block
// waits for a second wave while the others stream.
inline unsigned denseBlocks(const void* kernel, int64_t work) {
  const int64_t blocks = (work + kDenseThreads - 1) / kDenseThreads;
  const int64_t cap = int64_t(smCount()) * residentBlocksPerSm(kernel);
  return unsigned(std::max<int64_t>(1, std::min(blocks, cap)));
}

// Blocks of this many threads, one pack each, take a dense range whose two-packs-a-thread launch
// would leave SMs idle: a map over one decoding token's activations (4-11 K elements) had 2-3
// blocks of 256, and SwiGLU's silu on 11008 elements took 4 us on an H200 for want of SMs.
constexpr int kSmallDenseThreads = 64;

struct DenseLaunch {
  unsigned blocks;
  int threads;
};

// The launch of a dense map of n elements split as `split` into packs of V: one full wave of
// blocks of kDenseThreads, two packs a thread in flight; or, when that would not give every SM a
// block, blocks of kSmallDenseThreads with a pack a thread.
inline DenseLaunch denseLaunch(const void* kernel, const DenseSplit& split, int64_t n, int V) {
  const int64_t edges = n - split.packs * V;
  const int64_t pairs = std::max<int64_t>((split.packs + 1) / 2, edges);
  if (pairs > int64_t(smCount() - 1) * kDenseThreads) return {denseBlocks(kernel, pairs), kDenseThreads};
  const int64_t work = std::max<int64_t>(split.packs, edges);
  return {unsigned(std::max<int64_t>(1, (work + kSmallDenseThreads - 1) / kSmallDenseThreads)), kSmallDenseThreads};
}

// The scalar elements of a split (head and tail), as indices 0..count-1 -> element index.
struct EdgeElements {
  int64_t head, tailStart, count;
  __host__ __device__ EdgeElements(const DenseSplit& s, int64_t n, int width)
      : head(s.head), tailStart(s.head + s.packs * width), count(s.head + (n - (s.head + s.packs * width))) {}
  __device__ int64_t element(int64_t i) const { return i < head ? i : tailStart + (i - head); }
};

// out[i] = f(x[i]) for dense x (In) and out (Out). f maps one element.
template <int V, typename In, typename Out, typename F>
__global__ void __launch_bounds__(kDenseThreads)
    denseMap1Kernel(const In* __restrict__ x, Out* __restrict__ out, int64_t n, DenseSplit split, F f) {
  dependentKernelBegins();
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  const Pack<In, V>* xv = reinterpret_cast<const Pack<In, V>*>(x + split.head);
  Pack<Out, V>* ov = reinterpret_cast<Pack<Out, V>*>(out + split.head);
  int64_t i = tid;
  for (; i + step < split.packs; i += 2 * step) {  // two packs in flight
    const Pack<In, V> a = xv[i], b = xv[i + step];
    Pack<Out, V> ra, rb;
#pragma unroll
    for (int e = 0; e < V; e++) {
      ra.v[e] = f(a.v[e]);
      rb.v[e] = f(b.v[e]);
    }
    ov[i] = ra;
    ov[i + step] = rb;
  }
  if (i < split.packs) {
    const Pack<In, V> a = xv[i];
    Pack<Out, V> r;
#pragma unroll
    for (int e = 0; e < V; e++) r.v[e] = f(a.v[e]);
    ov[i] = r;
  }
  const EdgeElements edges(split, n, V);
  if (tid < edges.count) {
    const int64_t j = edges.element(tid);
    out[j] = f(x[j]);
  }
}

// out[i] = f(a[i], b[i]) for dense a, b and out of type T (an operand flagged as a scalar
// is read once, at index 0, for every element).
template <int V, bool AScalar, bool BScalar, typename T, typename Out, typename F>
__global__ void __launch_bounds__(kDenseThreads)
    denseMap2Kernel(const T* __restrict__ a, const T* __restrict__ b, Out* __restrict__ out, int64_t n,
                    DenseSplit split, F f) {
  dependentKernelBegins();
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  const T sa = a[0], sb = b[0];  // the broadcast values (harmless reads when not scalar)
  const Pack<T, V>* av = reinterpret_cast<const Pack<T, V>*>(a + split.head);
  const Pack<T, V>* bv = reinterpret_cast<const Pack<T, V>*>(b + split.head);
  Pack<Out, V>* ov = reinterpret_cast<Pack<Out, V>*>(out + split.head);
  auto packOf = [](const Pack<T, V>* p, int64_t i, bool scalar, T s) {
    Pack<T, V> r;
    if (scalar) {
#pragma unroll
      for (int e = 0; e < V; e++) r.v[e] = s;
    } else {
      r = p[i];
    }
    return r;
  };
  int64_t i = tid;
  for (; i + step < split.packs; i += 2 * step) {
    const Pack<T, V> a0 = packOf(av, i, AScalar, sa), a1 = packOf(av, i + step, AScalar, sa);
    const Pack<T, V> b0 = packOf(bv, i, BScalar, sb), b1 = packOf(bv, i + step, BScalar, sb);
    Pack<Out, V> r0, r1;
#pragma unroll
    for (int e = 0; e < V; e++) {
      r0.v[e] = f(a0.v[e], b0.v[e]);
      r1.v[e] = f(a1.v[e], b1.v[e]);
    }
    ov[i] = r0;
    ov[i + step] = r1;
  }
  if (i < split.packs) {
    const Pack<T, V> a0 = packOf(av, i, AScalar, sa), b0 = packOf(bv, i, BScalar, sb);
    Pack<Out, V> r;
#pragma unroll
    for (int e = 0; e < V; e++) r.v[e] = f(a0.v[e], b0.v[e]);
    ov[i] = r;
  }
  const EdgeElements edges(split, n, V);
  if (tid < edges.count) {
    const int64_t j = edges.element(tid);
    out[j] = f(AScalar ? sa : a[j], BScalar ? sb : b[j]);
  }
}

// Each operand's layout after the indexer's simplification: the operand is dense (stride 1
// over all n elements) or a broadcast scalar (stride 0), or neither.
enum class DenseKind { Dense, Scalar, Other };

template <int N>
DenseKind denseKind(const StridedIndexer<N>& ix, int operand) {
  if (ix.rank == 0) return DenseKind::Dense;  // a single element
  if (ix.rank != 1) return DenseKind::Other;
  if (ix.stride[operand][0] == 1) return DenseKind::Dense;
  if (ix.stride[operand][0] == 0) return DenseKind::Scalar;
  return DenseKind::Other;
}

// Queues out = f(x) on the dense path when x (In) and out (Out) allow it; returns false
// (queuing nothing) otherwise.
template <typename In, typename Out, typename F>
bool tryDenseMap1(const StridedIndexer<1>& ix, const void* x, void* out, int64_t n, F f) {
  if (denseKind(ix, 0) != DenseKind::Dense) return false;
  constexpr int V = vectorWidth<In, Out>();
  const DenseSplit split = denseSplit(out, sizeof(Out), V, n);
  if (!samePhase(x, sizeof(In), V, split)) return false;
  auto kernel = denseMap1Kernel<V, In, Out, F>;
  const DenseLaunch shape = denseLaunch(reinterpret_cast<const void*>(kernel), split, n, V);
  launchDependent("denseMap1", kernel, shape.blocks, shape.threads, 0, static_cast<const In*>(x), static_cast<Out*>(out), n, split, f);
  return true;
}

// Queues out = f(a, b) on the dense path when a and b (T, each dense or a broadcast scalar,
// not both scalars) and out (Out) allow it; returns false otherwise.
template <typename T, typename Out, typename F>
bool tryDenseMap2(const StridedIndexer<2>& ix, const void* a, const void* b, void* out, int64_t n, F f) {
  const DenseKind ka = denseKind(ix, 0), kb = denseKind(ix, 1);
  if (ka == DenseKind::Other || kb == DenseKind::Other || (ka == DenseKind::Scalar && kb == DenseKind::Scalar)) {
    return false;
  }
  constexpr int V = vectorWidth<T, Out>();
  const DenseSplit split = denseSplit(out, sizeof(Out), V, n);
  if (ka == DenseKind::Dense && !samePhase(a, sizeof(T), V, split)) return false;
  if (kb == DenseKind::Dense && !samePhase(b, sizeof(T), V, split)) return false;
  auto launch = [&](auto kernel) {
    const DenseLaunch shape = denseLaunch(reinterpret_cast<const void*>(kernel), split, n, V);
    launchDependent("denseMap2", kernel, shape.blocks, shape.threads, 0, static_cast<const T*>(a), static_cast<const T*>(b),
                    static_cast<Out*>(out), n, split, f);
  };
  if (ka == DenseKind::Scalar) launch(denseMap2Kernel<V, true, false, T, Out, F>);
  else if (kb == DenseKind::Scalar) launch(denseMap2Kernel<V, false, true, T, Out, F>);
  else launch(denseMap2Kernel<V, false, false, T, Out, F>);
  return true;
}

}  // namespace blora
