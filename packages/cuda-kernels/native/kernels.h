// The kernel launchers, one group per .cu file. Each validates its arguments, queues its
// kernel on the stream and returns without waiting. Outputs are contiguous; inputs may be
// any strided view (stride 0 for broadcast dims) unless a comment says otherwise.
#pragma once

#include <cstdint>

#include "common.h"

namespace blora {

// fill_copy.cu: every element of the contiguous `out` becomes the low dtypeSize bytes of `bits`.
void launchFill(const TensorArg& out, uint64_t bits);
// fill_copy.cu: a raw strided -> contiguous copy (same dtype; bits are kept exactly).
void launchCopy(const TensorArg& src, const TensorArg& dst);
// cast.cu: converts between any two dtypes (see numeric.cuh for the rounding rules).
void launchCast(const TensorArg& src, const TensorArg& dst);

// unary.cu
enum class UnaryOp : int { Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Silu, Relu, Square, Reciprocal, Sin, Cos, Gelu, GeluTanh, Count };
extern const char* const kUnaryOpNames[int(UnaryOp::Count)];
void launchUnary(UnaryOp op, const TensorArg& x, const TensorArg& out);
// unary.cu: out (uint8) = 1 where x is neither NaN nor infinite.
void launchIsFinite(const TensorArg& x, const TensorArg& out);

// binary.cu: a and b have the output's shape (broadcast through stride 0).
enum class BinaryOp : int { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Count };
extern const char* const kBinaryOpNames[int(BinaryOp::Count)];
void launchBinary(BinaryOp op, const TensorArg& a, const TensorArg& b, const TensorArg& out);

// compare.cu: comparisons (uint8 output), where, clamp.
enum class CompareOp : int { Eq, Ne, Lt, Le, Gt, Ge, Count };
extern const char* const kCompareOpNames[int(CompareOp::Count)];
void launchCompare(CompareOp op, const TensorArg& a, const TensorArg& b, const TensorArg& out);
// out = cond ? a : b, cond uint8.
void launchWhere(const TensorArg& cond, const TensorArg& a, const TensorArg& b, const TensorArg& out);
// out = min(max(x, lo), hi) with either bound optional; NaN stays NaN.
void launchClamp(const TensorArg& x, const TensorArg& out, bool hasLo, double lo, bool hasHi, double hi);

// reduce.cu: x is contiguous [rows, cols]; out[r] = reduction of row r.
enum class ReduceOp : int { Sum, Mean, Max, Min, Count };
extern const char* const kReduceOpNames[int(ReduceOp::Count)];
void launchReduceRows(ReduceOp op, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols);

// softmax.cu: x and out are contiguous [rows, cols]; softmax (or log-softmax) of each row.
void launchSoftmaxRows(bool logSoftmax, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols);

// a [..., M, K] @ b [..., K, N] -> out [..., M, N] with equal batch dims; a and b may have
// any strides (transposed views included).
// matmul_simt.cu: float32 and float64 on the CUDA cores.
void launchMatmulSimt(const TensorArg& a, const TensorArg& b, const TensorArg& out);
// matmul_tensorcore.cu: bfloat16 and float16 on the tensor cores (float32 accumulation).
void launchMatmulTensorCore(const TensorArg& a, const TensorArg& b, const TensorArg& out);

}  // namespace blora
