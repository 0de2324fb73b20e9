// Reductions across a warp (shuffles) and across a block (one partial per warp in
// shared memory, then one warp). Every thread of the block gets the result.
#pragma once

namespace blora {

template <typename T, typename Combine>
__device__ __forceinline__ T warpReduce(T v, Combine combine) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// blockDim.x must be a multiple of 32 (at most 1024). `identity` fills unused warp slots.
template <typename T, typename Combine>
__device__ T blockReduce(T v, Combine combine, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warpReduce(v, combine);
  __syncthreads();  // the previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : identity;
  return warpReduce(v, combine);
}

// Threads per block for one row of `cols` elements: a power of two in [32, maxThreads].
inline int rowThreads(int64_t cols, int maxThreads) {
  int t = 32;
  while (t < maxThreads && t < cols) t <<= 1;
  return t;
}

}  // namespace blora
