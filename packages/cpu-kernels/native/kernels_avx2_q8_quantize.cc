// AVX2 rounding of activation rows to int8 for the int8-activation products (the Int8Rows
// layout of kernels.h, any chunk that is a multiple of 32). The AVX-512 table uses it too: the
// loop is a few dozen instructions per 32 values, far below the products that follow. Gives
// the same bytes as the portable loop in quant_q8.cc: the same float32 product x * (127 / max),
// rounded to nearest even (vcvtps2dq in the default rounding mode).
#include <immintrin.h>

#include "kernels_avx2_nn.h"

namespace blora {
namespace avx2 {

namespace {

constexpr int64_t kQBlock = 32;
constexpr float kMaxFloat = 3.40282347e38f;

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

}  // namespace

bool quantize_q8_row(const float* x, int64_t in, int64_t chunk, int64_t sum_block, int8_t* q, float* lane_scales,
                     int32_t* lane_bias, float* sums) {
  const __m256 sign = _mm256_set1_ps(-0.0f), largest = _mm256_set1_ps(kMaxFloat);
  // Bytes of 32 values in natural order -> per 128-bit half: its 8 even values, then its 8 odd ones.
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10,
                                         12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i natural = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  double running = 0.0;  // sum of the current weight block so far
  for (int64_t c0 = 0; c0 < in; c0 += chunk) {
    for (int64_t b = 0; b < chunk / kQBlock; ++b) {
      const int64_t first = c0 + b * kQBlock;
      __m256 v[4];
      __m256 amax = _mm256_setzero_ps(), finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
      for (int k = 0; k < 4; ++k) {
        v[k] = _mm256_loadu_ps(x + first + 8 * k);
        const __m256 a = _mm256_andnot_ps(sign, v[k]);
        finite = _mm256_and_ps(finite, _mm256_cmp_ps(a, largest, _CMP_LE_OQ));  // false for NaN and infinities
        amax = _mm256_max_ps(amax, a);
      }
      if (_mm256_movemask_ps(finite) != 0xff) return false;
      const float m = hmax(amax);
      const float scale = m / 127.0f;
      const __m256 inverse = _mm256_set1_ps(m > 0.0f ? 127.0f / m : 0.0f);
      __m256i n[4];
      for (int k = 0; k < 4; ++k) n[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], inverse));
      // |n| <= 127: the saturating packs are exact. Dwords come out as a0-3 b0-3 c0-3 d0-3 | a4-7 ...
      __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(n[0], n[1]), _mm256_packs_epi32(n[2], n[3]));
      bytes = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(bytes, natural), split);
      // Quadwords: evens 0-14, evens 16-30, odds 1-15, odds 17-31.
      bytes = _mm256_permute4x64_epi64(bytes, 0xd8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c0 + 16 * b), _mm256_castsi256_si128(bytes));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c0 + chunk / 2 + 16 * b), _mm256_extracti128_si256(bytes, 1));
      // Lane sums: each n[k] is one lane (8 values) of the block.
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(n[0], n[1]), _mm256_hadd_epi32(n[2], n[3]));
      const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(lane_bias + first / 8), _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(s, 7)));
      _mm_storeu_ps(lane_scales + first / 8, _mm_set1_ps(scale));
      if (sum_block > 0) {
        const __m128i s2 = _mm_hadd_epi32(s, s);
        const int32_t qsum = _mm_cvtsi128_si32(_mm_hadd_epi32(s2, s2));
        running += static_cast<double>(scale) * qsum;
        const int64_t end = first + kQBlock;
        if (end % sum_block == 0) {
          sums[end / sum_block - 1] = static_cast<float>(running);
          running = 0.0;
        }
      }
    }
  }
  return true;
}

}  // namespace avx2
}  // namespace blora
