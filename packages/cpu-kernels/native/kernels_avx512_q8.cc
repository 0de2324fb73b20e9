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
//
// Each call computes a tile of up to 4 weight rows by up to 4 activation rows: a chunk of a
// weight row is decoded once for all the activation rows, and a chunk of an activation row is
// loaded once for all the weight rows (from L1; the caller keeps the tile's rows there), which
// also gives the out-of-order core up to 16 independent accumulators to overlap the loads of
// the weight stream with. Rows of a tile are `ld` values apart; the next tile follows it.
// Whole tiles of one activation row (the matrix-vector product) take a leaner loop of their own.
#include "kernels_avx512_q8.h"

#include <immintrin.h>

#include <type_traits>

#include "avx512_util.h"

namespace blora {
namespace avx512 {

namespace {

constexpr int64_t kChunk = 128;
constexpr int kMaxTile = 4;

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

/**
 * The nibbles of the chunk's 64 code bytes: high ones (even elements), then low ones (odd
 * elements). The same bytes of the next tile's weight row (`ahead` bytes on) are fetched into
 * L1 meanwhile: the weight streams from the last-level cache, and the hardware prefetchers
 * alone leave the loads waiting on it, worst at the start of each row.
 */
inline void split_codes(const uint8_t* codes, int64_t first, int64_t ahead, __m512i mask, __m512i* hi, __m512i* lo) {
  const uint8_t* p = codes + (first >> 1);
  _mm_prefetch(reinterpret_cast<const char*>(p) + ahead, _MM_HINT_T0);
  const __m512i v = _mm512_loadu_si512(p);
  *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
  *lo = _mm512_and_si512(v, mask);
}

/**
 * acc[i][w] += products of activation row i with weight row w, times the weight scales and
 * the lane scales of row i, for every chunk: decode(w, c, &hi, &lo) gives weight row w's bytes
 * of chunk c, scale(w, c) their scales, start(i, c) the lanes' starting values.
 */
template <int W, int X, typename Decode, typename Scale, typename Start>
inline void accumulate(int64_t n, const Int8Rows& x, const Decode& decode, const Scale& scale, const Start& start,
                       __m512 (&acc)[X][W]) {
  for (int64_t c = 0; c < n; c += kChunk) {
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) {
      __m512i hi, lo;
      decode(w, c, &hi, &lo);
      const __m512 ws = scale(w, c);
#pragma GCC unroll 4
      for (int i = 0; i < X; ++i) {
        const int8_t* q = x.q + i * x.in + c;
        const __m512i dots = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start(i, c), hi, _mm512_loadu_si512(q)), lo,
                                                 _mm512_loadu_si512(q + kChunk / 2));
        const __m512 ls = _mm512_loadu_ps(x.lane_scales + i * (x.in / 8) + c / 8);
        acc[i][w] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(ws, ls), acc[i][w]);
      }
    }
  }
}

/** dots[i * W + w] = the sum of acc[i][w]. */
template <int W, int X>
inline void store_sums(__m512 (&acc)[X][W], float* dots) {
#pragma GCC unroll 4
  for (int i = 0; i < X; ++i) {
    if constexpr (W == 4) {
      _mm_storeu_ps(dots + i * W, hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
    } else {
#pragma GCC unroll 4
      for (int w = 0; w < W; ++w) dots[i * W + w] = hsum(acc[i][w]);
    }
  }
}

template <int W, int X>
void int4_fixed(const uint8_t* codes, int64_t start, int64_t ld, int64_t n, const float* const* scales,
                const float* const* offsets, int64_t block, const Int8Rows& x, float* dots) {
  __m512 acc[X][W];
#pragma GCC unroll 4
  for (int i = 0; i < X; ++i)
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) acc[i][w] = _mm512_setzero_ps();
  const GroupScales group_scales(block);
  const __m512i mask = _mm512_set1_epi8(15);
  accumulate<W, X>(
      n, x, [&](int w, int64_t c, __m512i* hi, __m512i* lo) { split_codes(codes, start + w * ld + c, W * ld / 2, mask, hi, lo); },
      [&](int w, int64_t c) {
        // The parameter rows stream too (two floats per 32 weights at blocks of 32): fetch the
        // scales two lines ahead, and the offsets, read only after the loop, as it passes them.
        const int64_t b = group_scales.block(c / 32);
        _mm_prefetch(reinterpret_cast<const char*>(scales[w] + b + 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(offsets[w] + b), _MM_HINT_T0);
        return group_scales(scales[w], c / 32);
      },
      [](int, int64_t) { return _mm512_setzero_si512(); }, acc);
  // The offsets multiply the block sums of the rounded activations.
  const int64_t blocks = n / block;
  for (int64_t b = 0; b < blocks; b += 16) {
    const __mmask16 m = lanes(blocks - b);
#pragma GCC unroll 4
    for (int i = 0; i < X; ++i) {
      const __m512 sums = _mm512_maskz_loadu_ps(m, x.block_sums + i * (x.in / block) + b);
#pragma GCC unroll 4
      for (int w = 0; w < W; ++w) acc[i][w] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, offsets[w] + b), sums, acc[i][w]);
    }
  }
  store_sums<W, X>(acc, dots);
}

template <int W, int X>
void nf4_fixed(const uint8_t* packed, int64_t start, int64_t ld, int64_t n, const float* absmax, int64_t blocksize,
               const int8_t* levels, const Int8Rows& x, float* dots) {
  // level + 128 for each code, in every 128-bit lane (vpshufb looks up within lanes).
  alignas(64) uint8_t biased[64];
  for (int j = 0; j < 64; ++j) biased[j] = static_cast<uint8_t>(levels[j & 15] + 128);
  const __m512i lut = _mm512_load_si512(biased);
  __m512 acc[X][W];
#pragma GCC unroll 4
  for (int i = 0; i < X; ++i)
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) acc[i][w] = _mm512_setzero_ps();
  const GroupScales group_scales(blocksize);
  const __m512i mask = _mm512_set1_epi8(15);
  auto decode = [&](int w, int64_t c, __m512i* hi, __m512i* lo) {
    split_codes(packed, start + w * ld + c, W * ld / 2, mask, hi, lo);
    *hi = _mm512_shuffle_epi8(lut, *hi);
    *lo = _mm512_shuffle_epi8(lut, *lo);
  };
  auto scale = [&](int w, int64_t c) { return group_scales(absmax, (start + w * ld + c) / 32); };
  auto bias = [&](int i, int64_t c) { return _mm512_loadu_si512(x.lane_bias + i * (x.in / 8) + c / 8); };
  accumulate<W, X>(n, x, decode, scale, bias, acc);
  store_sums<W, X>(acc, dots);
}

/**
 * The weight scales of a chunk at value `c` of a row whose block parameters start at `s`, for
 * Per groups of 32 values per block (1, 2), or 0: the chunk lies in one block (`shift` =
 * log2 of the block size).
 */
template <int Per>
inline __m512 row_scales(const float* s, int64_t c, int shift) {
  if constexpr (Per == 1) {
    const __m512i quarters = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(quarters, _mm512_castps128_ps512(_mm_loadu_ps(s + c / 32)));
  } else if constexpr (Per == 2) {
    const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128 two = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s + c / 64)));
    return _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(two));
  } else {
    return _mm512_set1_ps(s[c >> shift]);
  }
}

/**
 * The tile loop for one activation row (the matrix-vector product): the scale layout is a
 * compile-time constant and the row's activations, lane scales and biases are loaded once per
 * chunk for all W weight rows. At one row the general loop is bound by its instructions (its
 * run-time scale layouts and address arithmetic), not by the weight stream. Row w's codes start
 * at `codes + w * ld_bytes` and its block parameters (INT4 scales and offsets, or NF4 absmax)
 * at scales[w] / offsets[w], on a block boundary.
 */
template <int W, int Per, bool Nf4>
inline void single_row(const uint8_t* codes, int64_t ld_bytes, int64_t n, const float* const* scales,
                       const float* const* offsets, int shift, __m512i lut, const Int8Rows& x, __m512 (&acc)[W]) {
  const __m512i mask = _mm512_set1_epi8(15);
  for (int64_t c = 0; c < n; c += kChunk) {
    const __m512i even = _mm512_loadu_si512(x.q + c);
    const __m512i odd = _mm512_loadu_si512(x.q + c + kChunk / 2);
    const __m512 ls = _mm512_loadu_ps(x.lane_scales + c / 8);
    const __m512i start = Nf4 ? _mm512_loadu_si512(x.lane_bias + c / 8) : _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) {
      const uint8_t* p = codes + w * ld_bytes + c / 2;
      // The same bytes of the next tile (its rows follow this tile's) stream in meanwhile.
      _mm_prefetch(reinterpret_cast<const char*>(p) + W * ld_bytes, _MM_HINT_T0);
      if constexpr (!Nf4) {
        // The parameter rows stream too: the scales two lines ahead, and the offsets (read
        // after the loop) as the loop passes them.
        _mm_prefetch(reinterpret_cast<const char*>(scales[w] + c / 32 + 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(offsets[w] + c / 32), _MM_HINT_T0);
      }
      const __m512i v = _mm512_loadu_si512(p);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      __m512i lo = _mm512_and_si512(v, mask);
      if constexpr (Nf4) {
        hi = _mm512_shuffle_epi8(lut, hi);
        lo = _mm512_shuffle_epi8(lut, lo);
      }
      const __m512i dots = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, hi, even), lo, odd);
      const __m512 ws = row_scales<Per>(scales[w], c, shift);
      acc[w] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), _mm512_mul_ps(ws, ls), acc[w]);
    }
  }
}

/** Calls fn with the layout of blocks of `block` values as a compile-time Per (see row_scales); false if none fits. */
template <typename Fn>
inline bool with_per(int64_t block, const Fn& fn) {
  if (block == 32) return fn(std::integral_constant<int, 1>()), true;
  if (block == 64) return fn(std::integral_constant<int, 2>()), true;
  if (block % kChunk == 0 && (block & (block - 1)) == 0) return fn(std::integral_constant<int, 0>()), true;
  return false;
}

/** int4_fixed<W, 1> with single_row; false (nothing written) when the block size has no Per. */
template <int W>
bool int4_single(const uint8_t* codes, int64_t start, int64_t ld, int64_t n, const float* const* scales,
                 const float* const* offsets, int64_t block, const Int8Rows& x, float* dots) {
  __m512 acc[1][W];
  for (int w = 0; w < W; ++w) acc[0][w] = _mm512_setzero_ps();
  const bool done = with_per(block, [&](auto per) {
    single_row<W, decltype(per)::value, false>(codes + start / 2, ld / 2, n, scales, offsets, __builtin_ctzll(block),
                                               _mm512_setzero_si512(), x, acc[0]);
  });
  if (!done) return false;
  const int64_t blocks = n / block;
  for (int64_t b = 0; b < blocks; b += 16) {
    const __mmask16 m = lanes(blocks - b);
    const __m512 sums = _mm512_maskz_loadu_ps(m, x.block_sums + b);
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) acc[0][w] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, offsets[w] + b), sums, acc[0][w]);
  }
  store_sums<W, 1>(acc, dots);
  return true;
}

/** nf4_fixed<W, 1> with single_row; false (nothing written) when a row starts inside a block or the size has no Per. */
template <int W>
bool nf4_single(const uint8_t* packed, int64_t start, int64_t ld, int64_t n, const float* absmax, int64_t blocksize,
                const int8_t* levels, const Int8Rows& x, float* dots) {
  // Each row's absmax pointer needs the row to start on a block boundary.
  const float* rows[W];
  for (int w = 0; w < W; ++w) {
    if ((start + w * ld) % blocksize != 0) return false;
    rows[w] = absmax + (start + w * ld) / blocksize;
  }
  alignas(64) uint8_t biased[64];
  for (int j = 0; j < 64; ++j) biased[j] = static_cast<uint8_t>(levels[j & 15] + 128);
  const __m512i lut = _mm512_load_si512(biased);
  __m512 acc[1][W];
  for (int w = 0; w < W; ++w) acc[0][w] = _mm512_setzero_ps();
  const bool done = with_per(blocksize, [&](auto per) {
    single_row<W, decltype(per)::value, true>(packed + start / 2, ld / 2, n, rows, nullptr, __builtin_ctzll(blocksize),
                                              lut, x, acc[0]);
  });
  if (!done) return false;
  store_sums<W, 1>(acc, dots);
  return true;
}

/** Calls fn with the tile's sizes as compile-time constants (W, X in 1 .. 4). */
template <typename Fn>
inline void with_tile(int64_t wrows, int64_t xrows, const Fn& fn) {
  auto with_x = [&](auto w) {
    switch (xrows) {
      case 1: return fn(w, std::integral_constant<int, 1>());
      case 2: return fn(w, std::integral_constant<int, 2>());
      case 3: return fn(w, std::integral_constant<int, 3>());
      case 4: return fn(w, std::integral_constant<int, 4>());
      default: return;
    }
  };
  switch (wrows) {
    case 1: return with_x(std::integral_constant<int, 1>());
    case 2: return with_x(std::integral_constant<int, 2>());
    case 3: return with_x(std::integral_constant<int, 3>());
    case 4: return with_x(std::integral_constant<int, 4>());
    default: return;
  }
}

void int4_tile_q8(const uint8_t* codes, int64_t start, int64_t ld, int64_t n, const float* const* scales,
                  const float* const* offsets, int64_t block, const Int8Rows& x, int64_t wrows, int64_t xrows,
                  float* dots) {
  if (xrows == 1 && wrows == kMaxTile && int4_single<kMaxTile>(codes, start, ld, n, scales, offsets, block, x, dots)) {
    return;
  }
  with_tile(wrows, xrows, [&](auto w, auto i) {
    int4_fixed<decltype(w)::value, decltype(i)::value>(codes, start, ld, n, scales, offsets, block, x, dots);
  });
}

void nf4_tile_q8(const uint8_t* packed, int64_t start, int64_t ld, int64_t n, const float* absmax, int64_t blocksize,
                 const int8_t* levels, const Int8Rows& x, int64_t wrows, int64_t xrows, float* dots) {
  if (xrows == 1 && wrows == kMaxTile &&
      nf4_single<kMaxTile>(packed, start, ld, n, absmax, blocksize, levels, x, dots)) {
    return;
  }
  with_tile(wrows, xrows, [&](auto w, auto i) {
    nf4_fixed<decltype(w)::value, decltype(i)::value>(packed, start, ld, n, absmax, blocksize, levels, x, dots);
  });
}

}  // namespace

void fill_q8_loops(KernelTable* table) {
  table->q8_chunk = static_cast<int>(kChunk);
  // The tile loops replace the row-at-a-time ones (whose chunks are 64 values).
  table->int4_dot_q8 = nullptr;
  table->nf4_dot_q8 = nullptr;
  table->q8_tile = kMaxTile;
  table->int4_tile_q8 = int4_tile_q8;
  table->nf4_tile_q8 = nf4_tile_q8;
}

}  // namespace avx512
}  // namespace blora
