// AVX2 + FMA inner loops. Only this file and kernels_avx2_nn.cc are compiled with -mavx2 -mfma;
// the driver only calls into them after a run-time CPU check. Everything here has internal
// linkage and no standard library code is instantiated, so no AVX2-compiled copy of a shared
// inline function can replace the portable one at link time.
#include <immintrin.h>

#include "avx2_util.h"
#include "kernels.h"
#include "kernels_avx2_nn.h"

namespace blora {

namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;

using avx2::hmax;
using avx2::hsum;
using avx2::hsum_pd;
using avx2::tail_mask;
using avx2::transpose8;

// ---------------------------------------------------------------------------------------------
// GEMM micro-kernel: a 6 x 16 tile of C in 12 registers; per depth step two loads of B,
// six broadcasts of A and twelve FMAs.

void gemm_micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int r = 0; r < kMr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + kNr - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMr;
    b += kNr;
  }
  const __m256 rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int r = 0; r < kMr; ++r) {
    float* cr = c + r * ldc;
    __m256 lo = rows[r][0], hi = rows[r][1];
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(cr));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, lo);
    _mm256_storeu_ps(cr + 8, hi);
  }
}

// ---------------------------------------------------------------------------------------------
// Packing for the layouts that need a transpose: 8 x 8 blocks transposed in registers.

void pack_a_rows(const float* src, int64_t rs, int64_t kc, float* dst) {
  const __m256i six = tail_mask(kMr);
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 v[8];
    for (int r = 0; r < kMr; ++r) v[r] = _mm256_loadu_ps(src + r * rs + p);
    v[6] = v[7] = _mm256_setzero_ps();
    transpose8(v);
    // Each store writes 8 values; the 2 beyond this depth step are overwritten by the next one.
    for (int q = 0; q < 8; ++q) {
      float* d = dst + (p + q) * kMr;
      if (p + q + 1 < kc) _mm256_storeu_ps(d, v[q]);
      else _mm256_maskstore_ps(d, six, v[q]);
    }
  }
  for (; p < kc; ++p)
    for (int r = 0; r < kMr; ++r) dst[p * kMr + r] = src[r * rs + p];
}

void pack_b_cols(const float* src, int64_t cs, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    for (int half = 0; half < kNr; half += 8) {
      __m256 v[8];
      for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_ps(src + (half + j) * cs + p);
      transpose8(v);
      for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * kNr + half, v[q]);
    }
  }
  for (; p < kc; ++p)
    for (int j = 0; j < kNr; ++j) dst[p * kNr + j] = src[j * cs + p];
}

// ---------------------------------------------------------------------------------------------
// Matrix-vector products (memory bound: read the matrix once, in order).

void gemv_rows(int64_t rows, int64_t k, const float* m, int64_t ldm, const float* x, float* y) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    const float* r0 = m + i * ldm;
    const float* r1 = r0 + ldm;
    const float* r2 = r1 + ldm;
    const float* r3 = r2 + ldm;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + p), x0, a0);
      b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + p + 8), x1, b0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + p), x0, a1);
      b1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + p + 8), x1, b1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + p), x0, a2);
      b2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + p + 8), x1, b2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + p), x0, a3);
      b3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + p + 8), x1, b3);
    }
    if (p < k) {
      // Up to two masked steps cover the last 1..15 values.
      for (; p < k; p += 8) {
        const __m256i mask = tail_mask(k - p < 8 ? k - p : 8);
        const __m256 xv = _mm256_maskload_ps(x + p, mask);
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r0 + p, mask), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_maskload_ps(r1 + p, mask), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_maskload_ps(r2 + p, mask), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_maskload_ps(r3 + p, mask), xv, a3);
      }
    }
    y[i] = hsum(_mm256_add_ps(a0, b0));
    y[i + 1] = hsum(_mm256_add_ps(a1, b1));
    y[i + 2] = hsum(_mm256_add_ps(a2, b2));
    y[i + 3] = hsum(_mm256_add_ps(a3, b3));
  }
  for (; i < rows; ++i) {
    const float* r0 = m + i * ldm;
    __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + p), _mm256_loadu_ps(x + p), a0);
      b0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + p + 8), _mm256_loadu_ps(x + p + 8), b0);
    }
    for (; p < k; p += 8) {
      const __m256i mask = tail_mask(k - p < 8 ? k - p : 8);
      a0 = _mm256_fmadd_ps(_mm256_maskload_ps(r0 + p, mask), _mm256_maskload_ps(x + p, mask), a0);
    }
    y[i] = hsum(_mm256_add_ps(a0, b0));
  }
}

// Rows of the matrix read per pass: enough to amortise reloading y, few enough that the
// hardware prefetcher can follow every row stream.
constexpr int64_t kGemvColsDepth = 16;

void gemv_cols(int64_t rows, int64_t k, const float* m, int64_t ldk, const float* x, float* y) {
  for (int64_t p0 = 0; p0 < k; p0 += kGemvColsDepth) {
    const int64_t p1 = p0 + kGemvColsDepth < k ? p0 + kGemvColsDepth : k;
    const bool first = p0 == 0;
    int64_t i = 0;
    for (; i + 32 <= rows; i += 32) {
      __m256 a0 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i);
      __m256 a1 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i + 8);
      __m256 a2 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i + 16);
      __m256 a3 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + i + 24);
      for (int64_t p = p0; p < p1; ++p) {
        const float* col = m + p * ldk + i;
        const __m256 xv = _mm256_broadcast_ss(x + p);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(col), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(col + 8), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(col + 16), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(col + 24), xv, a3);
      }
      _mm256_storeu_ps(y + i, a0);
      _mm256_storeu_ps(y + i + 8, a1);
      _mm256_storeu_ps(y + i + 16, a2);
      _mm256_storeu_ps(y + i + 24, a3);
    }
    for (; i < rows; i += 8) {
      const __m256i mask = tail_mask(rows - i < 8 ? rows - i : 8);
      __m256 a0 = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + i, mask);
      for (int64_t p = p0; p < p1; ++p) {
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(m + p * ldk + i, mask), _mm256_broadcast_ss(x + p), a0);
      }
      _mm256_maskstore_ps(y + i, mask, a0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise binary ops.

struct Add {
  static __m256 v(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
  static float s(float a, float b) { return a + b; }
};
struct Sub {
  static __m256 v(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
  static float s(float a, float b) { return a - b; }
};
struct Mul {
  static __m256 v(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
  static float s(float a, float b) { return a * b; }
};
struct Div {
  static __m256 v(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }
  static float s(float a, float b) { return a / b; }
};

// X and Y say whether each operand advances (dense) or stays (broadcast scalar).
template <typename Op, bool X, bool Y>
void binary_loop(const float* x, const float* y, float* out, int64_t n) {
  const __m256 xs = _mm256_broadcast_ss(x), ys = _mm256_broadcast_ss(y);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int u = 0; u < 32; u += 8) {
      const __m256 a = X ? _mm256_loadu_ps(x + i + u) : xs;
      const __m256 b = Y ? _mm256_loadu_ps(y + i + u) : ys;
      _mm256_storeu_ps(out + i + u, Op::v(a, b));
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a = X ? _mm256_loadu_ps(x + i) : xs;
    const __m256 b = Y ? _mm256_loadu_ps(y + i) : ys;
    _mm256_storeu_ps(out + i, Op::v(a, b));
  }
  for (; i < n; ++i) out[i] = Op::s(X ? x[i] : x[0], Y ? y[i] : y[0]);
}

template <typename Op>
void binary_op(const float* x, int64_t xs, const float* y, int64_t ys, float* out, int64_t n) {
  if (xs && ys) binary_loop<Op, true, true>(x, y, out, n);
  else if (xs) binary_loop<Op, true, false>(x, y, out, n);
  else if (ys) binary_loop<Op, false, true>(x, y, out, n);
  else binary_loop<Op, false, false>(x, y, out, n);
}

void binary(BinaryOp op, const float* x, int64_t xs, const float* y, int64_t ys, float* out, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return binary_op<Add>(x, xs, y, ys, out, n);
    case BinaryOp::Sub: return binary_op<Sub>(x, xs, y, ys, out, n);
    case BinaryOp::Mul: return binary_op<Mul>(x, xs, y, ys, out, n);
    case BinaryOp::Div: return binary_op<Div>(x, xs, y, ys, out, n);
  }
}

// ---------------------------------------------------------------------------------------------
// exp(x) for 8 lanes, at most 1.02 ulp from the exact value for every float input (checked
// exhaustively against a double-precision exp):
// x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts so n * ln2_hi is exact),
// e^r from a degree-6 polynomial fitted for minimal relative error on that interval,
// then a scale by 2^n applied as two factors so results near overflow and underflow
// (including subnormals) are rounded once. NaN propagates, -inf gives 0, +inf gives +inf.

inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-104.0f);  // e^-104 rounds to 0
  const __m256 hi = _mm256_set1_ps(89.0f);    // e^89 rounds to +inf
  // min/max return their second operand when either is NaN, so NaN passes through.
  x = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606820309417232e-6f), r);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.3814611593261361e-3f), r, _mm256_set1_ps(8.368710055947304e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.166838899254799e-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.666652113199234e-1f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.999999403953552e-1f));
  const __m256 p = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

void exp_loop(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, exp8(_mm256_loadu_ps(src + i)));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(dst + i, mask, exp8(_mm256_maskload_ps(src + i, mask)));
  }
}

// ---------------------------------------------------------------------------------------------
// sigmoid and silu from one exp of a non-positive argument (so it never overflows):
// with e = e^-|x|, sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below. silu multiplies
// by x, except at -inf, whose limit is -0 (the product would be -inf * 0 = NaN). Below
// x = -87 e is a subnormal, so silu there (under 1e-36) is only accurate to |x| subnormal steps.

template <bool Silu>
inline __m256 activation8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 e = exp8(_mm256_or_ps(x, sign));  // e^-|x|; NaN stays NaN
  const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 numerator = _mm256_blendv_ps(_mm256_set1_ps(1.0f), e, negative);
  const __m256 s = _mm256_div_ps(numerator, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
  if (!Silu) return s;
  const __m256 minus_inf = _mm256_cmp_ps(x, _mm256_set1_ps(-__builtin_inff()), _CMP_EQ_OQ);
  return _mm256_blendv_ps(_mm256_mul_ps(x, s), sign, minus_inf);
}

template <bool Silu>
void activation_loop(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, activation8<Silu>(_mm256_loadu_ps(src + i)));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(dst + i, mask, activation8<Silu>(_mm256_maskload_ps(src + i, mask)));
  }
}

void activation(ActivationOp op, const float* src, float* dst, int64_t n) {
  if (op == ActivationOp::Silu) activation_loop<true>(src, dst, n);
  else activation_loop<false>(src, dst, n);
}

// ---------------------------------------------------------------------------------------------
// Softmax over contiguous rows: max, exp and sum, normalise. A NaN anywhere in a row makes
// its sum NaN and so the whole row NaN, as in the reference implementation.

void softmax_rows(const float* src, float* dst, int64_t rows, int64_t n, bool log) {
  const int64_t full = n & ~int64_t{7};
  const __m256i mask = tail_mask(n - full);
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  for (int64_t r = 0; r < rows; ++r, src += n, dst += n) {
    __m256 vmax = neg_inf;
    for (int64_t j = 0; j < full; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(src + j));
    if (full < n) {
      const __m256 t = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(src + full, mask), _mm256_castsi256_ps(mask));
      vmax = _mm256_max_ps(vmax, t);
    }
    const __m256 m = _mm256_set1_ps(hmax(vmax));
    // The sum is kept in double: log-softmax of the largest element is -log(1 + small), and
    // float32 would round the small part away.
    __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j < full; j += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(src + j), m));
      if (!log) _mm256_storeu_ps(dst + j, e);
      sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (full < n) {
      const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(src + full, mask), m)),
                                     _mm256_castsi256_ps(mask));
      if (!log) _mm256_maskstore_ps(dst + full, mask, e);
      sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    const double s = hsum_pd(_mm256_add_pd(sum0, sum1));
    if (log) {
      const __m256 ls = _mm256_set1_ps(static_cast<float>(__builtin_log(s)));
      for (j = 0; j < full; j += 8) {
        _mm256_storeu_ps(dst + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(src + j), m), ls));
      }
      if (full < n) {
        const __m256 v = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(src + full, mask), m), ls);
        _mm256_maskstore_ps(dst + full, mask, v);
      }
    } else {
      const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / s));
      for (j = 0; j < full; j += 8) _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_loadu_ps(dst + j), inv));
      if (full < n) _mm256_maskstore_ps(dst + full, mask, _mm256_mul_ps(_mm256_maskload_ps(dst + full, mask), inv));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mean of each run of k values, summed in double (exact for the sums that occur in practice,
// so the mean of k equal values is that value) and divided once.

void avg_pool(const float* src, float* dst, int64_t outputs, int64_t k) {
  const double kd = static_cast<double>(k);
  if (k < 8) {
    // Short runs (the usual kernels of 2 or 4): no vectors to set up and reduce per output.
    for (int64_t o = 0; o < outputs; ++o, src += k) {
      double s = 0.0;
      for (int64_t j = 0; j < k; ++j) s += src[j];
      dst[o] = static_cast<float>(s / kd);
    }
    return;
  }
  const int64_t full = k & ~int64_t{7};
  for (int64_t o = 0; o < outputs; ++o, src += k) {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < full; j += 8) {
      const __m256 v = _mm256_loadu_ps(src + j);
      lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double s = hsum_pd(_mm256_add_pd(lo, hi));
    for (int64_t j = full; j < k; ++j) s += src[j];
    dst[o] = static_cast<float>(s / kd);
  }
}

}  // namespace

const KernelTable kAvx2Kernels = {
    "avx2+fma", kMr, kNr, /*mc=*/144, /*kc=*/256,
    gemm_micro, pack_a_rows, pack_b_cols, gemv_rows, gemv_cols, binary, softmax_rows, avg_pool, exp_loop, activation,
    avx2::decode_nf4, avx2::decode_int, avx2::axpy_rows, avx2::nf4_dot, avx2::nf4_axpy, avx2::int_dot,
    avx2::int_axpy, /*nf4_dot_split=*/nullptr, /*int4_dot_split=*/nullptr, /*q8_chunk=*/64, avx2::int4_dot_q8,
    avx2::nf4_dot_q8, avx2::quantize_q8_row, /*q8_tile=*/0, /*int4_tile_q8=*/nullptr, /*nf4_tile_q8=*/nullptr,
};

}  // namespace blora
