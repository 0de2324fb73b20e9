// Strided element addressing for elementwise kernels. A kernel walks a linear
// (row-major) index over the output shape; the indexer turns it into one storage
// offset per input, from that input's strides (stride 0 = broadcast).
//
// On the host the dims are first simplified: size-1 dims are dropped and neighbouring
// dims that are laid out back to back in every operand are merged, so a dense tensor
// becomes rank 1 and needs no division at all.
#pragma once

#include <cstdint>

#include "common.h"

namespace blora {

// Division by a fixed divisor with a multiply and a shift (valid for n, d < 2^31).
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t multiplier = 1;
  uint32_t shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    while ((uint64_t(1) << shift) < d) shift++;
    multiplier = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }

  __device__ __forceinline__ void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = (__umulhi(n, multiplier) + n) >> shift;
    r = n - q * divisor;
  }
};

// Maps a linear index to the storage offsets (in elements) of N operands.
template <int N>
struct StridedIndexer {
  int rank = 0;         // after simplification; dims are stored innermost first
  bool small = true;    // every linear index fits 31 bits: use FastDivmod
  int64_t size[kMaxRank] = {};
  FastDivmod div[kMaxRank];
  int64_t stride[N][kMaxRank] = {};

  __device__ __forceinline__ void offsets(int64_t linear, int64_t (&out)[N]) const {
#pragma unroll
    for (int a = 0; a < N; a++) out[a] = 0;
    if (rank == 1) {  // dense or a single strided dim: the common case
#pragma unroll
      for (int a = 0; a < N; a++) out[a] = linear * stride[a][0];
      return;
    }
    if (small) {
      uint32_t rest = uint32_t(linear);
#pragma unroll
      for (int d = 0; d < kMaxRank; d++) {
        if (d == rank) break;
        uint32_t q, idx;
        div[d].divmod(rest, q, idx);
        rest = q;
#pragma unroll
        for (int a = 0; a < N; a++) out[a] += int64_t(idx) * stride[a][d];
      }
    } else {
      int64_t rest = linear;
#pragma unroll
      for (int d = 0; d < kMaxRank; d++) {
        if (d == rank) break;
        const int64_t idx = rest % size[d];
        rest /= size[d];
#pragma unroll
        for (int a = 0; a < N; a++) out[a] += idx * stride[a][d];
      }
    }
  }
};

// Builds the indexer of operands that all have `shape` (rank `rank`), each with its strides.
template <int N>
StridedIndexer<N> makeIndexer(const int64_t* shape, int rank, const int64_t* const (&strides)[N]) {
  StridedIndexer<N> ix;
  int64_t total = 1;
  for (int d = rank - 1; d >= 0; d--) {
    const int64_t n = shape[d];
    total *= n;
    if (n == 1) continue;
    if (ix.rank > 0) {
      bool mergeable = true;
      for (int a = 0; a < N; a++) {
        if (strides[a][d] != ix.stride[a][ix.rank - 1] * ix.size[ix.rank - 1]) mergeable = false;
      }
      if (mergeable) {
        ix.size[ix.rank - 1] *= n;
        continue;
      }
    }
    ix.size[ix.rank] = n;
    for (int a = 0; a < N; a++) ix.stride[a][ix.rank] = strides[a][d];
    ix.rank++;
  }
  ix.small = total < (int64_t(1) << 31);
  for (int d = 0; d < ix.rank; d++) ix.div[d] = FastDivmod(ix.small ? uint32_t(ix.size[d]) : 1u);
  return ix;
}

}  // namespace blora
