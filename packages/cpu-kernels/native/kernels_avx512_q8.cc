// AVX-512 VNNI loops of the int8-activation products (see quant_q8.h), on Int8Rows in chunks
// of 128. Compiled with the AVX-512 flags and called only after the run-time CPU check.
//
// The 64 code bytes of a chunk give two vectors of 64 nibbles: the high nibbles (the chunk's
// even elements) and the low ones (the odd elements), the two halves the activations were
// stored in. vpdpbusd multiplies unsigned by signed bytes and adds each group of four into a
// 32-bit lane without saturation; both halves go into the same lanes, so lane L holds values
// 8L .. 8L + 7 of the chunk and lanes 4j .. 4j + 3 belong to its j-th group of 32 values (one
// weight scale each). NF4 levels are signed: the lookup returns level + 128, and each lane
// starts from -128 times the sum of its eight activations, which cancels the added 128.
#include "kernels_avx512_q8.h"

#include <immintrin.h>

#include <type_traits>

#include "avx512_util.h"

namespace blora {
namespace avx512 {

namespace {

constexpr int64_t kChunk = 128;

/** The weight scales of the chunk whose first group of 32 values is `group`, spread to its lanes. */
struct GroupScales {
  int64_t per;  // groups of 32 values per block
  int shift;    // log2(per), or -1

  explicit GroupScales(int64_t block)
      : per(block / 32), shift((per & (per - 1)) == 0 ? __builtin_ctzll(per) : -1) {}

  int64_t block(int64_t group) const { return shift >= 0 ? group >> shift : group / per; }

  __m512 operator()(const float* s, int64_t group) const {
    const __m512i quarters = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    if (per == 1) return _mm512_permutexvar_ps(quarters, _mm512_zextps128_ps512(_mm_loadu_ps(s + group)));
    if (per == 2) {
      // Chunks start at multiples of 128 values, so the chunk holds two whole blocks.
      const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
      const __m128 two = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s + (group >> 1))));
      return _mm512_permutexvar_ps(halves, _mm512_zextps128_ps512(two));
    }
    if (shift >= 2) return _mm512_set1_ps(s[group >> shift]);  // the chunk lies in one block
    const __m128 four = _mm_setr_ps(s[block(group)], s[block(group + 1)], s[block(group + 2)], s[block(group + 3)]);
    return _mm512_permutexvar_ps(quarters, _mm512_zextps128_ps512(four));
  }
};

/** The nibbles of the chunk's 64 code bytes: high ones (even elements), then low ones (odd elements). */
inline void split_codes(const uint8_t* codes, int64_t first, __m512i* hi, __m512i* lo) {
  const __m512i v = _mm512_loadu_si512(codes + (first >> 1));
  const __m512i mask = _mm512_set1_epi8(15);
  *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
  *lo = _mm512_and_si512(v, mask);
}

/**
 * acc[i] += lanes(i, c) * weight scales * lane scales of row i for every chunk c: load(c)
 * decodes the chunk's weights, scale(c) gives their lane scales.
 */
template <int R, typename Load, typename Lanes, typename Scale>
inline void accumulate(int64_t n, const Int8Rows& x, const Load& load, const Lanes& lanes, const Scale& scale,
                       __m512 acc[R]) {
  const float* lane_scales[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) lane_scales[i] = x.lane_scales + i * (x.in / 8);
  for (int64_t c = 0; c < n; c += kChunk) {
    load(c);
    const __m512 ws = scale(c);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 ls = _mm512_loadu_ps(lane_scales[i] + c / 8);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes(i, c)), _mm512_mul_ps(ws, ls), acc[i]);
    }
  }
}

/** Row i's products with the chunk's two halves of weight bytes, added into `start` lanes. */
inline __m512i chunk_lanes(const Int8Rows& x, int i, int64_t c, __m512i start, __m512i even, __m512i odd) {
  const int8_t* q = x.q + i * x.in + c;
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, even, _mm512_loadu_si512(q)), odd,
                             _mm512_loadu_si512(q + kChunk / 2));
}

template <int R>
void int4_fixed(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                int64_t block, const Int8Rows& x, float* dots) {
  __m512 acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  const GroupScales group_scales(block);
  __m512i hi = _mm512_setzero_si512(), lo = _mm512_setzero_si512();
  accumulate<R>(
      n, x, [&](int64_t c) { split_codes(codes, start + c, &hi, &lo); },
      [&](int i, int64_t c) { return chunk_lanes(x, i, c, _mm512_setzero_si512(), hi, lo); },
      [&](int64_t c) { return group_scales(scales, c / 32); }, acc);
  const int64_t blocks = n / block;
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    // The offsets multiply the block sums of the rounded activations.
    const float* sums = x.block_sums + i * (x.in / block);
    __m512 t = acc[i];
    for (int64_t b = 0; b < blocks; b += 16) {
      const __mmask16 m = lanes(blocks - b);
      t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, offsets + b), _mm512_maskz_loadu_ps(m, sums + b), t);
    }
    dots[i] = hsum(t);
  }
}

template <int R>
void nf4_fixed(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
               const int8_t* levels, const Int8Rows& x, float* dots) {
  // level + 128 for each code, in every 128-bit lane (vpshufb looks up within lanes).
  alignas(64) uint8_t biased[64];
  for (int j = 0; j < 64; ++j) biased[j] = static_cast<uint8_t>(levels[j & 15] + 128);
  const __m512i lut = _mm512_load_si512(biased);
  __m512 acc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  const GroupScales group_scales(blocksize);
  __m512i hi = _mm512_setzero_si512(), lo = _mm512_setzero_si512();
  auto load = [&](int64_t c) {
    split_codes(packed, start + c, &hi, &lo);
    hi = _mm512_shuffle_epi8(lut, hi);
    lo = _mm512_shuffle_epi8(lut, lo);
  };
  auto chunk = [&](int i, int64_t c) {
    const __m512i bias = _mm512_loadu_si512(x.lane_bias + i * (x.in / 8) + c / 8);
    return chunk_lanes(x, i, c, bias, hi, lo);
  };
  accumulate<R>(n, x, load, chunk, [&](int64_t c) { return group_scales(absmax, (start + c) / 32); }, acc);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(acc[i]);
}

template <typename Fn>
inline void with_rows(int64_t rows, const Fn& fn) {
  switch (rows) {
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    case 3: return fn(std::integral_constant<int, 3>());
    case 4: return fn(std::integral_constant<int, 4>());
    case 5: return fn(std::integral_constant<int, 5>());
    case 6: return fn(std::integral_constant<int, 6>());
    case 7: return fn(std::integral_constant<int, 7>());
    case 8: return fn(std::integral_constant<int, 8>());
    default: return;
  }
}

void int4_dot_q8(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                 int64_t block, const Int8Rows& x, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { int4_fixed<decltype(r)::value>(codes, start, n, scales, offsets, block, x, dots); });
}

void nf4_dot_q8(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                const int8_t* levels, const Int8Rows& x, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { nf4_fixed<decltype(r)::value>(packed, start, n, absmax, blocksize, levels, x, dots); });
}

}  // namespace

void fill_q8_loops(KernelTable* table) {
  table->q8_chunk = static_cast<int>(kChunk);
  table->int4_dot_q8 = int4_dot_q8;
  table->nf4_dot_q8 = nf4_dot_q8;
}

}  // namespace avx512
}  // namespace blora
