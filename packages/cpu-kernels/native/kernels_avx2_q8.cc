// AVX2 loops of the int8-activation products (see quant_q8.h), on Int8Rows in chunks of 64.
// Compiled with -mavx2 -mfma and called only after the run-time CPU check.
//
// The 32 code bytes of a chunk give two vectors of 32 nibbles: the high nibbles (the chunk's
// even elements) and the low ones (the odd elements), the two halves the activations were
// stored in. vpmaddubsw multiplies unsigned by signed bytes and adds pairs into 16 bits,
// vpmaddwd adds those pairs into 32-bit lanes; lane L then holds values 8L .. 8L + 7 of the
// chunk, so lanes 0-3 belong to its first 32 values and lanes 4-7 to the second 32. 4-bit codes
// (at most 15) times |q| <= 127 stay far from 16-bit saturation even with both halves added;
// NF4 levels are signed, so their magnitudes are multiplied by q carrying the level's sign
// (at most 2 * 127 * 127 < 2^15 per half, so the halves are added in 32 bits).
#include <immintrin.h>

#include <type_traits>

#include "avx2_util.h"
#include "kernel_util.h"
#include "kernels_avx2_nn.h"

namespace blora {
namespace avx2 {

namespace {

constexpr int64_t kChunk = 64;

/** Block index of each group of 32 values, for blocks of `per` groups (a shift for powers of two). */
struct Groups {
  int64_t per;
  int shift;  // log2(per), or -1

  explicit Groups(int64_t block) : per(block / 32), shift((per & (per - 1)) == 0 ? __builtin_ctzll(per) : -1) {}
  int64_t block(int64_t group) const { return shift >= 0 ? group >> shift : group / per; }
};

/** Lanes 0-3 scaled by the block of the chunk's first 32 values, lanes 4-7 by the second's. */
inline __m256 half_scales(const float* s, const Groups& g, int64_t group) {
  return _mm256_blend_ps(_mm256_set1_ps(s[g.block(group)]), _mm256_set1_ps(s[g.block(group + 1)]), 0xf0);
}

/** The nibbles of the chunk's 32 code bytes: high ones (even elements), then low ones (odd elements). */
inline void split_codes(const uint8_t* codes, int64_t first, __m256i* hi, __m256i* lo) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + (first >> 1)));
  const __m256i mask = _mm256_set1_epi8(15);
  *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
  *lo = _mm256_and_si256(v, mask);
}

inline __m256i row_half(const Int8Rows& x, int i, int64_t c, int half) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + i * x.in + c + half * (kChunk / 2)));
}

/**
 * acc[i] += lanes(i, c) * weight scales * lane scales of row i for every chunk c: load(c)
 * decodes the chunk's weights, scale(c) gives their lane scales.
 */
template <int R, typename Load, typename Lanes, typename Scale>
inline void accumulate(int64_t n, const Int8Rows& x, const Load& load, const Lanes& lanes, const Scale& scale,
                       __m256 acc[R]) {
  const float* lane_scales[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) lane_scales[i] = x.lane_scales + i * (x.in / 8);
  for (int64_t c = 0; c < n; c += kChunk) {
    load(c);
    const __m256 ws = scale(c);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 ls = _mm256_loadu_ps(lane_scales[i] + c / 8);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes(i, c)), _mm256_mul_ps(ws, ls), acc[i]);
    }
  }
}

template <int R>
void int4_fixed(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                int64_t block, const Int8Rows& x, float* dots) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  const Groups groups(block);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i hi = _mm256_setzero_si256(), lo = _mm256_setzero_si256();
  accumulate<R>(
      n, x, [&](int64_t c) { split_codes(codes, start + c, &hi, &lo); },
      [&](int i, int64_t c) {
        const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(hi, row_half(x, i, c, 0)),
                                               _mm256_maddubs_epi16(lo, row_half(x, i, c, 1)));
        return _mm256_madd_epi16(pairs, ones);
      },
      [&](int64_t c) { return half_scales(scales, groups, c / 32); }, acc);
  const int64_t blocks = n / block;
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    // The offsets multiply the block sums of the rounded activations.
    const float* sums = x.block_sums + i * (x.in / block);
    __m256 t = acc[i];
    int64_t b = 0;
    for (; b + 8 <= blocks; b += 8) t = _mm256_fmadd_ps(_mm256_loadu_ps(offsets + b), _mm256_loadu_ps(sums + b), t);
    float tail = 0.0f;
    for (; b < blocks; ++b) tail += offsets[b] * sums[b];
    dots[i] = hsum(t) + tail;
  }
}

template <int R>
void nf4_fixed(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
               const int8_t* levels, const Int8Rows& x, float* dots) {
  const __m128i lv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(levels));
  const __m256i level_lut = _mm256_broadcastsi128_si256(lv);
  const __m256i magnitude_lut = _mm256_broadcastsi128_si256(_mm_abs_epi8(lv));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  const Groups groups(blocksize);
  __m256i magnitude[2], level[2];
  auto load = [&](int64_t c) {
    __m256i code[2];
    split_codes(packed, start + c, &code[0], &code[1]);
    for (int h = 0; h < 2; ++h) {
      magnitude[h] = _mm256_shuffle_epi8(magnitude_lut, code[h]);
      level[h] = _mm256_shuffle_epi8(level_lut, code[h]);
    }
  };
  auto lanes = [&](int i, int64_t c) {
    const __m256i even = _mm256_maddubs_epi16(magnitude[0], _mm256_sign_epi8(row_half(x, i, c, 0), level[0]));
    const __m256i odd = _mm256_maddubs_epi16(magnitude[1], _mm256_sign_epi8(row_half(x, i, c, 1), level[1]));
    return _mm256_add_epi32(_mm256_madd_epi16(even, ones), _mm256_madd_epi16(odd, ones));
  };
  accumulate<R>(n, x, load, lanes, [&](int64_t c) { return half_scales(absmax, groups, (start + c) / 32); }, acc);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(acc[i]);
}

}  // namespace

void int4_dot_q8(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                 int64_t block, const Int8Rows& x, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { int4_fixed<decltype(r)::value>(codes, start, n, scales, offsets, block, x, dots); });
}

void nf4_dot_q8(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                const int8_t* levels, const Int8Rows& x, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { nf4_fixed<decltype(r)::value>(packed, start, n, absmax, blocksize, levels, x, dots); });
}

}  // namespace avx2
}  // namespace blora
