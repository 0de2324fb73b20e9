// y = x · Wᵀ for a few activation rows (M <= 16, e.g. decoding one token per sequence)
// straight from the quantized weight. Two kernels:
// - bfloat16 / float16 activations (the decode case) run on the tensor cores: a block of four
//   warps owns 16 weight rows and splits the input dim between its warps. Each lane reads 32
//   codes of two rows with two 16-byte loads, decodes them in registers (float32 value, then
//   the activation dtype) and feeds m16n8k16 MMAs whose k order is permuted so that the lane's
//   32 codes meet the same 32 activation columns, which it reads with 16-byte loads too. Several
//   chunks are loaded before any is used, so enough bytes are in flight to cover the latency.
//   Partial sums of the warps meet in shared memory; sums are float32.
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

// --- Tensor-core GEMV for bfloat16 / float16 activations. ---

constexpr int kTcWarps = 4;        // warps per block, all on the same 16 weight rows
constexpr int kTcChunkCols = 128;  // input columns a warp covers per chunk: 4 lanes x 32 codes

// 32-bit word p (activation pair p) of four 16-byte loads.
__device__ __forceinline__ uint32_t wordOf(const uint4 (&v)[4], int p) {
  const uint4& q = v[p >> 2];
  return (p & 3) == 0 ? q.x : (p & 3) == 1 ? q.y : (p & 3) == 2 ? q.z : q.w;
}

// Block b computes y[:, 16b .. 16b + 16). Lane (g = lane / 4, t = lane % 4) of a warp reads, for
// each of its chunks, the 32 codes at columns c = 128 * chunk + 32 t of rows 16b + g and
// 16b + g + 8, and the same 32 columns of activation rows 8 j + g (j < NTiles). MMA step s uses
// columns c + 4 s .. c + 4 s + 3 as the k slots 2t, 2t + 1, 2t + 8, 2t + 9 of both operands.
template <typename T, typename Source, int NTiles, int Unroll>
__global__ void __launch_bounds__(kTcWarps * 32)
    tcGemvKernel(const T* x, int64_t xStride, int rows, Source w, const float* table, T* y, int64_t outFeatures,
                 int64_t in) {
  __shared__ float codeValues[16];
  __shared__ float partial[kTcWarps][16][16];
  loadCodeValues(codeValues, table);
  __syncthreads();
  const CodeValues values{codeValues};
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int64_t r0 = int64_t(blockIdx.x) * 16;
  const int64_t rowA = r0 + g, rowB = r0 + g + 8;
  const bool hasA = rowA < outFeatures, hasB = rowB < outFeatures;
  const int64_t chunks = (in + kTcChunkCols - 1) / kTcChunkCols;
  float acc[NTiles][4] = {};
  for (int64_t base = warp; base < chunks; base += int64_t(kTcWarps) * Unroll) {
    // Every load of this round is issued before any decode, so they are in flight together.
    typename Source::Chunk ca[Unroll], cb[Unroll];
    uint4 xv[Unroll][NTiles][4];
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      const int64_t chunk = base + int64_t(u) * kTcWarps;
      const int64_t c = chunk * kTcChunkCols + 32 * t;
      const bool inRange = chunk < chunks && c < in;
      ca[u] = w.load(rowA, c, inRange && hasA);
      cb[u] = w.load(rowB, c, inRange && hasB);
#pragma unroll
      for (int j = 0; j < NTiles; j++) {
        const int m = 8 * j + g;
        const bool use = inRange && m < rows;
        const T* src = x + (use ? m * xStride + c : 0);
#pragma unroll
        for (int q = 0; q < 4; q++) xv[u][j][q] = use ? load16(src + 8 * q) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < Unroll; u++) {
      uint32_t a[kChunkPairs], b[kChunkPairs];
      w.template decode<T>(ca[u], values, a);
      w.template decode<T>(cb[u], values, b);
#pragma unroll
      for (int s = 0; s < 8; s++) {
#pragma unroll
        for (int j = 0; j < NTiles; j++) {
          mma16816<T>(acc[j], a[2 * s], b[2 * s], a[2 * s + 1], b[2 * s + 1], wordOf(xv[u][j], 2 * s),
                      wordOf(xv[u][j], 2 * s + 1));
        }
      }
    }
  }
  // acc[j] holds rows (g, g + 8) x activation rows 8 j + 2 t + (0, 1) of this warp's share.
#pragma unroll
  for (int j = 0; j < NTiles; j++) {
    partial[warp][g][8 * j + 2 * t] = acc[j][0];
    partial[warp][g][8 * j + 2 * t + 1] = acc[j][1];
    partial[warp][g + 8][8 * j + 2 * t] = acc[j][2];
    partial[warp][g + 8][8 * j + 2 * t + 1] = acc[j][3];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < 16 * 8 * NTiles; e += blockDim.x) {
    const int row = e & 15, m = e >> 4;
    if (m >= rows || r0 + row >= outFeatures) continue;
    float sum = 0;
#pragma unroll
    for (int v = 0; v < kTcWarps; v++) sum += partial[v][row][m];
    y[m * outFeatures + r0 + row] = Num<T>::store(sum);
  }
}

// Runs the tensor-core GEMV when x is bfloat16 / float16 with dense 16-byte aligned rows and the
// weight's rows are 16-byte aligned; returns false (nothing launched) otherwise.
template <typename Source>
bool tryTensorCoreGemv(const TensorArg& x, const Activations& a, const Source& w, const float* table,
                       const TensorArg& out, int64_t outFeatures, int64_t in) {
  if (x.dtype != DType::BFloat16 && x.dtype != DType::Float16) return false;
  if (in % kChunkCodes != 0 || reinterpret_cast<uintptr_t>(x.first()) % 16 != 0) return false;
  if (a.colStride != 1 || (a.rows > 1 && a.rowStride % 8 != 0)) return false;
  const unsigned blocks = unsigned((outFeatures + 15) / 16);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = reinterpret_cast<const T*>(x.first());
    T* yp = reinterpret_cast<T*>(out.first());
    const int rows = int(a.rows);
    if (rows <= 8) {
      tcGemvKernel<T, Source, 1, 4><<<blocks, kTcWarps * 32, 0, stream()>>>(xp, a.rowStride, rows, w, table, yp,
                                                                            outFeatures, in);
    } else {
      tcGemvKernel<T, Source, 2, 2><<<blocks, kTcWarps * 32, 0, stream()>>>(xp, a.rowStride, rows, w, table, yp,
                                                                            outFeatures, in);
    }
  };
  if (x.dtype == DType::BFloat16) launch(TypeTag<__nv_bfloat16>{});
  else launch(TypeTag<__half>{});
  return true;
}


unsigned gemvBlocks(int64_t outFeatures) { return unsigned((outFeatures + kGemvWarps - 1) / kGemvWarps); }

}  // namespace

void launchFourBitGemv(const TensorArg& x, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                       const TensorArg& out, const FourBitLayout& layout) {
  const char* op = "nf4Matmul";
  checkFourBitInputs(op, packed, absmax, table, layout);
  const Activations a = checkActivations(op, x, out, layout.inFeatures, layout.outFeatures);
  if (a.rows == 0) return;
  const bool vectorized = layout.inFeatures % 32 == 0 && aligned16(packed);
  if (vectorized && isPowerOfTwo(layout.blocksize) && layout.blocksize >= kChunkCodes) {
    const FourBitSource w{reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()),
                          layout.inFeatures, log2Exact(layout.blocksize)};
    if (tryTensorCoreGemv(x, a, w, reinterpret_cast<const float*>(table.first()), out, layout.outFeatures,
                          layout.inFeatures)) {
      checkLaunch("nf4Matmul (tensor-core GEMV)");
      return;
    }
  }
  visitDType<DTypeSet::Float>(x.dtype, op, [&](auto tag) {
    using X = typename decltype(tag)::type;
    fourBitGemvKernel<X><<<gemvBlocks(layout.outFeatures), kGemvWarps * 32, 0, stream()>>>(
        reinterpret_cast<const X*>(x.first()), a, reinterpret_cast<const uint8_t*>(packed.first()),
        reinterpret_cast<const float*>(absmax.first()), reinterpret_cast<const float*>(table.first()),
        reinterpret_cast<X*>(out.first()), layout.outFeatures, layout.inFeatures, layout.blocksize, vectorized);
  });
  checkLaunch("nf4Matmul (GEMV)");
}

void launchIntGemv(const TensorArg& x, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                   const TensorArg& out, const IntLayout& layout) {
  const char* op = layout.bits == 8 ? "int8Matmul" : "int4Matmul";
  checkIntInputs(op, codes, scales, offsets, layout);
  const Activations a = checkActivations(op, x, out, layout.inFeatures, layout.outFeatures);
  if (a.rows == 0) return;
  const bool vectorized = layout.inFeatures % (128 / layout.bits) == 0 && aligned16(codes);
  // Blocks narrower than 32 columns read scales per pair: the one-warp-per-row kernel serves them.
  if (layout.bits == 4 && layout.inFeatures % kChunkCodes == 0 && vectorized && isPowerOfTwo(layout.blockCols) &&
      layout.blockCols >= kChunkCodes) {
    auto tryScale = [&](auto scaleTag) {
      using Scale = typename decltype(scaleTag)::type;
      const IntSource<Scale, false> w{reinterpret_cast<const uint8_t*>(codes.first()), reinterpret_cast<const Scale*>(scales.first()),
                               reinterpret_cast<const Scale*>(offsets.first()), layout.inFeatures, layout.blockRows,
                               layout.inFeatures / layout.blockCols, log2Exact(layout.blockCols)};
      return tryTensorCoreGemv(x, a, w, nullptr, out, layout.outFeatures, layout.inFeatures);
    };
    const bool done = scales.dtype == DType::Float16 ? tryScale(TypeTag<__half>{}) : tryScale(TypeTag<float>{});
    if (done) {
      checkLaunch("int4Matmul (tensor-core GEMV)");
      return;
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
}

}  // namespace blora
