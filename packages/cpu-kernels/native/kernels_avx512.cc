// AVX-512 inner loops (F, BW, DQ, VL, VNNI). Only this file and kernels_avx512_nn.cc are
// compiled with the AVX-512 flags; the driver only calls into them after the run-time check
// of cpu_has_avx512(). Like the AVX2 units, everything here has internal linkage and no
// standard library code is instantiated. The loops this file and its companions do not
// replace (the memory-bound elementwise and pooling loops) are taken from the AVX2 table.
#include <immintrin.h>

#include "avx2_util.h"
#include "avx512_util.h"
#include "kernels.h"
#include "kernels_avx512_nn.h"

namespace blora {

namespace {

constexpr int kMr = 14;
constexpr int kNr = 32;

using avx512::hsum;
using avx512::hsum4;
using avx512::lanes;
using avx2::transpose8;

// ---------------------------------------------------------------------------------------------
// GEMM micro-kernel: a 14 x 32 tile of C in 28 zmm registers; per depth step two loads of B,
// fourteen broadcasts of A and 28 FMAs (two FMA ports keep 8 of them in flight each cycle, so
// 28 independent accumulators hide the FMA latency with room to spare).

void gemm_micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  // Packed A slivers follow each other: fetch the next one into L1 while this one is used, a
  // step ahead of the hardware prefetcher, which only starts once its first lines miss.
  const float* a_next = a + kc * kMr;
  __m512 lo[kMr], hi[kMr];
#pragma GCC unroll 14
  for (int r = 0; r < kMr; ++r) lo[r] = hi[r] = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int r = 0; r < kMr; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 14
  for (int r = 0; r < kMr; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + kNr - 1), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kNr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a_next), _MM_HINT_T0);
    a_next += kMr;
#pragma GCC unroll 14
    for (int r = 0; r < kMr; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
      hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
    }
    a += kMr;
    b += kNr;
  }
#pragma GCC unroll 14
  for (int r = 0; r < kMr; ++r) {
    float* cr = c + r * ldc;
    __m512 l = lo[r], h = hi[r];
    if (accumulate) {
      l = _mm512_add_ps(l, _mm512_loadu_ps(cr));
      h = _mm512_add_ps(h, _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, l);
    _mm512_storeu_ps(cr + 16, h);
  }
}

// ---------------------------------------------------------------------------------------------
// Packing for the layouts that need a transpose: 8 x 8 blocks transposed in ymm registers.

// dst[p * 14 + r] = src[r * rs + p]: rows 0-7 and 8-13 transposed in two 8 x 8 blocks per
// eight depth steps; the second block's two unused lanes are masked off.
void pack_a_rows(const float* src, int64_t rs, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 top[8], bottom[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) top[r] = _mm256_loadu_ps(src + r * rs + p);
#pragma GCC unroll 6
    for (int r = 0; r < 6; ++r) bottom[r] = _mm256_loadu_ps(src + (8 + r) * rs + p);
    bottom[6] = bottom[7] = _mm256_setzero_ps();
    transpose8(top);
    transpose8(bottom);
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      float* d = dst + (p + q) * kMr;
      _mm256_storeu_ps(d, top[q]);
      _mm256_mask_storeu_ps(d + 8, 0x3f, bottom[q]);
    }
  }
  for (; p < kc; ++p)
    for (int r = 0; r < kMr; ++r) dst[p * kMr + r] = src[r * rs + p];
}

// dst[p * 32 + j] = src[j * cs + p]: four groups of eight columns, 8 x 8 transposes.
void pack_b_cols(const float* src, int64_t cs, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
#pragma GCC unroll 4
    for (int group = 0; group < kNr; group += 8) {
      __m256 v[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_ps(src + (group + j) * cs + p);
      transpose8(v);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * kNr + group, v[q]);
    }
  }
  for (; p < kc; ++p)
    for (int j = 0; j < kNr; ++j) dst[p * kNr + j] = src[j * cs + p];
}

// ---------------------------------------------------------------------------------------------
// Matrix-vector products (memory bound: read the matrix once, in order, a few rows ahead
// prefetched so that the four row streams do not wait on the hardware prefetcher's ramp-up).

template <int R>
inline void dot_rows(int64_t k, const float* m, int64_t ldm, const float* x, float* y) {
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    const __m512 xv = _mm512_loadu_ps(x + p);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(m + r * ldm + p + 4 * ldm), _MM_HINT_T0);
      acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(m + r * ldm + p), xv, acc[r]);
    }
  }
  if (p < k) {
    const __mmask16 mask = lanes(k - p);
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + p);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, m + r * ldm + p), xv, acc[r]);
  }
  if (R == 4) {
    _mm_storeu_ps(y, hsum4(acc[0], acc[1 % R], acc[2 % R], acc[3 % R]));
  } else {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) y[r] = hsum(acc[r]);
  }
}

void gemv_rows(int64_t rows, int64_t k, const float* m, int64_t ldm, const float* x, float* y) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) dot_rows<4>(k, m + i * ldm, ldm, x, y + i);
  for (; i < rows; ++i) dot_rows<1>(k, m + i * ldm, ldm, x, y + i);
}

// Rows of the matrix read per pass: enough to amortise reloading y, few enough that the
// hardware prefetcher can follow every row stream.
constexpr int64_t kGemvColsDepth = 16;

void gemv_cols(int64_t rows, int64_t k, const float* m, int64_t ldk, const float* x, float* y) {
  for (int64_t p0 = 0; p0 < k; p0 += kGemvColsDepth) {
    const int64_t p1 = p0 + kGemvColsDepth < k ? p0 + kGemvColsDepth : k;
    const bool first = p0 == 0;
    int64_t i = 0;
    for (; i + 64 <= rows; i += 64) {
      __m512 a[4];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) a[u] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i + 16 * u);
      for (int64_t p = p0; p < p1; ++p) {
        const float* col = m + p * ldk + i;
        const __m512 xv = _mm512_set1_ps(x[p]);
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) a[u] = _mm512_fmadd_ps(_mm512_loadu_ps(col + 16 * u), xv, a[u]);
      }
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) _mm512_storeu_ps(y + i + 16 * u, a[u]);
    }
    for (; i < rows; i += 16) {
      const __mmask16 mask = lanes(rows - i);
      __m512 a0 = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + i);
      for (int64_t p = p0; p < p1; ++p) {
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, m + p * ldk + i), _mm512_set1_ps(x[p]), a0);
      }
      _mm512_mask_storeu_ps(y + i, mask, a0);
    }
  }
}

// m[i * ldm + j] += alpha[i] * x[j] for i < rows, j < n.
void axpy_rows(int64_t rows, int64_t n, const float* alpha, const float* x, float* m, int64_t ldm) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = m + r * ldm;
    const __m512 a = _mm512_set1_ps(alpha[r]);
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
#pragma GCC unroll 4
      for (int u = 0; u < 64; u += 16) {
        _mm512_storeu_ps(row + j + u, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + j + u), _mm512_loadu_ps(row + j + u)));
      }
    }
    for (; j < n; j += 16) {
      const __mmask16 mask = lanes(n - j);
      const __m512 v = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(mask, x + j), _mm512_maskz_loadu_ps(mask, row + j));
      _mm512_mask_storeu_ps(row + j, mask, v);
    }
  }
}

KernelTable make_table() {
  KernelTable t = kAvx2Kernels;
  t.isa = "avx512";
  t.mr = kMr;
  t.nr = kNr;
  t.mc = 14 * 12;
  t.kc = 256;
  t.gemm_micro = gemm_micro;
  t.pack_a_rows = pack_a_rows;
  t.pack_b_cols = pack_b_cols;
  t.gemv_rows = gemv_rows;
  t.gemv_cols = gemv_cols;
  t.axpy_rows = axpy_rows;
  avx512::fill_quant_loops(&t);
  avx512::fill_exp_loops(&t);
  return t;
}

}  // namespace

const KernelTable& avx512_kernels() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace blora
