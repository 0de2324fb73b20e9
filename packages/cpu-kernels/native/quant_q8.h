// Int8 activations for the products with 4-bit weights (an opt-in approximation, like
// onnxruntime's MatMulNBits with accuracy_level 4): the few activation rows of a
// matrix-vector-like product are rounded to int8 once per call, per block of 32 values with a
// float32 scale, and every weight row is then multiplied in integer arithmetic (AVX-512 VNNI
// vpdpbusd, or AVX2 vpmaddubsw + vpmaddwd), one float32 multiply-add per 32-bit lane of each
// chunk. NF4 / FP4 tables are rounded to int8 levels (round(127 · v / max |v|)) for it.
//
// The error against the float32 product is bounded per output by
//   sum over blocks of max |x_block| / 254 · sum |W| over the block   (activation rounding)
// plus, for NF4 / FP4, sum |x| · absmax · max |table| / 254           (level rounding),
// both far above float32 rounding; hence opt-in, and never used by the backward products.
#pragma once

#include <cstdint>

#include "kernels.h"
#include "quant.h"

namespace blora {

/**
 * The 16 int8 levels of a 4-bit table, round(127 · table[c] / max |table|), and the factor
 * (max |table| / 127) that turns a level back into a table value. False when the table is
 * not finite.
 */
bool int8_levels(const float* table, int8_t levels[16], float* level_scale);

/** The most rows of x quant_matmul_q8 takes at once: 32 with tile loops (KernelTable::q8_tile), else 8. */
int64_t q8_max_rows(const KernelTable& kt);

/**
 * y = x W^T with int8 activations for at most q8_max_rows(kt) rows of x (rows ldx apart, each
 * contiguous), when the table has int8 loops and the weight's layout suits them (4-bit codes,
 * in a multiple of kt.q8_chunk, blocks multiples of 32 values). Returns false, having written nothing, when
 * it does not apply (the caller then takes the float32 path): another format or layout, a
 * non-finite activation or table value, or no memory for the quantized rows.
 */
bool quant_matmul_q8(const KernelTable& kt, int threads, const QuantWeight& w, const float* x, int64_t rows,
                     int64_t ldx, float* y);

}  // namespace blora
