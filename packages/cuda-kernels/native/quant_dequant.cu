// Dense weights from the quantized formats of @blora/quant (nf4Dequantize, int4Dequantize,
// int8Dequantize, dequantizeBlockwise8), bit-identical to the CPU kernels. The matmuls of
// larger batches dequantize into a scratch buffer with these kernels, then run a GEMM.
// Packed codes, absmax, tables, scales and offsets must be contiguous.
#include "kernels.h"
#include "launch.cuh"
#include "quant.cuh"

namespace blora {

namespace {

template <typename Out>
__global__ void fourBitDequantizeKernel(const uint8_t* packed, const float* absmax, const float* table, Out* out,
                                        int64_t n, int64_t blocksize) {
  __shared__ float codes[16];
  if (threadIdx.x < 16) codes[threadIdx.x] = table[threadIdx.x];
  __syncthreads();
  const int64_t pairs = (n + 1) / 2;
  BLORA_GRID_STRIDE_LOOP(p, pairs) {  // one byte: elements 2p (high nibble) and 2p + 1 (low nibble)
    const uint8_t byte = packed[p];
    const int64_t i = 2 * p;
    out[i] = weightOut<Out>(fourBitValue(codes[byte >> 4], absmax[i / blocksize]));
    if (i + 1 < n) out[i + 1] = weightOut<Out>(fourBitValue(codes[byte & 15], absmax[(i + 1) / blocksize]));
  }
}

template <typename Out, typename Scale>
__global__ void intDequantizeKernel(const uint8_t* codes, int bits, const Scale* scales, const Scale* offsets, Out* out,
                                    int64_t n, int64_t in, int64_t blockRows, int64_t blockCols) {
  const int64_t gridCols = in / blockCols;
  BLORA_GRID_STRIDE_LOOP(i, n) {
    const int64_t r = i / in, c = i % in;
    const int64_t block = (r / blockRows) * gridCols + c / blockCols;
    const uint32_t q = bits == 8 ? codes[i] : nibbleOf(codes, i);
    out[i] = weightOut<Out>(intValue(scaleValue(scales[block]), q, scaleValue(offsets[block])));
  }
}

__global__ void blockwise8Kernel(const uint8_t* codes, const float* absmax, const float* code, float* out, int64_t n,
                                 int64_t blocksize, double offset) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    const float scaled = __fmul_rn(code[codes[i]], absmax[i / blocksize]);
    out[i] = __double2float_rn(__dadd_rn(double(scaled), offset));
  }
}

void requireDense(const char* op, const TensorArg& t, DType dtype, int64_t numel, const char* role) {
  requireDType(op, t, dtype, role);
  requireContiguous(op, t, role);
  if (t.numel() != numel) {
    fail(std::string(op) + ": " + role + " " + t.describe() + " must have " + std::to_string(numel) + " elements");
  }
}

void requireWeightOutput(const char* op, const TensorArg& out, int64_t outFeatures, int64_t inFeatures) {
  requireContiguous(op, out, "output");
  if (out.numel() != outFeatures * inFeatures) {
    fail(std::string(op) + ": output " + out.describe() + " must have " + std::to_string(outFeatures * inFeatures) + " elements");
  }
}

}  // namespace

void checkFourBitInputs(const char* op, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                        const FourBitLayout& layout) {
  if (layout.outFeatures <= 0 || layout.inFeatures <= 0 || layout.blocksize <= 0) {
    fail(std::string(op) + ": outFeatures, inFeatures and blocksize must be positive");
  }
  const int64_t n = layout.outFeatures * layout.inFeatures;
  requireDense(op, packed, DType::UInt8, (n + 1) / 2, "packed codes");
  requireDense(op, absmax, DType::Float32, (n + layout.blocksize - 1) / layout.blocksize, "absmax");
  requireDense(op, table, DType::Float32, 16, "code table");
}

void checkIntInputs(const char* op, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                    const IntLayout& layout) {
  if (layout.bits != 4 && layout.bits != 8) fail(std::string(op) + ": bits must be 4 or 8");
  if (layout.outFeatures <= 0 || layout.inFeatures <= 0 || layout.blockRows <= 0 || layout.blockCols <= 0 ||
      layout.outFeatures % layout.blockRows != 0 || layout.inFeatures % layout.blockCols != 0) {
    fail(std::string(op) + ": blocks of " + std::to_string(layout.blockRows) + " x " + std::to_string(layout.blockCols) +
         " do not tile a weight [" + std::to_string(layout.outFeatures) + ", " + std::to_string(layout.inFeatures) + "]");
  }
  const int64_t n = layout.outFeatures * layout.inFeatures;
  const int64_t blocks = (layout.outFeatures / layout.blockRows) * (layout.inFeatures / layout.blockCols);
  requireDense(op, codes, DType::UInt8, layout.bits == 4 ? (n + 1) / 2 : n, "codes");
  if (scales.dtype != DType::Float32 && scales.dtype != DType::Float16) {
    fail(std::string(op) + ": scales " + scales.describe() + " must be float16 or float32");
  }
  requireDense(op, scales, scales.dtype, blocks, "scales");
  requireDense(op, offsets, scales.dtype, blocks, "offsets");
}

void launchFourBitDequantize(const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                             const TensorArg& out, const FourBitLayout& layout) {
  const char* op = "nf4Dequantize";
  checkFourBitInputs(op, packed, absmax, table, layout);
  requireWeightOutput(op, out, layout.outFeatures, layout.inFeatures);
  const int64_t n = layout.outFeatures * layout.inFeatures;
  visitDType<DTypeSet::Float>(out.dtype, op, [&](auto tag) {
    using Out = typename decltype(tag)::type;
    fourBitDequantizeKernel<Out><<<elementwiseBlocks((n + 1) / 2), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()),
        reinterpret_cast<const float*>(table.first()), reinterpret_cast<Out*>(out.first()), n, layout.blocksize);
  });
  checkLaunch(op);
}

void launchIntDequantize(const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets, const TensorArg& out,
                         const IntLayout& layout) {
  const char* op = layout.bits == 8 ? "int8Dequantize" : "int4Dequantize";
  checkIntInputs(op, codes, scales, offsets, layout);
  requireWeightOutput(op, out, layout.outFeatures, layout.inFeatures);
  const int64_t n = layout.outFeatures * layout.inFeatures;
  visitDType<DTypeSet::Float>(out.dtype, op, [&](auto tag) {
    using Out = typename decltype(tag)::type;
    auto launch = [&](auto scaleTag) {
      using Scale = typename decltype(scaleTag)::type;
      intDequantizeKernel<Out, Scale><<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
          reinterpret_cast<const uint8_t*>(codes.first()), layout.bits, reinterpret_cast<const Scale*>(scales.first()),
          reinterpret_cast<const Scale*>(offsets.first()), reinterpret_cast<Out*>(out.first()), n, layout.inFeatures,
          layout.blockRows, layout.blockCols);
    };
    if (scales.dtype == DType::Float16) launch(TypeTag<__half>{});
    else launch(TypeTag<float>{});
  });
  checkLaunch(op);
}

void launchDequantizeBlockwise8(const TensorArg& codes, const TensorArg& absmax, const TensorArg& code,
                                const TensorArg& out, int64_t blocksize, double offset) {
  const char* op = "dequantizeBlockwise8";
  if (blocksize <= 0) fail(std::string(op) + ": blocksize must be positive");
  const int64_t n = codes.numel();
  requireDense(op, codes, DType::UInt8, n, "codes");
  requireDense(op, absmax, DType::Float32, (n + blocksize - 1) / blocksize, "absmax");
  requireDense(op, code, DType::Float32, 256, "code");
  requireDense(op, out, DType::Float32, n, "output");
  if (n == 0) return;
  blockwise8Kernel<<<elementwiseBlocks(n), kElementwiseThreads, 0, stream()>>>(
      reinterpret_cast<const uint8_t*>(codes.first()), reinterpret_cast<const float*>(absmax.first()),
      reinterpret_cast<const float*>(code.first()), reinterpret_cast<float*>(out.first()), n, blocksize, offset);
  checkLaunch(op);
}

}  // namespace blora
