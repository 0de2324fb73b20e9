// The pipelined tensor-core GEMM for large, aligned bfloat16 / float16 products
// (gemm_bf16_pipelined.cu), tried first by the tensor-core matmul launcher.
#pragma once

#include "common.h"
#include "matmul_shape.cuh"

namespace blora {

// The N extent of the pipelined kernel's block tile for this product (256 or 128), or 0
// when the product does not suit the kernel (see launchGemmPipelined).
int gemmPipelinedTileN(const TensorArg& a, const TensorArg& b, const MatmulShape& s);

// Queues out = a @ b on the pipelined kernel and returns true when the operands suit it:
// bfloat16 or float16, each operand dense along K or along M/N with its other matrix
// stride and batch strides multiples of 8 elements and its first element 16-byte aligned,
// and enough output tiles to fill the device. Returns false (queuing nothing) otherwise.
bool launchGemmPipelined(const TensorArg& a, const TensorArg& b, const TensorArg& out, const MatmulShape& s);

}  // namespace blora
