// Shape checks and batch addressing shared by the matmul kernels.
#pragma once

#include <string>

#include "common.h"
#include "strided.cuh"

namespace blora {

// a [..., M, K] @ b [..., K, N] -> out [..., M, N], with the batch dims flattened.
struct MatmulShape {
  int M = 0, N = 0, K = 0;
  int64_t batches = 1;
  StridedIndexer<2> batchOffsets;  // batch index -> element offsets of a and b
  int64_t sam = 0, sak = 0;        // strides of a along M and K
  int64_t sbk = 0, sbn = 0;        // strides of b along K and N
};

inline MatmulShape matmulShape(const char* name, const TensorArg& a, const TensorArg& b, const TensorArg& out) {
  const int r = a.rank;
  auto mismatch = [&]() {
    fail(std::string(name) + ": cannot multiply " + a.describe() + " by " + b.describe() + " into " + out.describe());
  };
  if (r < 2 || b.rank != r || out.rank != r) mismatch();
  for (int d = 0; d < r - 2; d++) {
    if (b.shape[d] != a.shape[d] || out.shape[d] != a.shape[d]) mismatch();
  }
  if (b.shape[r - 2] != a.shape[r - 1] || out.shape[r - 2] != a.shape[r - 2] || out.shape[r - 1] != b.shape[r - 1]) mismatch();
  requireDType(name, b, a.dtype, "second input");
  requireDType(name, out, a.dtype, "output");
  requireContiguous(name, out, "output");
  const int64_t limit = int64_t(1) << 31;
  if (a.shape[r - 2] >= limit || a.shape[r - 1] >= limit || b.shape[r - 1] >= limit) {
    fail(std::string(name) + ": matrix dims must be below 2^31, got " + a.describe() + " @ " + b.describe());
  }
  MatmulShape s;
  s.M = int(a.shape[r - 2]);
  s.K = int(a.shape[r - 1]);
  s.N = int(b.shape[r - 1]);
  s.sam = a.strides[r - 2];
  s.sak = a.strides[r - 1];
  s.sbk = b.strides[r - 2];
  s.sbn = b.strides[r - 1];
  for (int d = 0; d < r - 2; d++) s.batches *= a.shape[d];
  const int64_t* strides[2] = {a.strides, b.strides};
  s.batchOffsets = makeIndexer<2>(a.shape, r - 2, strides);
  return s;
}

// True when every batch stride of `t` (dims before the last two, size > 1) is a multiple of `m`.
inline bool batchStridesMultipleOf(const TensorArg& t, int64_t m) {
  for (int d = 0; d < t.rank - 2; d++) {
    if (t.shape[d] > 1 && t.strides[d] % m != 0) return false;
  }
  return true;
}

// Grid of 2-D tiles (x over M, y over N) and batches (z, looped beyond 65535).
inline dim3 matmulGrid(const char* name, const MatmulShape& s, int tileM, int tileN) {
  const int64_t tilesN = (int64_t(s.N) + tileN - 1) / tileN;
  if (tilesN > 65535) fail(std::string(name) + ": N = " + std::to_string(s.N) + " is too large for one launch");
  const int64_t batches = s.batches < 65535 ? s.batches : 65535;
  return dim3(unsigned((int64_t(s.M) + tileM - 1) / tileM), unsigned(tilesN), unsigned(batches));
}

}  // namespace blora
