// What the sum / mean / max / min kernels share: the accumulator of each storage type, the
// combine step of each op, and a vectorized walk over a dense range of one row.
// Like the CPU backend, float dtypes accumulate in float64 and round once at the store;
// integers accumulate in int64 and wrap at the store. max and min propagate NaN.
#pragma once

#include <climits>
#include <type_traits>

#include "dense_map.cuh"
#include "kernels.h"
#include "numeric.cuh"

namespace blora {

// The accumulator of a storage type, with the final store.
template <typename T, bool IsInt = std::is_same<typename Num<T>::Compute, long long>::value>
struct Accum {
  using type = double;
  __device__ static double load(T v) { return double(Num<T>::load(v)); }
  __device__ static double lowest() { return -INFINITY; }
  __device__ static double highest() { return INFINITY; }
  __device__ static T store(double v) { return Num<T>::fromDouble(v); }
  __device__ static T storeMean(double sum, int64_t count) { return Num<T>::fromDouble(sum / double(count)); }
};

template <typename T>
struct Accum<T, true> {
  using type = long long;
  __device__ static long long load(T v) { return Num<T>::load(v); }
  __device__ static long long lowest() { return LLONG_MIN; }
  __device__ static long long highest() { return LLONG_MAX; }
  __device__ static T store(long long v) { return Num<T>::store(v); }
  __device__ static T storeMean(long long sum, int64_t count) { return Num<T>::fromDouble(double(sum) / double(count)); }
};

// max / min where NaN wins (the comparisons are false for integers' non-NaN values).
template <typename A>
__device__ __forceinline__ A maxNaN(A a, A b) {
  return a != a ? a : (b != b || b > a ? b : a);
}
template <typename A>
__device__ __forceinline__ A minNaN(A a, A b) {
  return a != a ? a : (b != b || b < a ? b : a);
}

// The combine step and identity of an op over accumulators of storage type T.
template <typename T, ReduceOp Op>
struct Reducer {
  using Acc = Accum<T>;
  using A = typename Acc::type;
  __device__ static A identity() {
    if constexpr (Op == ReduceOp::Max) return Acc::lowest();
    else if constexpr (Op == ReduceOp::Min) return Acc::highest();
    else return A(0);
  }
  __device__ static A combine(A a, A b) {
    if constexpr (Op == ReduceOp::Max) return maxNaN(a, b);
    else if constexpr (Op == ReduceOp::Min) return minNaN(a, b);
    else return a + b;
  }
  // The output of a finished reduction of `count` elements.
  __device__ static T finish(A acc, int64_t count) {
    if constexpr (Op == ReduceOp::Mean) return Acc::storeMean(acc, count);
    else return Acc::store(acc);
  }
  // Combines `acc` over groups of `width` consecutive lanes (a power of two <= 32); every
  // lane of the warp must call it.
  __device__ static A groupReduce(A acc, int width) {
    for (int offset = width / 2; offset > 0; offset /= 2) acc = combine(acc, __shfl_xor_sync(0xffffffffu, acc, offset));
    return acc;
  }
};

// Folds elements [0, len) of the dense range at p into acc, `lanes` threads together (this
// one is `lane`): 16-byte packs from the first aligned element on, two per step, and the
// unaligned head and the tail as scalars.
template <typename T, ReduceOp Op>
__device__ __forceinline__ typename Accum<T>::type accumulateRange(const T* p, int64_t len, int lane, int lanes,
                                                                   typename Accum<T>::type acc) {
  using R = Reducer<T, Op>;
  using A = typename Accum<T>::type;
  constexpr int V = vectorWidth<T>();
  const uint64_t phase = (reinterpret_cast<uintptr_t>(p) / sizeof(T)) % V;
  const int64_t head = phase == 0 ? 0 : (len < int64_t(V - phase) ? len : int64_t(V - phase));
  const int64_t packs = (len - head) / V;
  const Pack<T, V>* v = reinterpret_cast<const Pack<T, V>*>(p + head);
  A other = R::identity();  // a second chain, so two loads are in flight
  int64_t i = lane;
  for (; i + lanes < packs; i += 2 * lanes) {
    const Pack<T, V> x0 = v[i], x1 = v[i + lanes];
#pragma unroll
    for (int e = 0; e < V; e++) {
      acc = R::combine(acc, Accum<T>::load(x0.v[e]));
      other = R::combine(other, Accum<T>::load(x1.v[e]));
    }
  }
  if (i < packs) {
    const Pack<T, V> x0 = v[i];
#pragma unroll
    for (int e = 0; e < V; e++) acc = R::combine(acc, Accum<T>::load(x0.v[e]));
  }
  const int64_t tailStart = head + packs * V;
  for (int64_t j = lane; j < head + (len - tailStart); j += lanes) {
    acc = R::combine(acc, Accum<T>::load(p[j < head ? j : tailStart + (j - head)]));
  }
  return R::combine(acc, other);
}

}  // namespace blora
