// Decoding the quantized weights of @blora/quant, with the CPU kernels' arithmetic:
// - 4-bit absmax (NF4, FP4): W[i] = table[code_i] * absmax[i / blocksize], one float32 product;
//   code_i is the high nibble of byte i / 2 for even i, the low nibble for odd i;
// - integer blocks: W[r, c] = alpha * q + beta of block (r / blockRows, c / blockCols), evaluated
//   in float64 (alpha * q is exact there) and rounded once to float32. The float64 steps use
//   round-to-nearest intrinsics so no FMA changes the result.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels.h"
#include "numeric.cuh"

namespace blora {

__device__ __forceinline__ uint32_t nibbleOf(const uint8_t* packed, int64_t i) {
  const uint8_t byte = packed[i >> 1];
  return (i & 1) ? (byte & 15u) : (byte >> 4);
}

__device__ __forceinline__ float fourBitValue(float tableValue, float absmax) { return __fmul_rn(tableValue, absmax); }

__device__ __forceinline__ float intValue(float alpha, uint32_t q, float beta) {
  return __double2float_rn(__dadd_rn(__dmul_rn(double(alpha), double(q)), double(beta)));
}

// A scale or offset as float32 (they are stored as float16 or float32).
__device__ __forceinline__ float scaleValue(float v) { return v; }
__device__ __forceinline__ float scaleValue(__half v) { return __half2float(v); }

// Writes a float32 weight value into an output of any float dtype (half types round to nearest even).
template <typename Out>
__device__ __forceinline__ Out weightOut(float v);
template <>
__device__ __forceinline__ float weightOut<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ double weightOut<double>(float v) {
  return double(v);
}
template <>
__device__ __forceinline__ __half weightOut<__half>(float v) {
  return Num<__half>::store(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 weightOut<__nv_bfloat16>(float v) {
  return Num<__nv_bfloat16>::store(v);
}

// Host-side checks shared by the quantized kernels.
void checkFourBitInputs(const char* op, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                        const FourBitLayout& layout);
void checkIntInputs(const char* op, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                    const IntLayout& layout);

}  // namespace blora
