// AVX2 + FMA loops of the quantized-weight and attention kernels (kernels_avx2_nn.cc), listed
// in the AVX2 kernel table. See KernelTable in kernels.h for what each computes.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {
namespace avx2 {

void decode_nf4(const uint8_t* packed, int64_t start, int64_t count, const float* absmax, int64_t blocksize,
                const float* table, float* dst);

void decode_int(int bits, const uint8_t* codes, int64_t start, int64_t count, float scale, float offset, float* dst);

void int_dot(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
             int64_t block, const float* x, int64_t ldx, int64_t rows, float* dots);

void int_axpy(int bits, const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
              int64_t block, int64_t phase, const float* alpha, int64_t rows, float* y, int64_t ldy);

void axpy_rows(int64_t rows, int64_t n, const float* alpha, const float* x, float* m, int64_t ldm);

void nf4_dot(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
             const float* table, const float* x, int64_t ldx, int64_t rows, float* dots);

void nf4_axpy(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
              const float* table, const float* alpha, int64_t rows, float* y, int64_t ldy);

/** The int8-activation loops (kernels_avx2_q8.cc); see KernelTable::int4_dot_q8 and nf4_dot_q8. */
void int4_dot_q8(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                 int64_t block, const Int8Rows& x, int64_t rows, float* dots);

void nf4_dot_q8(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                const int8_t* levels, const Int8Rows& x, int64_t rows, float* dots);

/** Rounds a row of activations to int8 (kernels_avx2_q8_quantize.cc); see KernelTable::quantize_q8_row. */
bool quantize_q8_row(const float* x, int64_t in, int64_t chunk, int64_t sum_block, int8_t* q, float* lane_scales,
                     int32_t* lane_bias, float* sums);

}  // namespace avx2
}  // namespace blora
