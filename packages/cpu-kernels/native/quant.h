// Matrix products with quantized weights (NF4 / FP4 absmax blocks, INT4 / INT8 blocks with a
// scale and an offset) that never build the dense weight: slices of it are decoded into small
// float32 buffers right before they are used.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {

/** How the codes of a quantized weight turn into values. */
enum class QuantFormat : int { FourBit = 0, Int4 = 1, Int8 = 2 };

/**
 * A quantized weight W [out, in]; element (r, c) has flat index r * in + c.
 * FourBit: W = table[code] * absmax[flat / blocksize], codes packed two per byte (the even
 * element in the high nibble). Int4 / Int8: W = scale * q + offset of block
 * (r / block_rows, c / block_cols), whose parameters sit at that row-major index of `scales`
 * and `offsets` (float32, or float16 bit patterns when `half`).
 */
struct QuantWeight {
  QuantFormat format;
  const uint8_t* codes;
  int64_t out, in;
  const float* absmax;
  int64_t blocksize;
  const float* table;
  const void* scales;
  const void* offsets;
  bool half;
  int64_t block_rows, block_cols;
};

/** Decodes W[r, c0 .. c0 + count) into dst. */
void decode_weight_row(const KernelTable& kt, const QuantWeight& w, int64_t r, int64_t c0, int64_t count, float* dst);

/**
 * y = x W^T (x [rows, in], y [rows, out]) or, when `transposed`, y = x W (x [rows, out],
 * y [rows, in]). Rows of x are ldx apart and contiguous; y is dense. With
 * `int8_activations`, a product y = x W^T of at most 32 rows takes that approximation (see
 * quant_q8.h) for each group of up to q8_max_rows rows that quant_matmul_q8 can run;
 * everything else stays float32. Returns false when scratch memory could not be allocated.
 */
bool quant_matmul_f32(const KernelTable& kt, int threads, const QuantWeight& w, bool transposed, const float* x,
                      int64_t rows, int64_t ldx, float* y, bool int8_activations = false);

/** The float32 value of block parameter `index` (float32, or float16 bits when `half`). */
float block_param(const void* params, bool half, int64_t index);

/**
 * Points *scales and *offsets at the float32 parameters of the `count` integer blocks from
 * row-major index `first`; float16 ones are first converted into `converted` (2 * count floats).
 */
void block_params(const QuantWeight& w, int64_t first, int64_t count, float* converted, const float** scales,
                  const float** offsets);

/** The float32 value of a float16 bit pattern. */
float half_to_float(uint16_t bits);

}  // namespace blora
