// Small AVX-512 helpers shared by the translation units compiled with the AVX-512 flags.
// Include this header only from those units: everything here has internal linkage, so no
// AVX-512-compiled copy can be linked into the portable or AVX2 code.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace blora {
namespace avx512 {

/** A mask with lanes [0, count) set, for 0 <= count <= 16. */
static inline __mmask16 lanes(int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xffff : (1u << count) - 1u);
}

/**
 * The low 256 bits. (_mm512_castps512_ps256 would do, but GCC 12 implements it with an
 * "undefined" operand that trips -Wmaybe-uninitialized.)
 */
static inline __m256 low256(__m512 v) { return _mm512_extractf32x8_ps(v, 0); }

static inline float hsum(__m512 v) {
  __m256 s = _mm256_add_ps(low256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

/** The sum of each of four vectors, as lanes 0-3 of the result. */
static inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Fold 512 -> 256 bits, then transpose-and-add the four 256-bit vectors.
  const __m256 a8 = _mm256_add_ps(low256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b8 = _mm256_add_ps(low256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c8 = _mm256_add_ps(low256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d8 = _mm256_add_ps(low256(d), _mm512_extractf32x8_ps(d, 1));
  const __m256 ab = _mm256_hadd_ps(a8, b8);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(c8, d8);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a b c d (low halves) | a b c d (high halves)
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

}  // namespace avx512
}  // namespace blora
