// The Hopper tensor-core GEMM for large bfloat16 / float16 products (gemm_bf16_wgmma.cu),
// tried first by the tensor-core matmul launcher, and the switch that picks the GEMM path.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <string>

#include "common.h"
#include "matmul_shape.cuh"

namespace blora {

// Which large-GEMM kernel the tensor-core matmul prefers. Auto: the wgmma kernel for large
// aligned products on a Hopper GPU, else the pipelined mma.sync kernel. Wgmma: the wgmma
// kernel for every product whose operands it can read, whatever the size. Pipelined: never
// the wgmma kernel. Products a kernel cannot take fall through to the next one either way.
enum class GemmPath : int { Auto = 0, Wgmma = 1, Pipelined = 2 };

// "auto", "wgmma" or "pipelined".
const char* gemmPathName(GemmPath path);
// Parses a path name; throws std::invalid_argument naming `source` for anything else
// (the empty string means auto).
GemmPath parseGemmPath(const std::string& text, const char* source);
// The current path: BLORA_CUDA_GEMM, read once at first use, unless setGemmPath changed it.
GemmPath gemmPath();
// Overrides the path for the rest of the process (tests, benchmarks); returns the old one.
GemmPath setGemmPath(GemmPath path);

// True when the device is compute capability 9.0 and runs this build's sm_90a image, so
// wgmma and the bulk tensor copies can be used (checked once with a one-thread kernel).
bool wgmmaAvailable();

namespace wgmma {
// How a Hopper GEMM walks a product: the block tile's second extent (bn, 256 or 128; 0: not on
// the kernel) and the units each tile's K steps are split into (gemm_split.cuh).
struct SplitPlan {
  int bn = 0;
  int splits = 1;
};
}  // namespace wgmma

// How the wgmma kernel would run this product under the current path (see launchGemmWgmma):
// its tile width and split, or bn 0 when the product does not suit the kernel.
wgmma::SplitPlan gemmWgmmaPlan(const TensorArg& a, const TensorArg& b, const MatmulShape& s);

// Queues out = a @ b on the wgmma kernel and returns true when it suits the product:
// bfloat16 or float16 on a device where wgmmaAvailable(), each operand dense along K or along
// M / N with its other matrix stride a multiple of 8 elements (and at least the dense extent),
// its first element 16-byte aligned, its batch dims collapsing to one stride (a multiple of 8
// elements, or 0 for a broadcast operand), and, on the auto path, a product whose units (tiles,
// or parts of a tile's K steps) fill at least half of the device. Returns false, queuing
// nothing, otherwise.
bool launchGemmWgmma(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s);


namespace wgmma {

// The driver's cuTensorMapEncodeTiled, reached through the runtime (null when missing).
PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder();

// How the copy engine reads one operand: dense along K (kMajor) or along M / N, `ld`
// elements between its rows, and a batch stride when it is a rank-3 map.
struct OperandPlan {
  bool kMajor = true;
  bool batched = false;
  int64_t ld = 0;
  int64_t batchStride = 0;
};

// Plans a 16-bit operand with K extent `extentK` and M / N extent `extentMN` for TMA: a
// 16-byte aligned start, a dense K or M / N dimension, the other stride a multiple of 8
// elements covering the dense extent, batch dims collapsing to one stride. False otherwise.
bool planOperand(const TensorArg& t, int64_t strideK, int64_t strideMN, int64_t extentK, int64_t extentMN,
                 int64_t batches, OperandPlan& p);

// A tensor map over a planned operand with 128B swizzle and boxes of 64 dense elements by
// `boxOuter` rows (K-major: boxOuter rows of M / N; M/N-major: 64 rows of K).
bool encodeOperand(CUtensorMap& map, const TensorArg& t, const OperandPlan& p, int64_t extentK, int64_t extentMN,
                   int64_t batches, int boxOuter);

}  // namespace wgmma

}  // namespace blora
