// AVX2 + FMA loops for quantized weights and attention. Compiled with -mavx2 -mfma and called
// only after the run-time CPU check; like kernels_avx2.cc it instantiates no standard library
// code, and its helpers have internal linkage.
//
// 4-bit codes are decoded eight at a time: the four bytes holding them are broadcast to all
// lanes and shifted by a per-lane amount, so lane l holds the nibble of element l (the high
// nibble of byte l / 2 for even l). The 16-entry table lives in two registers, multiplied by
// the absmax once per block; each lane picks its entry from both halves with a permute and
// keeps the one bit 3 of its code selects. Integer codes are widened the same way (or zero-
// extended, for 8 bits), converted to float and scaled with one fused multiply-add.
#include "kernels_avx2_nn.h"

#include <immintrin.h>

#include "avx2_util.h"
#include "kernel_util.h"

namespace blora {
namespace avx2 {

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/** The eight 4-bit codes of elements i .. i + 7 (i even) as 32-bit lanes. */
inline __m256i nibbles8(const uint8_t* packed, int64_t i) {
  const __m256i shifts = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
  const __m256i word = _mm256_set1_epi32(static_cast<int>(load_u32(packed + (i >> 1))));
  return _mm256_and_si256(_mm256_srlv_epi32(word, shifts), _mm256_set1_epi32(15));
}

/**
 * The weights of elements i .. i + 7 (i even): table[code] * scale, read from the block's
 * scaled table (slo, shi: entries 0-7 and 8-15 already multiplied by the block's absmax, so
 * each value is the same float32 product the reference forms).
 */
inline __m256 decode8(const uint8_t* packed, int64_t i, __m256 slo, __m256 shi) {
  const __m256i shifts = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
  // Lane l now holds element l's code in bits 0-3 (and other codes above, which nothing reads).
  const __m256i code = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(load_u32(packed + (i >> 1)))), shifts);
  // The permutes read bits 0-2; bit 3, moved to the sign bit, selects the upper half of the table.
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(slo, code), _mm256_permutevar8x32_ps(shi, code),
                          _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
}

/**
 * Calls body(c0, c1, slo, shi) for each run [c0, c1) of elements start + c (c < n) that share
 * one absmax block, with that block's scaled table.
 */
template <typename Body>
inline void for_each_block(int64_t start, int64_t n, const float* absmax, int64_t blocksize, const float* table,
                           const Body& body) {
  const __m256 lo = _mm256_loadu_ps(table), hi = _mm256_loadu_ps(table + 8);
  int64_t block = block_of(start, blocksize);  // then advanced, not divided, per block
  for (int64_t c = 0; c < n; ++block) {
    const int64_t c1 = min64((block + 1) * blocksize - start, n);
    const __m256 scale = _mm256_set1_ps(absmax[block]);
    body(c, c1, _mm256_mul_ps(lo, scale), _mm256_mul_ps(hi, scale));
    c = c1;
  }
}

template <int R>
void nf4_dot_fixed(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                   const float* table, const float* x, int64_t ldx, float* dots) {
  // Few rows: two sets of accumulators, so consecutive FMAs into one register do not wait on each other.
  constexpr int U = R <= 4 ? 2 : 1;
  __m256 acc[U][R];
#pragma GCC unroll 2
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[u][i] = _mm256_setzero_ps();
  for_each_block(start, n, absmax, blocksize, table, [&](int64_t c, int64_t c1, __m256 slo, __m256 shi) {
    for (; c + 8 * U <= c1; c += 8 * U) {
#pragma GCC unroll 2
      for (int u = 0; u < U; ++u) {
        const __m256 w = decode8(packed, start + c + 8 * u, slo, shi);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[u][i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * ldx + c + 8 * u), acc[u][i]);
      }
    }
    for (; c < c1; c += 8) {
      const __m256 w = decode8(packed, start + c, slo, shi);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[0][i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * ldx + c), acc[0][i]);
    }
  });
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(U == 2 ? _mm256_add_ps(acc[0][i], acc[U - 1][i]) : acc[0][i]);
}

template <int R>
void nf4_axpy_fixed(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                    const float* table, const float* alpha, float* y, int64_t ldy) {
  __m256 a[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a[i] = _mm256_set1_ps(alpha[i]);
  for_each_block(start, n, absmax, blocksize, table, [&](int64_t c, int64_t c1, __m256 slo, __m256 shi) {
    for (; c < c1; c += 8) {
      const __m256 w = decode8(packed, start + c, slo, shi);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        float* yi = y + i * ldy + c;
        _mm256_storeu_ps(yi, _mm256_fmadd_ps(a[i], w, _mm256_loadu_ps(yi)));
      }
    }
  });
}

/** The eight codes of elements i .. i + 7 as floats (for 4 bits, i is even). */
template <int Bits>
inline __m256 codes8(const uint8_t* codes, int64_t i) {
  if (Bits == 8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i))));
  }
  return _mm256_cvtepi32_ps(nibbles8(codes, i));
}

/**
 * Calls body(c0, c1, scale, offset) for each run [c0, c1) of c < n that shares one integer
 * block; the first run is what is left of a block after `phase` elements.
 */
template <typename Body>
inline void for_each_int_block(int64_t n, const float* scales, const float* offsets, int64_t block, int64_t phase,
                               const Body& body) {
  for (int64_t c = 0, b = 0; c < n; ++b) {
    const int64_t c1 = min64(c + block - (b == 0 ? phase : 0), n);
    body(c, c1, _mm256_set1_ps(scales[b]), _mm256_set1_ps(offsets[b]));
    c = c1;
  }
}

template <int Bits, int R>
void int_dot_fixed(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                   int64_t block, const float* x, int64_t ldx, float* dots) {
  // Few rows: two sets of accumulators, so consecutive FMAs into one register do not wait on each other.
  constexpr int U = R <= 4 ? 2 : 1;
  __m256 acc[U][R];
#pragma GCC unroll 2
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[u][i] = _mm256_setzero_ps();
  // The weight is scale * q + offset rounded once, as decode_int forms it.
  for_each_int_block(n, scales, offsets, block, 0, [&](int64_t c, int64_t c1, __m256 scale, __m256 offset) {
    for (; c + 8 * U <= c1; c += 8 * U) {
#pragma GCC unroll 2
      for (int u = 0; u < U; ++u) {
        const __m256 w = _mm256_fmadd_ps(codes8<Bits>(codes, start + c + 8 * u), scale, offset);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[u][i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * ldx + c + 8 * u), acc[u][i]);
      }
    }
    for (; c < c1; c += 8) {
      const __m256 w = _mm256_fmadd_ps(codes8<Bits>(codes, start + c), scale, offset);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[0][i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * ldx + c), acc[0][i]);
    }
  });
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(U == 2 ? _mm256_add_ps(acc[0][i], acc[U - 1][i]) : acc[0][i]);
}

template <int Bits, int R>
void int_axpy_fixed(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                    int64_t block, int64_t phase, const float* alpha, float* y, int64_t ldy) {
  __m256 a[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a[i] = _mm256_set1_ps(alpha[i]);
  for_each_int_block(n, scales, offsets, block, phase, [&](int64_t c, int64_t c1, __m256 scale, __m256 offset) {
    for (; c < c1; c += 8) {
      const __m256 w = _mm256_fmadd_ps(codes8<Bits>(codes, start + c), scale, offset);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        float* yi = y + i * ldy + c;
        _mm256_storeu_ps(yi, _mm256_fmadd_ps(a[i], w, _mm256_loadu_ps(yi)));
      }
    }
  });
}

template <int Bits>
void int_axpy_bits(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                   int64_t block, int64_t phase, const float* alpha, int64_t rows, float* y, int64_t ldy) {
  with_rows(rows, [&](auto r) { int_axpy_fixed<Bits, decltype(r)::value>(codes, start, n, scales, offsets, block, phase, alpha, y, ldy); });
}

template <int Bits>
void int_dot_bits(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                  int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { int_dot_fixed<Bits, decltype(r)::value>(codes, start, n, scales, offsets, block, x, ldx, dots); });
}

}  // namespace

void decode_nf4(const uint8_t* packed, int64_t start, int64_t count, const float* absmax, int64_t blocksize,
                const float* table, float* dst) {
  const __m256 lo = _mm256_loadu_ps(table), hi = _mm256_loadu_ps(table + 8);
  const int64_t end = start + count;
  int64_t i = start;
  for (int64_t block = block_of(start, blocksize); i < end; ++block) {
    const int64_t block_end = min64((block + 1) * blocksize, end);
    const float scale = absmax[block];
    if (i & 1) {
      *dst++ = table[nibble(packed, i)] * scale;
      ++i;
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 slo = _mm256_mul_ps(lo, vscale), shi = _mm256_mul_ps(hi, vscale);
    for (; i + 16 <= block_end; i += 16, dst += 16) {
      _mm256_storeu_ps(dst, decode8(packed, i, slo, shi));
      _mm256_storeu_ps(dst + 8, decode8(packed, i + 8, slo, shi));
    }
    for (; i + 8 <= block_end; i += 8, dst += 8) _mm256_storeu_ps(dst, decode8(packed, i, slo, shi));
    for (; i < block_end; ++i) *dst++ = table[nibble(packed, i)] * scale;
  }
}

void nf4_dot(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
             const float* table, const float* x, int64_t ldx, int64_t rows, float* dots) {
  with_rows(rows, [&](auto r) { nf4_dot_fixed<decltype(r)::value>(packed, start, n, absmax, blocksize, table, x, ldx, dots); });
}

void nf4_axpy(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
              const float* table, const float* alpha, int64_t rows, float* y, int64_t ldy) {
  with_rows(rows, [&](auto r) { nf4_axpy_fixed<decltype(r)::value>(packed, start, n, absmax, blocksize, table, alpha, y, ldy); });
}

void int_dot(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
             int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots) {
  if (bits == 8) int_dot_bits<8>(codes, start, n, scales, offsets, block, x, ldx, rows, dots);
  else int_dot_bits<4>(codes, start, n, scales, offsets, block, x, ldx, rows, dots);
}

void int_axpy(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
              int64_t block, int64_t phase, const float* alpha, int64_t rows, float* y, int64_t ldy) {
  if (bits == 8) int_axpy_bits<8>(codes, start, n, scales, offsets, block, phase, alpha, rows, y, ldy);
  else int_axpy_bits<4>(codes, start, n, scales, offsets, block, phase, alpha, rows, y, ldy);
}

void decode_int(int bits, const uint8_t* codes, int64_t start, int64_t count, float scale, float offset, float* dst) {
  // scale * q + offset with one rounding (a fused multiply-add) in the vector and scalar steps alike.
  const __m256 vscale = _mm256_set1_ps(scale), voffset = _mm256_set1_ps(offset);
  const int64_t end = start + count;
  int64_t i = start;
  if (bits == 8) {
    for (; i + 8 <= end; i += 8, dst += 8) {
      const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i)));
      _mm256_storeu_ps(dst, _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), vscale, voffset));
    }
    for (; i < end; ++i) *dst++ = __builtin_fmaf(scale, static_cast<float>(codes[i]), offset);
    return;
  }
  if (i < end && (i & 1)) {
    *dst++ = __builtin_fmaf(scale, static_cast<float>(nibble(codes, i)), offset);
    ++i;
  }
  for (; i + 8 <= end; i += 8, dst += 8) {
    _mm256_storeu_ps(dst, _mm256_fmadd_ps(_mm256_cvtepi32_ps(nibbles8(codes, i)), vscale, voffset));
  }
  for (; i < end; ++i) *dst++ = __builtin_fmaf(scale, static_cast<float>(nibble(codes, i)), offset);
}

void axpy_rows(int64_t rows, int64_t n, const float* alpha, const float* x, float* m, int64_t ldm) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = m + r * ldm;
    const __m256 a = _mm256_set1_ps(alpha[r]);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
      for (int u = 0; u < 32; u += 8) {
        _mm256_storeu_ps(row + j + u, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + j + u), _mm256_loadu_ps(row + j + u)));
      }
    }
    for (; j < n; j += 8) {
      const __m256i mask = tail_mask(n - j < 8 ? n - j : 8);
      const __m256 v = _mm256_fmadd_ps(a, _mm256_maskload_ps(x + j, mask), _mm256_maskload_ps(row + j, mask));
      _mm256_maskstore_ps(row + j, mask, v);
    }
  }
}

}  // namespace avx2
}  // namespace blora
