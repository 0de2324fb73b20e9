// Declarations shared by the native CPU kernels.
//
// The work is split in two layers. Inner loops that depend on the instruction set (the GEMM
// micro-kernel, vectorised elementwise loops, exp) live in one table per ISA; each table is
// compiled in its own translation unit, so the AVX2 one can use -mavx2 -mfma while the addon
// still loads on CPUs without AVX2. Drivers (cache blocking, packing, threading, argument
// checks) are portable and call through the table chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace blora {

/** Elementwise binary operations with a native float32 loop. */
enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };

/** Elementwise activations with a native float32 loop. */
enum class ActivationOp : int { Sigmoid = 0, Silu = 1 };

/**
 * Activation rows quantized to int8 for the int8-activation products (see quant_q8.h): each
 * row of `in` values in blocks of 32, x ~ scale * q with scale = max |x| / 127 per block.
 * Rows are laid out in chunks of KernelTable::q8_chunk values: the even-indexed values of the
 * chunk, then the odd-indexed ones (the order in which 4-bit codes come out of their bytes:
 * high nibbles, then low nibbles). Lane L of a chunk is bytes 4L .. 4L + 3 of both halves,
 * that is values 8L .. 8L + 7, which lie in one block. Row i of each array starts at i times
 * its length per row.
 */
struct Int8Rows {
  /** `in` bytes per row. */
  const int8_t* q;
  /** in / 8 per row: the scale of each lane's block. */
  const float* lane_scales;
  /** in / 8 per row: -128 times the sum of each lane's eight q values. */
  const int32_t* lane_bias;
  /** in / block_cols per row (integer weights only, else null): the sum of scale * q over each weight block. */
  const float* block_sums;
  int64_t in;
};

/** Inner loops of one instruction set. Every pointer argument is float32 data. */
struct KernelTable {
  /** Name reported to JavaScript: "avx512", "avx2+fma" or "scalar". */
  const char* isa;

  // GEMM register tile (mr x nr accumulators) and cache blocks: an mc x kc block of packed A
  // stays in L2 while each kc x nr sliver of packed B it meets sits in L1.
  int mr;
  int nr;
  int64_t mc;
  int64_t kc;

  /**
   * c[i * ldc + j] (+)= sum over p < kc of a[p * mr + i] * b[p * nr + j] for the full mr x nr
   * tile; `a` and `b` are packed slivers aligned to 32 bytes. Overwrites c unless `accumulate`.
   */
  void (*gemm_micro)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);

  /**
   * Optional (nullptr = the portable loop): packs one full sliver of mr rows of a row-major A
   * block, dst[p * mr + r] = src[r * rs + p] for r < mr, p < kc.
   */
  void (*pack_a_rows)(const float* src, int64_t rs, int64_t kc, float* dst);

  /**
   * Optional (nullptr = the portable loop): packs one full sliver of nr columns of a B block
   * whose columns are contiguous (a transposed view), dst[p * nr + j] = src[j * cs + p].
   */
  void (*pack_b_cols)(const float* src, int64_t cs, int64_t kc, float* dst);

  /** y[i] = sum over p < k of m[i * ldm + p] * x[p] for i < rows (rows of m are contiguous). */
  void (*gemv_rows)(int64_t rows, int64_t k, const float* m, int64_t ldm, const float* x, float* y);

  /** y[i] = sum over p < k of m[i + p * ldk] * x[p] for i < rows (columns of m are contiguous). */
  void (*gemv_cols)(int64_t rows, int64_t k, const float* m, int64_t ldk, const float* x, float* y);

  /**
   * out[i] = x[i * xs] op y[i * ys] for i < n, where each step is 1 (a dense operand)
   * or 0 (a broadcast scalar).
   */
  void (*binary)(BinaryOp op, const float* x, int64_t xs, const float* y, int64_t ys, float* out, int64_t n);

  /** Softmax (or log-softmax when `log`) of `rows` contiguous rows of length n. */
  void (*softmax_rows)(const float* src, float* dst, int64_t rows, int64_t n, bool log);

  /** dst[o] = mean of src[o * k .. o * k + k) for o < outputs. */
  void (*avg_pool)(const float* src, float* dst, int64_t outputs, int64_t k);

  /** dst[i] = exp(src[i]) for i < n (the approximation softmax uses). */
  void (*exp)(const float* src, float* dst, int64_t n);

  /**
   * dst[i] = sigmoid(src[i]) = 1 / (1 + e^-x), or silu(src[i]) = x * sigmoid(x) (-0 at -inf),
   * for i < n; NaN stays NaN.
   */
  void (*activation)(ActivationOp op, const float* src, float* dst, int64_t n);

  /**
   * Decodes elements [start, start + count) of a 4-bit absmax weight (NF4 or FP4):
   * dst[i - start] = table[code_i] * absmax[i / blocksize] (one float32 product), where code_i
   * is the high nibble of packed[i / 2] for even i and the low nibble for odd i.
   */
  void (*decode_nf4)(const uint8_t* packed, int64_t start, int64_t count, const float* absmax, int64_t blocksize,
                     const float* table, float* dst);

  /**
   * Decodes elements [start, start + count) that share one integer block:
   * dst[i - start] = scale * q_i + offset rounded to float32, q_i = codes[i] (bits 8) or the
   * nibble of element i packed as above (bits 4).
   */
  void (*decode_int)(int bits, const uint8_t* codes, int64_t start, int64_t count, float scale, float offset,
                     float* dst);

  /** m[i * ldm + j] += alpha[i] * x[j] for i < rows, j < n (a rank-1 update of a row block). */
  void (*axpy_rows)(int64_t rows, int64_t n, const float* alpha, const float* x, float* m, int64_t ldm);

  /**
   * Optional (nullptr = decode_nf4, then gemv_rows): dots[i] = sum over c < n of W[start + c] *
   * x[i * ldx + c] for i < rows, W the 4-bit absmax weight of decode_nf4, decoded in registers.
   * Requires rows <= 8 and start, n and blocksize multiples of 8.
   */
  void (*nf4_dot)(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                  const float* table, const float* x, int64_t ldx, int64_t rows, float* dots);

  /**
   * Optional (nullptr = decode_nf4, then axpy_rows): y[i * ldy + c] += alpha[i] * W[start + c]
   * for i < rows, c < n, W decoded in registers. Same requirements as nf4_dot.
   */
  void (*nf4_axpy)(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                   const float* table, const float* alpha, int64_t rows, float* y, int64_t ldy);

  /**
   * Optional (nullptr = decode_int per block, then gemv_rows): dots[i] = sum over c < n of
   * W(c) * x[i * ldx + c] for i < rows, where W(c) is decode_int's value of element start + c
   * with scales[c / block] and offsets[c / block], decoded in registers. Requires rows <= 8 and
   * start, n and block multiples of 8.
   */
  void (*int_dot)(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                  int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots);

  /**
   * Optional (nullptr = decode_int per block, then axpy_rows): y[i * ldy + c] += alpha[i] * W(c)
   * for i < rows, c < n, W(c) as in int_dot except that the first block is the one `phase`
   * elements into which c = 0 falls. Same requirements as int_dot, and phase a multiple of 8.
   */
  void (*int_axpy)(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales,
                   const float* offsets, int64_t block, int64_t phase, const float* alpha, int64_t rows, float* y,
                   int64_t ldy);

  /**
   * Optional: nf4_dot with the activations in split order: within every 32 values, the 16
   * even-indexed ones, then the 16 odd-indexed ones. Requires rows <= 8 and start, n and
   * blocksize multiples of 32.
   */
  void (*nf4_dot_split)(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                        const float* table, const float* x, int64_t ldx, int64_t rows, float* dots);

  /** Optional: int_dot for 4-bit codes with the activations in split order; start, n and block multiples of 32. */
  void (*int4_dot_split)(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                         int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots);

  /** Values per chunk of the Int8Rows layout the int8-activation loops read; 0 = no such loops. */
  int q8_chunk;

  /**
   * Optional: dots[i] = sum over c < n of W(c) * x_i(c) for i < rows, where W is a row of an
   * INT4 weight as in int_dot (scales and offsets of the row's blocks, `block` values each) and
   * x_i(c) = lane scale * q of row i of `x` (the offsets multiply its block sums).
   * Requires rows <= 8, start and n multiples of q8_chunk, block a multiple of 32.
   */
  void (*int4_dot_q8)(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                      int64_t block, const Int8Rows& x, int64_t rows, float* dots);

  /**
   * Optional: dots[i] = sum over c < n of absmax(start + c) * levels[code(start + c)] * x_i(c):
   * a 4-bit absmax weight whose table was rounded to the int8 `levels` (the caller multiplies
   * by the table's scale). Same requirements as int4_dot_q8, with blocksize a multiple of 32.
   */
  void (*nf4_dot_q8)(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                     const int8_t* levels, const Int8Rows& x, int64_t rows, float* dots);

  /**
   * Optional (else the portable loop of quant_q8.cc): rounds one row of `in` values (a multiple
   * of `chunk`, itself a multiple of 32) into q, lane_scales and lane_bias of the Int8Rows
   * layout and, when sum_block > 0, the sums of scale * q per sum_block values into `sums`.
   * False on a non-finite value.
   */
  bool (*quantize_q8_row)(const float* x, int64_t in, int64_t chunk, int64_t sum_block, int8_t* q,
                          float* lane_scales, int32_t* lane_bias, float* sums);

  /**
   * Weight rows and activation rows (each at most) of the tile loops below; 0 = no tile loops.
   * With them, the int8-activation products take up to 32 activation rows in one pass (the
   * weight is streamed once) instead of the row-at-a-time loops above, which they replace.
   */
  int q8_tile;

  /**
   * Optional: dots[i * wrows + w] = the int4_dot_q8 sum of weight row w (flat index start +
   * w * ld, the parameters of its blocks from the first column at scales[w] and offsets[w]) and
   * activation row i of x, for w < wrows and i < xrows (both at most q8_tile). Same
   * requirements as int4_dot_q8.
   */
  void (*int4_tile_q8)(const uint8_t* codes, int64_t start, int64_t ld, int64_t n, const float* const* scales,
                       const float* const* offsets, int64_t block, const Int8Rows& x, int64_t wrows, int64_t xrows,
                       float* dots);

  /** Optional: the nf4_dot_q8 sums of a tile of weight rows (start + w * ld) and activation rows, laid out as above. */
  void (*nf4_tile_q8)(const uint8_t* packed, int64_t start, int64_t ld, int64_t n, const float* absmax,
                      int64_t blocksize, const int8_t* levels, const Int8Rows& x, int64_t wrows, int64_t xrows,
                      float* dots);
};

/** Portable C++ loops; available everywhere. */
extern const KernelTable kScalarKernels;

#if defined(BLORA_HAVE_AVX2)
/** AVX2 + FMA loops; only call them when cpu_has_avx2_fma() is true. */
extern const KernelTable kAvx2Kernels;
#endif

#if defined(BLORA_HAVE_AVX512)
/**
 * AVX-512 loops (F, BW, DQ, VL, VNNI), with the AVX2 ones for what they do not replace; only
 * call them when cpu_has_avx512() is true. Built on first use.
 */
const KernelTable& avx512_kernels();
#endif

/** True when the CPU (and OS) support AVX2 and FMA and the AVX2 table was compiled in. */
bool cpu_has_avx2_fma();

/**
 * True when the CPU supports AVX-512 F, BW, DQ, VL and VNNI, the OS saves the opmask and zmm
 * registers, and the AVX-512 table was compiled in.
 */
bool cpu_has_avx512();

/** Number of CPUs this process may run on. */
int available_cpus();

}  // namespace blora
