// AVX-512 loops built on exp: exp itself, softmax / log-softmax over rows, sigmoid and silu.
// Compiled with the AVX-512 flags and called only after the run-time CPU check. They are the
// AVX2 loops (kernels_avx2.cc) on sixteen lanes: the same range reduction, polynomial and
// scaling in the same order, so exp gives bit for bit the AVX2 results (at most 1.02 ulp from
// the exact value); softmax sums in double as there, in a different order of additions.
#include "kernels_avx512_nn.h"

#include <immintrin.h>

#include "avx512_util.h"

namespace blora {
namespace avx512 {

namespace {

// exp(x) for 16 lanes; see exp8 in kernels_avx2.cc for the method and its accuracy.
inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-104.0f);  // e^-104 rounds to 0
  const __m512 hi = _mm512_set1_ps(89.0f);    // e^89 rounds to +inf
  // min/max return their second operand when either is NaN, so NaN passes through.
  x = _mm512_max_ps(lo, _mm512_min_ps(hi, x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606820309417232e-6f), r);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(1.3814611593261361e-3f), r, _mm512_set1_ps(8.368710055947304e-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.166838899254799e-2f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.666652113199234e-1f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.999999403953552e-1f));
  const __m512 p = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i ni = _mm512_cvtps_epi32(n);
  const __m512i n1 = _mm512_srai_epi32(ni, 1);
  const __m512i n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  return _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
}

void exp_loop(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, exp16(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, exp16(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

// sigmoid and silu from one exp of -|x|; see activation8 in kernels_avx2.cc.
template <bool Silu>
inline __m512 activation16(__m512 x) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 e = exp16(_mm512_or_ps(x, sign));  // e^-|x|; NaN stays NaN
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 numerator = _mm512_mask_blend_ps(negative, _mm512_set1_ps(1.0f), e);
  const __m512 s = _mm512_div_ps(numerator, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  if (!Silu) return s;
  const __mmask16 minus_inf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-__builtin_inff()), _CMP_EQ_OQ);
  return _mm512_mask_blend_ps(minus_inf, _mm512_mul_ps(x, s), sign);
}

template <bool Silu>
void activation_loop(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, activation16<Silu>(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, activation16<Silu>(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

void activation(ActivationOp op, const float* src, float* dst, int64_t n) {
  if (op == ActivationOp::Silu) activation_loop<true>(src, dst, n);
  else activation_loop<false>(src, dst, n);
}

/** Adds the 16 lanes of e (as doubles) into two running double vectors. */
inline void add_pd(__m512 e, __m512d* s0, __m512d* s1) {
  *s0 = _mm512_add_pd(*s0, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 0)));
  *s1 = _mm512_add_pd(*s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
}

// Softmax over contiguous rows: max, exp and sum (in double, see kernels_avx2.cc), normalise.
// A NaN anywhere in a row makes its sum NaN and so the whole row NaN.
void softmax_rows(const float* src, float* dst, int64_t rows, int64_t n, bool log) {
  const int64_t full = n & ~int64_t{15};
  const __mmask16 tail = lanes(n - full);
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int64_t r = 0; r < rows; ++r, src += n, dst += n) {
    __m512 vmax = neg_inf;
    for (int64_t j = 0; j < full; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(src + j));
    if (full < n) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(neg_inf, tail, src + full));
    // (A NaN need not survive the max: exp of it makes the sum, and so the row, NaN.)
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512d sum0 = _mm512_setzero_pd(), sum1 = _mm512_setzero_pd();
    for (int64_t j = 0; j < full; j += 16) {
      const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(src + j), mv));
      if (!log) _mm512_storeu_ps(dst + j, e);
      add_pd(e, &sum0, &sum1);
    }
    if (full < n) {
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, src + full), mv));
      const __m512 kept = _mm512_maskz_mov_ps(tail, e);
      if (!log) _mm512_mask_storeu_ps(dst + full, tail, e);
      add_pd(kept, &sum0, &sum1);
    }
    const double s = _mm512_reduce_add_pd(_mm512_add_pd(sum0, sum1));
    if (log) {
      const __m512 ls = _mm512_set1_ps(static_cast<float>(__builtin_log(s)));
      for (int64_t j = 0; j < full; j += 16) {
        _mm512_storeu_ps(dst + j, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(src + j), mv), ls));
      }
      if (full < n) {
        const __m512 v = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, src + full), mv), ls);
        _mm512_mask_storeu_ps(dst + full, tail, v);
      }
    } else {
      const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / s));
      for (int64_t j = 0; j < full; j += 16) _mm512_storeu_ps(dst + j, _mm512_mul_ps(_mm512_loadu_ps(dst + j), inv));
      if (full < n) {
        _mm512_mask_storeu_ps(dst + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, dst + full), inv));
      }
    }
  }
}

}  // namespace

void fill_exp_loops(KernelTable* table) {
  table->exp = exp_loop;
  table->activation = activation;
  table->softmax_rows = softmax_rows;
}

}  // namespace avx512
}  // namespace blora
