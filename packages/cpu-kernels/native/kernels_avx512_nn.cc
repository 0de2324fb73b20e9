// AVX-512 loops for quantized weights with float32 activations. Compiled with the AVX-512
// flags and called only after the run-time CPU check; like the other ISA units it
// instantiates no standard library code, and its helpers have internal linkage.
//
// Every 4-bit weight is a lookup in a 16-entry table per block held in one register: the NF4 /
// FP4 table times the block's absmax, or α·q + β for q = 0..15 of an INT4 block (one fused
// multiply-add for all sixteen, so each entry is the value the portable decoder rounds), and
// vpermps looks up sixteen codes at once (it reads only the low four bits of each index, so
// the other nibbles of a lane need no masking). In natural order, the eight bytes holding
// sixteen codes are loaded, dwords 0 and 1 spread to lanes 0-7 and 8-15 with one permute and
// each lane shifted so that its element's nibble lands in bits 0-3. The "split" loops read
// activations stored per 32 as the 16 even-indexed values, then the 16 odd ones (the caller
// reorders them once per call): sixteen code bytes zero-extended to 32-bit lanes then hold the
// odd elements' codes in their low nibbles and, shifted by 4, the even ones'. That is one
// shuffle per 32 weights instead of two per 16. INT8 codes are converted and scaled with one
// fused multiply-add.
//
// The int8-activation loops (kernels_avx512_q8.cc) are filled in here too.
#include "kernels_avx512_nn.h"

#include <immintrin.h>

#include <type_traits>

#include "avx512_util.h"
#include "kernel_util.h"
#include "kernels_avx512_q8.h"

namespace blora {
namespace avx512 {

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/**
 * The codes of elements i .. i + count (i even, count 8 or 16) in lanes 0 .. count, in bits
 * 0-3 of each lane (higher bits hold other codes). Reads exactly count / 2 bytes.
 */
template <int Count>
inline __m512i nibbles(const uint8_t* packed, int64_t i) {
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i shifts = _mm512_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24, 4, 0, 12, 8, 20, 16, 28, 24);
  const uint8_t* bytes = packed + (i >> 1);
  const __m128i raw = Count == 16 ? _mm_cvtsi64_si128(static_cast<long long>(load_u64(bytes)))
                                  : _mm_cvtsi32_si128(static_cast<int>(load_u32(bytes)));
  return _mm512_srlv_epi32(_mm512_permutexvar_epi32(spread, _mm512_zextsi128_si512(raw)), shifts);
}

/** The integer codes of elements i .. i + Count as floats (for 4 bits, i is even). */
template <int Bits, int Count>
inline __m512 codes_f(const uint8_t* codes, int64_t i) {
  if (Bits == 8) {
    const __m128i raw = Count == 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i))
                                    : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i));
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(raw));
  }
  return _mm512_cvtepi32_ps(_mm512_and_si512(nibbles<Count>(codes, i), _mm512_set1_epi32(15)));
}

/**
 * Calls body(c0, c1, table) for each run [c0, c1) of elements start + c (c < n) that share
 * one absmax block, with the block's 16 values (the table times its absmax).
 */
template <typename Body>
inline void for_each_block(int64_t start, int64_t n, const float* absmax, int64_t blocksize, const float* table,
                           const Body& body) {
  const __m512 t = _mm512_loadu_ps(table);
  int64_t block = block_of(start, blocksize);
  for (int64_t c = 0; c < n; ++block) {
    const int64_t c1 = min64((block + 1) * blocksize - start, n);
    body(c, c1, _mm512_mul_ps(t, _mm512_set1_ps(absmax[block])));
    c = c1;
  }
}

/**
 * Calls body(c0, c1, table) for each run [c0, c1) of c < n that shares one INT4 block (the
 * first run is what is left after `phase` elements), with the block's 16 values α·q + β.
 */
template <typename Body>
inline void for_each_int4_block(int64_t n, const float* scales, const float* offsets, int64_t block, int64_t phase,
                                const Body& body) {
  const __m512 q = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t c = 0, b = 0; c < n; ++b) {
    const int64_t c1 = min64(c + block - (b == 0 ? phase : 0), n);
    body(c, c1, _mm512_fmadd_ps(q, _mm512_set1_ps(scales[b]), _mm512_set1_ps(offsets[b])));
    c = c1;
  }
}

/** As for_each_block for INT8 blocks, with the block's scale and offset. */
template <typename Body>
inline void for_each_int_block(int64_t n, const float* scales, const float* offsets, int64_t block, int64_t phase,
                               const Body& body) {
  for (int64_t c = 0, b = 0; c < n; ++b) {
    const int64_t c1 = min64(c + block - (b == 0 ? phase : 0), n);
    body(c, c1, _mm512_set1_ps(scales[b]), _mm512_set1_ps(offsets[b]));
    c = c1;
  }
}

constexpr __mmask16 kLow8 = 0x00ff;

/**
 * The dot products of one weight row slice with R activation rows. `decode(i, count)` gives
 * the weights of elements i .. i + count (count 16, or 8 in lanes 0-7) of the current block.
 */
template <int R, typename Runs>
inline void dot_rows(const float* x, int64_t ldx, float* dots, const Runs& runs) {
  // Few rows: two sets of accumulators, so consecutive FMAs into one register do not wait on each other.
  constexpr int U = R <= 4 ? 2 : 1;
  __m512 acc[U][R];
#pragma GCC unroll 2
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[u][i] = _mm512_setzero_ps();
  runs([&](int64_t c, int64_t c1, const auto& decode) {
    for (; c + 16 * U <= c1; c += 16 * U) {
#pragma GCC unroll 2
      for (int u = 0; u < U; ++u) {
        const __m512 w = decode(c + 16 * u, std::integral_constant<int, 16>());
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) acc[u][i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + i * ldx + c + 16 * u), acc[u][i]);
      }
    }
    for (; c + 16 <= c1; c += 16) {
      const __m512 w = decode(c, std::integral_constant<int, 16>());
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[0][i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + i * ldx + c), acc[0][i]);
    }
    if (c < c1) {  // eight left (runs are multiples of 8)
      const __m512 w = decode(c, std::integral_constant<int, 8>());
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        acc[0][i] = _mm512_mask3_fmadd_ps(w, _mm512_maskz_loadu_ps(kLow8, x + i * ldx + c), acc[0][i], kLow8);
      }
    }
  });
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(U == 2 ? _mm512_add_ps(acc[0][i], acc[U - 1][i]) : acc[0][i]);
}

/** y[i * ldy + c] += alpha[i] * W(c) for R rows; `decode` as in dot_rows. */
template <int R, typename Runs>
inline void axpy_rows_fixed(const float* alpha, float* y, int64_t ldy, const Runs& runs) {
  __m512 a[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a[i] = _mm512_set1_ps(alpha[i]);
  runs([&](int64_t c, int64_t c1, const auto& decode) {
    for (; c + 16 <= c1; c += 16) {
      const __m512 w = decode(c, std::integral_constant<int, 16>());
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        float* yi = y + i * ldy + c;
        _mm512_storeu_ps(yi, _mm512_fmadd_ps(a[i], w, _mm512_loadu_ps(yi)));
      }
    }
    if (c < c1) {
      const __m512 w = decode(c, std::integral_constant<int, 8>());
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        float* yi = y + i * ldy + c;
        _mm512_mask_storeu_ps(yi, kLow8, _mm512_fmadd_ps(a[i], w, _mm512_maskz_loadu_ps(kLow8, yi)));
      }
    }
  });
}

/** The runs of a 4-bit absmax weight slice, each with its decoder. */
struct FourBitRuns {
  const uint8_t* packed;
  int64_t start, n;
  const float* absmax;
  int64_t blocksize;
  const float* table;

  template <typename Body>
  void operator()(const Body& body) const {
    const uint8_t* p = packed;
    const int64_t s = start;
    for_each_block(start, n, absmax, blocksize, table, [&](int64_t c, int64_t c1, __m512 scaled) {
      body(c, c1, [&](int64_t i, auto count) {
        return _mm512_permutexvar_ps(nibbles<decltype(count)::value>(p, s + i), scaled);
      });
    });
  }
};

/** The runs of an INT4 weight slice, each with its decoder (a lookup in the block's α·q + β). */
struct Int4Runs {
  const uint8_t* codes;
  int64_t start, n;
  const float* scales;
  const float* offsets;
  int64_t block, phase;

  template <typename Body>
  void operator()(const Body& body) const {
    const uint8_t* p = codes;
    const int64_t s = start;
    for_each_int4_block(n, scales, offsets, block, phase, [&](int64_t c, int64_t c1, __m512 values) {
      body(c, c1, [&](int64_t i, auto count) {
        return _mm512_permutexvar_ps(nibbles<decltype(count)::value>(p, s + i), values);
      });
    });
  }
};

/** The runs of an INT8 weight slice, each with its decoder (α·q + β, one rounding). */
struct Int8Runs {
  const uint8_t* codes;
  int64_t start, n;
  const float* scales;
  const float* offsets;
  int64_t block, phase;

  template <typename Body>
  void operator()(const Body& body) const {
    const uint8_t* q = codes;
    const int64_t s = start;
    for_each_int_block(n, scales, offsets, block, phase, [&](int64_t c, int64_t c1, __m512 scale, __m512 offset) {
      body(c, c1, [&](int64_t i, auto count) {
        return _mm512_fmadd_ps(codes_f<8, decltype(count)::value>(q, s + i), scale, offset);
      });
    });
  }
};

/**
 * The dot products of one weight row slice with R activation rows in split order: runs(body)
 * calls body(c0, c1, table) for each block run, whose bounds are multiples of 32.
 */
template <int R, typename TableRuns>
inline void dot_rows_split(const uint8_t* packed, int64_t start, const float* x, int64_t ldx, float* dots,
                           const TableRuns& runs) {
  __m512 even[R], odd[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  runs([&](int64_t c, int64_t c1, __m512 table) {
    for (; c < c1; c += 32) {
      const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + ((start + c) >> 1))));
      const __m512 we = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table);
      const __m512 wo = _mm512_permutexvar_ps(codes, table);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        even[i] = _mm512_fmadd_ps(we, _mm512_loadu_ps(x + i * ldx + c), even[i]);
        odd[i] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(x + i * ldx + c + 16), odd[i]);
      }
    }
  });
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) dots[i] = hsum(_mm512_add_ps(even[i], odd[i]));
}

void nf4_dot_split(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                   const float* table, const float* x, int64_t ldx, int64_t rows, float* dots) {
  auto runs = [&](const auto& body) { for_each_block(start, n, absmax, blocksize, table, body); };
  with_rows(rows, [&](auto r) { dot_rows_split<decltype(r)::value>(packed, start, x, ldx, dots, runs); });
}

void int4_dot_split(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                    int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots) {
  auto runs = [&](const auto& body) { for_each_int4_block(n, scales, offsets, block, 0, body); };
  with_rows(rows, [&](auto r) { dot_rows_split<decltype(r)::value>(codes, start, x, ldx, dots, runs); });
}

void nf4_dot(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
             const float* table, const float* x, int64_t ldx, int64_t rows, float* dots) {
  const FourBitRuns runs{packed, start, n, absmax, blocksize, table};
  with_rows(rows, [&](auto r) { dot_rows<decltype(r)::value>(x, ldx, dots, runs); });
}

void nf4_axpy(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
              const float* table, const float* alpha, int64_t rows, float* y, int64_t ldy) {
  const FourBitRuns runs{packed, start, n, absmax, blocksize, table};
  with_rows(rows, [&](auto r) { axpy_rows_fixed<decltype(r)::value>(alpha, y, ldy, runs); });
}

void int_dot(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
             int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots) {
  if (bits == 8) {
    const Int8Runs runs{codes, start, n, scales, offsets, block, 0};
    with_rows(rows, [&](auto r) { dot_rows<decltype(r)::value>(x, ldx, dots, runs); });
  } else {
    const Int4Runs runs{codes, start, n, scales, offsets, block, 0};
    with_rows(rows, [&](auto r) { dot_rows<decltype(r)::value>(x, ldx, dots, runs); });
  }
}

void int_axpy(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
              int64_t block, int64_t phase, const float* alpha, int64_t rows, float* y, int64_t ldy) {
  if (bits == 8) {
    const Int8Runs runs{codes, start, n, scales, offsets, block, phase};
    with_rows(rows, [&](auto r) { axpy_rows_fixed<decltype(r)::value>(alpha, y, ldy, runs); });
  } else {
    const Int4Runs runs{codes, start, n, scales, offsets, block, phase};
    with_rows(rows, [&](auto r) { axpy_rows_fixed<decltype(r)::value>(alpha, y, ldy, runs); });
  }
}

void decode_nf4(const uint8_t* packed, int64_t start, int64_t count, const float* absmax, int64_t blocksize,
                const float* table, float* dst) {
  const __m512 t = _mm512_loadu_ps(table);
  const int64_t end = start + count;
  int64_t i = start;
  for (int64_t block = block_of(start, blocksize); i < end; ++block) {
    const int64_t block_end = min64((block + 1) * blocksize, end);
    const float scale = absmax[block];
    if (i & 1) {
      *dst++ = table[nibble(packed, i)] * scale;
      ++i;
    }
    const __m512 scaled = _mm512_mul_ps(t, _mm512_set1_ps(scale));
    for (; i + 16 <= block_end; i += 16, dst += 16) {
      _mm512_storeu_ps(dst, _mm512_permutexvar_ps(nibbles<16>(packed, i), scaled));
    }
    if (i + 8 <= block_end) {
      _mm512_mask_storeu_ps(dst, kLow8, _mm512_permutexvar_ps(nibbles<8>(packed, i), scaled));
      i += 8;
      dst += 8;
    }
    for (; i < block_end; ++i) *dst++ = table[nibble(packed, i)] * scale;
  }
}

void decode_int(int bits, const uint8_t* codes, int64_t start, int64_t count, float scale, float offset, float* dst) {
  const __m512 vscale = _mm512_set1_ps(scale), voffset = _mm512_set1_ps(offset);
  const int64_t end = start + count;
  int64_t i = start;
  if (bits == 8) {
    for (; i + 16 <= end; i += 16, dst += 16) {
      _mm512_storeu_ps(dst, _mm512_fmadd_ps(codes_f<8, 16>(codes, i), vscale, voffset));
    }
    for (; i < end; ++i) *dst++ = __builtin_fmaf(scale, static_cast<float>(codes[i]), offset);
    return;
  }
  if (i < end && (i & 1)) {
    *dst++ = __builtin_fmaf(scale, static_cast<float>(nibble(codes, i)), offset);
    ++i;
  }
  for (; i + 16 <= end; i += 16, dst += 16) {
    _mm512_storeu_ps(dst, _mm512_fmadd_ps(codes_f<4, 16>(codes, i), vscale, voffset));
  }
  for (; i < end; ++i) *dst++ = __builtin_fmaf(scale, static_cast<float>(nibble(codes, i)), offset);
}

}  // namespace

void fill_quant_loops(KernelTable* table) {
  table->decode_nf4 = decode_nf4;
  table->decode_int = decode_int;
  table->nf4_dot = nf4_dot;
  table->nf4_axpy = nf4_axpy;
  table->int_dot = int_dot;
  table->int_axpy = int_axpy;
  table->nf4_dot_split = nf4_dot_split;
  table->int4_dot_split = int4_dot_split;
  fill_q8_loops(table);
}

}  // namespace avx512
}  // namespace blora
