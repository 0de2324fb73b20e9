// Pieces shared by the fused 4-bit kernels on the tensor cores (quant_gemm.cu, quant_gemm_wgmma.cuh;
// the GEMV of quant_gemv_tc.cuh takes the MMA and the pair packing): reading 32 consecutive codes
// of one weight row with one 16-byte load, decoding them into pairs of 16-bit operands, the m16n8k16 MMA.
//
// Every weight value is first computed in float32 exactly as the dequantize kernels compute it
// (table[code] * absmax as one float32 product; alpha * q + beta with one rounding), then
// rounded to the activation dtype: the fused kernels multiply by the very weight that the
// dequantize-then-GEMM path would build.
//
// Requirements of the fused path (the launchers check them and fall back otherwise): codes of
// each 32-element chunk start on a 16-byte boundary (inFeatures % 32 == 0, aligned base), the
// absmax blocksize is a power of two >= 32, an integer block is a power of two wide (blocks
// narrower than 32 columns give several scale pairs per chunk).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "quant.cuh"

namespace blora {

// Codes read by one 16-byte load, and the pairs of 16-bit values they decode into.
constexpr int kChunkCodes = 32;
constexpr int kChunkPairs = kChunkCodes / 2;

// log2 of a power of two (host side).
inline int log2Exact(int64_t v) {
  int s = 0;
  while ((int64_t(1) << s) < v) s++;
  return s;
}

inline bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// Two float32 values as one register of two 16-bit values (lo in the low half), rounded to nearest even.
template <typename T>
__device__ __forceinline__ uint32_t packPair(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t packPair<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
template <>
__device__ __forceinline__ uint32_t packPair<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

// The optional term the fused GEMMs add in their epilogue (the adapter's update of a Q-BLoRA
// layer, or its input gradient): out[row][f] = acc + scale * values[row * stride + f / lambda],
// the product scale * value rounded to float32, added to the float32 accumulator, the sum
// rounded once to the output dtype. `values` null: nothing is added.
struct EpilogueAddend {
  const float* values = nullptr;
  int64_t stride = 0;  // values per row: the output features / lambda (low-rank: the rank)
  int lambda = 1;
  float scale = 1;
  const float* factor = nullptr;  // low-rank: [features / lambda, rank] (the GEMVs only: lowRankTerms in quant_gemv_tc.cuh)

  // Features are below 2^31 (the launchers check), so the division is a 32-bit one.
  __device__ __forceinline__ float at(int64_t row, int feature) const {
    return __fmul_rn(scale, values[row * stride + feature / lambda]);
  }
};

// The epilogue term of `addend` for an [m, n] output, or false when the kernels cannot read it
// (the caller then adds it in a pass of its own).
inline bool epilogueAddend(const GemmAddend& addend, int64_t m, int64_t n, EpilogueAddend& add) {
  add = EpilogueAddend{};
  if (!addend.values) return true;
  const TensorArg& v = *addend.values;
  if (v.dtype != DType::Float32 || !v.isContiguous() || addend.lambda < 1 || addend.lambda > INT32_MAX) return false;
  if (n % addend.lambda != 0 || n > INT32_MAX) return false;
  if (addend.factor) {  // low-rank: values [m, r], factor [n / lambda, r]
    const TensorArg& f = *addend.factor;
    if (f.dtype != DType::Float32 || !f.isContiguous() || m == 0 || v.numel() % m != 0) return false;
    const int64_t rank = v.numel() / m;
    if (rank < 1 || f.numel() != (n / addend.lambda) * rank) return false;
    add.values = reinterpret_cast<const float*>(v.first());
    add.factor = reinterpret_cast<const float*>(f.first());
    add.stride = rank;
    add.lambda = int(addend.lambda);
    add.scale = float(addend.scale);
    return true;
  }
  if (v.numel() != m * (n / addend.lambda)) return false;
  add.values = reinterpret_cast<const float*>(v.first());
  add.stride = n / addend.lambda;
  add.lambda = int(addend.lambda);
  add.scale = float(addend.scale);
  return true;
}

// Byte j (0..15) of a 16-byte load.
__device__ __forceinline__ uint32_t byteOf(const uint4& v, int j) {
  const uint32_t w = j < 4 ? v.x : j < 8 ? v.y : j < 12 ? v.z : v.w;
  return (w >> (8 * (j & 3))) & 0xffu;
}

__device__ __forceinline__ uint4 load16(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// The 16 float values a code indexes: the format's table for NF4 / FP4, 0..15 for integers.
// Kept in shared memory: entry e sits in bank e, so any pattern of reads is conflict-free.
struct CodeValues {
  const float* values;
  __device__ __forceinline__ float operator[](uint32_t code) const { return values[code]; }
};

// NF4 / FP4: W[i] = table[code_i] * absmax[i >> blockShift].
struct FourBitSource {
  static constexpr bool kScalesPerPair = false;  // one scale a chunk
  const uint8_t* packed;
  const float* absmax;
  int64_t in;
  int blockShift;

  struct Chunk {
    uint4 codes;
    float scale;
  };

  // The chunk of row r starting at column c (c % 32 == 0); zeros when `valid` is false.
  __device__ __forceinline__ Chunk load(int64_t r, int64_t c, bool valid) const {
    Chunk ch{make_uint4(0, 0, 0, 0), 0.f};
    if (valid) {
      const int64_t i = r * in + c;
      ch.codes = load16(packed + (i >> 1));
      ch.scale = __ldg(absmax + (i >> blockShift));
    }
    return ch;
  }

  // Pair p holds elements 2p (low half) and 2p + 1 of the chunk.
  template <typename T>
  __device__ __forceinline__ void decode(const Chunk& ch, CodeValues table, uint32_t (&out)[kChunkPairs]) const {
#pragma unroll
    for (int p = 0; p < kChunkPairs; p++) {
      const uint32_t byte = byteOf(ch.codes, p);
      out[p] = packPair<T>(fourBitValue(table[byte >> 4], ch.scale), fourBitValue(table[byte & 15u], ch.scale));
    }
  }
};

// Integer blocks: W[r, c] = alpha * q + beta of block (r / blockRows, c >> colShift). Narrow:
// blocks narrower than a chunk (colShift < 5), whose scales are read per pair while decoding.
template <typename Scale, bool Narrow>
struct IntSource {
  static constexpr bool kScalesPerPair = Narrow;
  const uint8_t* codes;
  const Scale* scales;
  const Scale* offsets;
  int64_t in;
  int64_t blockRows;
  int64_t gridCols;  // blocks per block-row
  int colShift;      // log2(blockCols)

  struct Chunk {
    uint4 codes;
    Scale alpha, beta;  // of the chunk's first block, as stored: converted when decoding, so a
                        // load issued ahead is not waited for at once
    int64_t block;      // index of that block; blocks narrower than 32 columns follow it
  };

  __device__ __forceinline__ Chunk load(int64_t r, int64_t c, bool valid) const {
    Chunk ch{make_uint4(0, 0, 0, 0), Scale(0.f), Scale(0.f), -1};
    if (valid) {
      const int64_t i = r * in + c;
      ch.codes = load16(codes + (i >> 1));
      // Row blocks of one row (the usual 1-D groups) skip the 64-bit division.
      ch.block = (blockRows == 1 ? r : r / blockRows) * gridCols + (c >> colShift);
      ch.alpha = scales[ch.block];
      ch.beta = offsets[ch.block];
    }
    return ch;
  }

  template <typename T>
  __device__ __forceinline__ void decode(const Chunk& ch, CodeValues table, uint32_t (&out)[kChunkPairs]) const {
    const bool oneBlock = !Narrow || ch.block < 0;
    const float chunkAlpha = scaleValue(ch.alpha), chunkBeta = scaleValue(ch.beta);
#pragma unroll
    for (int p = 0; p < kChunkPairs; p++) {
      const uint32_t byte = byteOf(ch.codes, p);
      float alpha = chunkAlpha, beta = chunkBeta;
      // A block narrower than the chunk: elements 2p and 2p + 1 share one (blockCols is even),
      // except for blockCols 1, where the second element takes the next block.
      float alpha1 = alpha, beta1 = beta;
      if (!oneBlock) {
        const int64_t b0 = ch.block + ((2 * p) >> colShift);
        const int64_t b1 = ch.block + ((2 * p + 1) >> colShift);
        alpha = scaleValue(scales[b0]);
        beta = scaleValue(offsets[b0]);
        alpha1 = scaleValue(scales[b1]);
        beta1 = scaleValue(offsets[b1]);
      }
      out[p] = packPair<T>(__fmaf_rn(alpha, table[byte >> 4], beta), __fmaf_rn(alpha1, table[byte & 15u], beta1));
    }
  }
};

// d += a · b on the tensor cores: a 16x16 (row-major fragment), b 16x8 (column fragment), float32 accumulators.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                        uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                 uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Fills the 16 code values into shared memory (threads 0..15): the table, or 0..15 for integers.
__device__ __forceinline__ void loadCodeValues(float* dst, const float* table) {
  if (threadIdx.x < 16) dst[threadIdx.x] = table ? table[threadIdx.x] : float(threadIdx.x);
}

}  // namespace blora
