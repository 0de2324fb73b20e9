// y = x · Wᵀ for a few activation rows (M <= 16, e.g. decoding one token per sequence)
// straight from the quantized weight. Two kernels:
// - bfloat16 / float16 activations (the decode case) run on the tensor cores, in groups of 32
//   or 64 columns inside one quantization block whose scale multiplies the group's float32 sum
//   (quant_gemv_tc.cuh);
// - every other case (float32 / float64 activations, rows that are not 16-byte aligned, odd
//   block layouts) takes the one-warp-per-row kernel below: one warp per output row reads that
//   row's codes once, 16 bytes per lane and load where aligned, and decodes them exactly like
//   the CPU kernels. Sums are in the compute type of x (float32, or float64 for float64).
#include <type_traits>

#include "block_reduce.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "quant.cuh"
#include "quant_gemm.cuh"
#include "quant_gemv_tc.cuh"

namespace blora {

namespace {

constexpr int kGemvWarps = 8;  // output rows per block
constexpr int kMaxRows = int(kQuantGemvMaxRows);

struct Activations {
  int64_t rows, rowStride, colStride;
};

// acc[m] += sum_e x[m, c0 + e] * w[e] for the K weights of one chunk.
template <typename X, int K>
__device__ __forceinline__ void accumulateChunk(const X* x, const Activations& a, int64_t c0, const float (&w)[K],
                                                typename Num<X>::Compute (&acc)[kMaxRows]) {
  using C = typename Num<X>::Compute;
#pragma unroll
  for (int m = 0; m < kMaxRows; m++) {
    if (m >= a.rows) break;
    const X* row = x + m * a.rowStride + c0 * a.colStride;
    C sum = 0;
#pragma unroll
    for (int e = 0; e < K; e++) sum += Num<X>::load(row[e * a.colStride]) * C(w[e]);
    acc[m] += sum;
  }
}

// Sums each row's per-lane partials across the warp; lane 0 writes y[m, r].
template <typename X>
__device__ __forceinline__ void writeRow(typename Num<X>::Compute (&acc)[kMaxRows], const Activations& a, X* y,
                                         int64_t outFeatures, int64_t r) {
  using C = typename Num<X>::Compute;
#pragma unroll
  for (int m = 0; m < kMaxRows; m++) {
    if (m >= a.rows) break;
    const C total = warpReduce(acc[m], [](C p, C q) { return p + q; });
    if ((threadIdx.x & 31) == 0) y[m * outFeatures + r] = Num<X>::store(total);
  }
}

template <typename X>
__global__ void __launch_bounds__(kGemvWarps * 32)
    fourBitGemvKernel(const X* x, Activations a, const uint8_t* packed, const float* absmax, const float* table, X* y,
                      int64_t outFeatures, int64_t in, int64_t blocksize, bool vectorized) {
  using C = typename Num<X>::Compute;
  __shared__ float codes[16];
  if (threadIdx.x < 16) codes[threadIdx.x] = table[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (r >= outFeatures) return;
  C acc[kMaxRows] = {};
  const int64_t rowStart = r * in;
  if (vectorized) {
    constexpr int K = 32;  // codes per 16-byte load
    for (int64_t c0 = int64_t(lane) * K; c0 < in; c0 += 32 * K) {
      const uint4 raw = *reinterpret_cast<const uint4*>(packed + (rowStart + c0) / 2);
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&raw);
      const int64_t first = rowStart + c0;
      const bool oneBlock = first / blocksize == (first + K - 1) / blocksize;
      const float scale = absmax[first / blocksize];
      float w[K];
#pragma unroll
      for (int b = 0; b < K / 2; b++) {
        const float s0 = oneBlock ? scale : absmax[(first + 2 * b) / blocksize];
        const float s1 = oneBlock ? scale : absmax[(first + 2 * b + 1) / blocksize];
        w[2 * b] = fourBitValue(codes[bytes[b] >> 4], s0);
        w[2 * b + 1] = fourBitValue(codes[bytes[b] & 15], s1);
      }
      accumulateChunk<X, K>(x, a, c0, w, acc);
    }
  } else {
    for (int64_t c = lane; c < in; c += 32) {
      const int64_t i = rowStart + c;
      const float w[1] = {fourBitValue(codes[nibbleOf(packed, i)], absmax[i / blocksize])};
      accumulateChunk<X, 1>(x, a, c, w, acc);
    }
  }
  writeRow<X>(acc, a, y, outFeatures, r);
}

template <typename X, typename Scale, int Bits>
__global__ void __launch_bounds__(kGemvWarps * 32)
    intGemvKernel(const X* x, Activations a, const uint8_t* codes, const Scale* scales, const Scale* offsets, X* y,
                  int64_t outFeatures, int64_t in, int64_t blockRows, int64_t blockCols, bool vectorized) {
  using C = typename Num<X>::Compute;
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (r >= outFeatures) return;
  C acc[kMaxRows] = {};
  const int64_t rowStart = r * in;
  const int64_t blockRow = (r / blockRows) * (in / blockCols);
  if (vectorized) {
    constexpr int K = 128 / Bits;  // codes per 16-byte load
    for (int64_t c0 = int64_t(lane) * K; c0 < in; c0 += 32 * K) {
      const uint4 raw = *reinterpret_cast<const uint4*>(codes + (rowStart + c0) * Bits / 8);
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&raw);
      const bool oneBlock = c0 / blockCols == (c0 + K - 1) / blockCols;
      const float alpha = scaleValue(scales[blockRow + c0 / blockCols]);
      const float beta = scaleValue(offsets[blockRow + c0 / blockCols]);
      float w[K];
#pragma unroll
      for (int e = 0; e < K; e++) {
        const uint32_t q = Bits == 8 ? bytes[e] : ((e & 1) ? (bytes[e / 2] & 15u) : (bytes[e / 2] >> 4));
        const int64_t block = blockRow + (c0 + e) / blockCols;
        w[e] = oneBlock ? intValue(alpha, q, beta) : intValue(scaleValue(scales[block]), q, scaleValue(offsets[block]));
      }
      accumulateChunk<X, K>(x, a, c0, w, acc);
    }
  } else {
    for (int64_t c = lane; c < in; c += 32) {
      const int64_t i = rowStart + c;
      const int64_t block = blockRow + c / blockCols;
      const uint32_t q = Bits == 8 ? codes[i] : nibbleOf(codes, i);
      const float w[1] = {intValue(scaleValue(scales[block]), q, scaleValue(offsets[block]))};
      accumulateChunk<X, 1>(x, a, c, w, acc);
    }
  }
  writeRow<X>(acc, a, y, outFeatures, r);
}

Activations checkActivations(const char* op, const TensorArg& x, const TensorArg& out, int64_t inFeatures,
                             int64_t outFeatures) {
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  if (x.rank != 2 || x.shape[1] != inFeatures || x.shape[0] > kQuantGemvMaxRows || out.numel() != x.shape[0] * outFeatures) {
    fail(std::string(op) + ": expected x [M <= " + std::to_string(kQuantGemvMaxRows) + ", " + std::to_string(inFeatures) +
         "] and an output of M x " + std::to_string(outFeatures) + ", got " + x.describe() + " and " + out.describe());
  }
  return {x.shape[0], x.strides[0], x.strides[1]};
}

bool aligned16(const TensorArg& t) { return reinterpret_cast<uintptr_t>(t.first()) % 16 == 0; }

// --- Tensor-core GEMV for bfloat16 / float16 activations (quant_gemv_tc.cuh). ---

// Columns a group of the tensor-core GEMV spans: 64 where blocks and rows allow, else 32; 0 when
// the weight does not suit it (blocks narrower than 32 columns or not a power of two, rows that
// are not whole groups).
int gemvGroupColumns(int64_t inFeatures, int64_t blockColumns) {
  if (!isPowerOfTwo(blockColumns)) return 0;
  if (blockColumns >= 64 && inFeatures % 64 == 0) return 64;
  if (blockColumns >= 32 && inFeatures % 32 == 0) return 32;
  return 0;
}

// Runs the tensor-core GEMV when x is bfloat16 / float16 with dense 16-byte aligned rows;
// returns false (nothing launched) otherwise. makeSource() builds the weight's source (GemvArgs
// and the source are the kernel's two parameters). A dependent launch that waits before reading
// anything; settled (the weight and table are not written by the kernel just before), up to 8
// rows, one that reads the table and first weight turn before it waits (GemvOverlap). `add`: the
// epilogue term (EpilogueAddend), added before each output's one rounding.
template <typename MakeSource>
bool tryTensorCoreGemv(const TensorArg& x, const Activations& a, int groupColumns, const MakeSource& makeSource,
                       const float* table, const TensorArg& out, int64_t outFeatures, int64_t in, bool settled,
                       const EpilogueAddend& add) {
  if (groupColumns == 0 || (x.dtype != DType::BFloat16 && x.dtype != DType::Float16)) return false;
  if (reinterpret_cast<uintptr_t>(x.first()) % 16 != 0 || a.colStride != 1 || (a.rows > 1 && a.rowStride % 8 != 0)) return false;
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const GemvOverlap overlap = settled ? GemvOverlap::kSettled : GemvOverlap::kLaunch;
    const GemvArgs<T> args{reinterpret_cast<const T*>(x.first()), a.rowStride, int(a.rows), table, reinterpret_cast<T*>(out.first()),
                           outFeatures, in, overlap, add};
    const auto w = makeSource();
    const cudaError_t err = groupColumns == 64 ? launchGemvGroups<T, decltype(w), 64>(args, w, stream())
                                               : launchGemvGroups<T, decltype(w), 32>(args, w, stream());
    if (err != cudaSuccess) fail(std::string("tensor-core GEMV launch: ") + cudaGetErrorString(err));
  };
  if (x.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  return true;
}

unsigned gemvBlocks(int64_t outFeatures) { return unsigned((outFeatures + kGemvWarps - 1) / kGemvWarps); }

}  // namespace

bool launchFourBitGemv(const TensorArg& x, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                       const TensorArg& out, const FourBitLayout& layout, bool settled, const GemmAddend& addend) {
  const char* op = "nf4Matmul";
  checkFourBitInputs(op, packed, absmax, table, layout);
  const Activations a = checkActivations(op, x, out, layout.inFeatures, layout.outFeatures);
  if (a.rows == 0) return true;
  EpilogueAddend add;
  const bool addable = epilogueAddend(addend, a.rows, layout.outFeatures, add);
  const bool vectorized = layout.inFeatures % 32 == 0 && aligned16(packed);
  const int groupColumns = vectorized ? gemvGroupColumns(layout.inFeatures, layout.blocksize) : 0;
  const auto source = [&] {
    return FourBitGroups{reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()),
                         layout.inFeatures, log2Exact(layout.blocksize)};
  };
  if (tryTensorCoreGemv(x, a, groupColumns, source, reinterpret_cast<const float*>(table.first()), out, layout.outFeatures,
                        layout.inFeatures, settled, addable ? add : EpilogueAddend{})) {
    checkLaunch("nf4Matmul (tensor-core GEMV)");
    return addable;
  }
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using X = typename decltype(tag)::type;
    fourBitGemvKernel<X><<<gemvBlocks(layout.outFeatures), kGemvWarps * 32, 0, stream()>>>(
        reinterpret_cast<const X*>(x.first()), a, reinterpret_cast<const uint8_t*>(packed.first()),
        reinterpret_cast<const float*>(absmax.first()), reinterpret_cast<const float*>(table.first()),
        reinterpret_cast<X*>(out.first()), layout.outFeatures, layout.inFeatures, layout.blocksize, vectorized);
  });
  checkLaunch("nf4Matmul (GEMV)");
  return !addend.values;
}

bool launchIntGemv(const TensorArg& x, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                   const TensorArg& out, const IntLayout& layout, bool settled, const GemmAddend& addend) {
  const char* op = layout.bits == 8 ? "int8Matmul" : "int4Matmul";
  checkIntInputs(op, codes, scales, offsets, layout);
  const Activations a = checkActivations(op, x, out, layout.inFeatures, layout.outFeatures);
  if (a.rows == 0) return true;
  EpilogueAddend add;
  const bool addable = epilogueAddend(addend, a.rows, layout.outFeatures, add);
  const bool vectorized = layout.inFeatures % (128 / layout.bits) == 0 && aligned16(codes);
  // Blocks narrower than 32 columns take the one-warp-per-row kernel.
  if (layout.bits == 4 && vectorized) {
    const int groupColumns = gemvGroupColumns(layout.inFeatures, layout.blockCols);
    auto tryScale = [&](auto scaleTag) {
      using Scale = typename decltype(scaleTag)::type;
      const auto source = [&] {
        return IntGroups<Scale>{reinterpret_cast<const uint8_t*>(codes.first()), reinterpret_cast<const Scale*>(scales.first()),
                                reinterpret_cast<const Scale*>(offsets.first()), layout.inFeatures, layout.blockRows,
                                layout.inFeatures / layout.blockCols, log2Exact(layout.blockCols)};
      };
      return tryTensorCoreGemv(x, a, groupColumns, source, nullptr, out, layout.outFeatures, layout.inFeatures, settled,
                               addable ? add : EpilogueAddend{});
    };
    const bool done = scales.dtype == DType::Float16 ? tryScale(TypeTag<__half>{}) : tryScale(TypeTag<float>{});
    if (done) {
      checkLaunch("int4Matmul (tensor-core GEMV)");
      return addable;
    }
  }
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using X = typename decltype(tag)::type;
    auto launch = [&](auto scaleTag, auto bitsTag) {
      using Scale = typename decltype(scaleTag)::type;
      constexpr int Bits = decltype(bitsTag)::value;
      intGemvKernel<X, Scale, Bits><<<gemvBlocks(layout.outFeatures), kGemvWarps * 32, 0, stream()>>>(
          reinterpret_cast<const X*>(x.first()), a, reinterpret_cast<const uint8_t*>(codes.first()),
          reinterpret_cast<const Scale*>(scales.first()), reinterpret_cast<const Scale*>(offsets.first()),
          reinterpret_cast<X*>(out.first()), layout.outFeatures, layout.inFeatures, layout.blockRows, layout.blockCols,
          vectorized);
    };
    using Four = std::integral_constant<int, 4>;
    using Eight = std::integral_constant<int, 8>;
    const bool halfScales = scales.dtype == DType::Float16;
    if (layout.bits == 4) {
      if (halfScales) launch(TypeTag<__half>{}, Four{});
      else launch(TypeTag<float>{}, Four{});
    } else {
      if (halfScales) launch(TypeTag<__half>{}, Eight{});
      else launch(TypeTag<float>{}, Eight{});
    }
  });
  checkLaunch(layout.bits == 8 ? "int8Matmul (GEMV)" : "int4Matmul (GEMV)");
  return !addend.values;
}

}  // namespace blora
