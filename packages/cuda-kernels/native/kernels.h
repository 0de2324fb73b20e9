// The kernel launchers, one group per .cu file. Each validates its arguments, queues its
// kernel on the stream and returns without waiting. Outputs are contiguous; inputs may be
// any strided view (stride 0 for broadcast dims) unless a comment says otherwise.
#pragma once

#include <cstdint>
#include <string>

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

// binary.cu: a and b have the output's shape (broadcast through stride 0). SiluBackward: a is
// silu's input x, b the output gradient dy.
enum class BinaryOp : int { Add, Sub, Mul, Div, Pow, Maximum, Minimum, SiluBackward, SiluMul, GeluBackward, GeluTanhBackward, Count };
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
// reduce_middle.cu: x is contiguous [outer, reduced, inner]; out[o, i] = reduction over r of x[o, r, i].
void launchReduceMiddle(ReduceOp op, const TensorArg& x, const TensorArg& out, int64_t outer, int64_t reduced,
                        int64_t inner);
// arg_reduce.cu: int32 out [outer, inner] = the index along the middle axis of a contiguous
// [outer, reduced, inner] x (any dtype, reduced >= 1) of its largest (isMax) or smallest value:
// the first on ties, the first NaN when there is one.
void launchArgReduce(bool isMax, const TensorArg& x, const TensorArg& out, int64_t outer, int64_t reduced, int64_t inner);

// softmax.cu: x and out are contiguous [rows, cols]; softmax (or log-softmax) of each row.
void launchSoftmaxRows(bool logSoftmax, const TensorArg& x, const TensorArg& out, int64_t rows, int64_t cols);

// a [..., M, K] @ b [..., K, N] -> out [..., M, N] with equal batch dims; a and b may have
// any strides (transposed views included).
// matmul_simt.cu: float32 (on the tensor cores at float32 accuracy where the operands allow,
// see sgemm.h; else on the CUDA cores) and float64 (CUDA cores).
void launchMatmulSimt(const TensorArg& a, const TensorArg& b, const TensorArg& out);
// matmul_simt.cu: the float32 kernel and plan a product of these operands runs, e.g.
// 'tf32x3-128x64 split-K 7x152' or 'sgemm-128x128'.
std::string sgemmKernelName(const TensorArg& a, const TensorArg& b, const TensorArg& out);
// matmul_tf32x3.cu: sets the float32 matmul path by name ('tf32x3' or 'simt', overriding
// BLORA_CUDA_FLOAT32_MATMUL) and returns the previous one's name.
std::string setFloat32MatmulPathByName(const std::string& name);
// matmul_tensorcore.cu: bfloat16 and float16 on the tensor cores (float32 accumulation).
void launchMatmulTensorCore(const TensorArg& a, const TensorArg& b, const TensorArg& out);
// matmul_tensorcore.cu: which kernel a matmul of these operands runs on ('wgmma-128x256',
// 'wgmma-128x128', 'pipelined-128x256', 'pipelined-128x128', 'mma-64x64'; float32 as
// sgemmKernelName; 'simt-64x64' for float64), for tests and benchmarks.
std::string matmulKernelName(const TensorArg& a, const TensorArg& b, const TensorArg& out);
// gemm_bf16_wgmma.cu: sets the tensor-core GEMM path by name ('auto', 'wgmma' or
// 'pipelined', overriding BLORA_CUDA_GEMM) and returns the previous one's name.
std::string setGemmPathByName(const std::string& name);
// gemm_bf16_wgmma.cu: true when the TMA + wgmma GEMM can run on this device (Hopper, with
// the build's sm_90a image loaded).
bool wgmmaAvailable();

// --- Training kernels. Axes are normalized; index tensors are int32 and already checked to
// lie in range by the op front ends. ---

// fill_copy.cu: src -> dst, both any strides (dst must not overlap itself), e.g. into a slice.
void launchCopyInto(const TensorArg& src, const TensorArg& dst);
// dst's window of src's shape starting at position *start (an int32 in device memory, read when the
// kernel runs) along `axis` = src (any strides, same dtype); a start that does not fit writes nothing.
void launchCopyIntoAt(const TensorArg& src, const TensorArg& dst, const TensorArg& start, int axis);

// indexing.cu: out (contiguous) = slices of x at `index` (1-D) along `axis`. Any dtype.
void launchIndexSelect(const TensorArg& x, const TensorArg& index, const TensorArg& out, int axis);
// indexing.cu: out[p] = x[p with coordinate `axis` replaced by index[p]] (out has index's shape).
void launchGather(const TensorArg& x, const TensorArg& index, const TensorArg& out, int axis);
// The accumulator dtype of scatterAdd / indexAdd for `dtype`: float32 for float32, float16 and
// bfloat16, float64 for float64, int32 for the integer dtypes.
DType accumulationDType(DType dtype);
// indexing.cu: acc (contiguous, x's shape, accumulationDType(src)) gets src[p] added at p with
// coordinate `axis` replaced by index[p], atomically (torch scatter_add).
void launchScatterAdd(const TensorArg& acc, const TensorArg& index, const TensorArg& src, int axis);
// indexing.cu: slice i of src along `axis` is added to slice index[i] of acc (torch index_add).
void launchIndexAdd(const TensorArg& acc, const TensorArg& index, const TensorArg& src, int axis);

// pool.cu: out [..., d / kernel] = means of runs of `kernel` elements of the last dim of x.
void launchAvgPool1d(const TensorArg& x, const TensorArg& out, int64_t kernel);
// pool.cu: dx (contiguous, dy's shape with the last dim times kernel) = each element of dy
// repeated `kernel` times along the last dim, divided by kernel (the gradient of avgPool1d).
void launchAvgPool1dBackward(const TensorArg& dy, const TensorArg& dx, int64_t kernel);
// pool.cu: out [..., d / kernel] = sums of runs of `kernel` elements of the last dim (the gradient
// of repeatInterleave along the last dim), summed in float64 and rounded once.
void launchSumRuns(const TensorArg& x, const TensorArg& out, int64_t kernel);
// pool.cu: out (contiguous) = x with every element repeated `repeats` times along `axis`, for a
// contiguous x; returns false (nothing launched) for any other layout.
bool launchRepeatInterleave(const TensorArg& x, const TensorArg& out, int64_t repeats, int axis);
// adapter_maps.cu: out (float32 / float64) = means of runs of `kernel` elements of the last dim
// of x (any float dtype); both contiguous.
void launchPoolCast(const TensorArg& x, const TensorArg& out, int64_t kernel);
// adapter_maps.cu: out[..., j * lambda + e] = base[...] + scale * z[..., j] (z float32 / float64;
// base, when given, of out's dtype); all contiguous.
void launchRepeatAdd(const TensorArg& z, const TensorArg* base, const TensorArg& out, int64_t lambda, double scale);

// random.cu: Philox-4x32-10 streams, the exact mapping of ops/random.ts in @blora/tensor.
struct PhiloxSeed {
  uint32_t k0 = 0, k1 = 0;  // the key: the 64-bit seed as low and high words
  uint64_t offset = 0;      // first counter block
};
void launchRandUniform(const TensorArg& out, const PhiloxSeed& seed);
void launchRandNormal(const TensorArg& out, const PhiloxSeed& seed);
// Values low + hi32(word * range), 1 <= range <= 2^32 (integer dtypes).
void launchRandInt(const TensorArg& out, const PhiloxSeed& seed, int64_t low, uint64_t range);
// 1 where (word >> 8) < threshold, else 0 (any dtype).
void launchRandBernoulli(const TensorArg& out, const PhiloxSeed& seed, uint32_t threshold);

// optim.cu: one AdamW update in place (param, m, v contiguous; grad any view), float64 per
// element in exactly the CPU kernel's order. The constants are computed by the caller.
struct AdamWConstants {
  double decay = 1;            // 1 - lr * weightDecay
  double beta1 = 0, oneMinusBeta1 = 1;
  double beta2 = 0, oneMinusBeta2 = 1;
  double stepSize = 0;         // lr / (1 - beta1^step)
  double sqrtCorrection2 = 1;  // sqrt(1 - beta2^step)
  double eps = 1e-8;
};
void launchAdamW(const TensorArg& param, const TensorArg& grad, const TensorArg& m, const TensorArg& v,
                 const AdamWConstants& c);

// rmsnorm.cu: x, dy contiguous [rows, D]; rstd contiguous [rows] (float64 for float64, else float32).
void launchRmsNorm(const TensorArg& x, const TensorArg& weight, const TensorArg& y, const TensorArg& rstd, double eps,
                   double offset);
// weightGrad false: dweight is zeroed and its column sums skipped (a frozen weight).
void launchRmsNormBackward(const TensorArg& dy, const TensorArg& x, const TensorArg& weight, const TensorArg& rstd,
                           const TensorArg& dx, const TensorArg& dweight, double offset, bool weightGrad);

// rope.cu: x [B, H, T, Dh] any strides, cos/sin [T, Dh/2] any strides, out contiguous.
void launchRope(const TensorArg& x, const TensorArg& cos, const TensorArg& sin, const TensorArg& out, bool inverse);

// cross_entropy.cu: logits [N, V] and targets [N] any strides. A target outside [0, V) that is
// not ignoreIndex is reported (the first such row), after waiting for the kernels.
struct TargetError {
  bool found = false;
  int64_t position = 0;
  int64_t target = 0;
};
TargetError launchCrossEntropy(const TensorArg& logits, const TensorArg& targets, const TensorArg& loss,
                               const TensorArg& lse, int64_t ignoreIndex, bool mean);
TargetError launchCrossEntropyBackward(const TensorArg& dloss, const TensorArg& logits, const TensorArg& targets,
                                       const TensorArg& lse, const TensorArg& dlogits, int64_t ignoreIndex, bool mean);

// attention.cu / attention_backward.cu: q [B, H, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv]
// and dO, o [B, H, T, Dv] any strides; lse [B, H, T] contiguous; outputs contiguous.
struct AttentionMask {
  bool causal = false;
  int64_t window = 0;  // 0: no sliding window
  double scale = 1;
  // Forward only: an int32 in device memory, the number of leading keys that take part (S for
  // the mask; clamped to [0, S]), read when the kernel runs; null: all S.
  const int32_t* keyLength = nullptr;
};
void launchAttention(const TensorArg& q, const TensorArg& k, const TensorArg& v, const TensorArg& o,
                     const TensorArg& lse, const AttentionMask& mask);
void launchAttentionBackward(const TensorArg& dO, const TensorArg& q, const TensorArg& k, const TensorArg& v,
                             const TensorArg& o, const TensorArg& lse, const TensorArg& dq, const TensorArg& dk,
                             const TensorArg& dv, const AttentionMask& mask);

// quant_dequant.cu / quant_gemv.cu: the quantized weights of @blora/quant. W is [out, in];
// element (r, c) has flat index r * in + c.
struct FourBitLayout {
  int64_t outFeatures = 0, inFeatures = 0, blocksize = 0;
};
struct IntLayout {
  int bits = 4;
  int64_t outFeatures = 0, inFeatures = 0, blockRows = 0, blockCols = 0;
};
// out (contiguous [out, in], any float dtype) = table[code] * absmax[i / blocksize] (float32).
void launchFourBitDequantize(const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                             const TensorArg& out, const FourBitLayout& layout);
// out = alpha * q + beta of the element's block, rounded once to float32.
void launchIntDequantize(const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets, const TensorArg& out,
                         const IntLayout& layout);
// out (float32 [m]) = code[q] * absmax[i / blocksize] + offset, in float32 steps.
void launchDequantizeBlockwise8(const TensorArg& codes, const TensorArg& absmax, const TensorArg& code,
                                const TensorArg& out, int64_t blocksize, double offset);
// skinny_linear.cu: out [M, N] (contiguous) = p · wᵀ for M <= kLinearMaxRows, p [M, K] the run
// means of λ consecutive values of x [M, K·λ] (float32 / float16 / bfloat16, rows dense along the
// last dim) and w [N, K] (rows dense) float32 with a float32 out, or (λ = 1) of x's 16-bit dtype
// with an out of that dtype; accumulated in float32. Returns false, launching nothing, when the
// operands do not suit it.
constexpr int kLinearMaxRows = 16;
bool launchSkinnyLinear(const TensorArg& x, const TensorArg& w, const TensorArg& out, int64_t lambda);
// Up to this many activation rows go through the GEMV kernels, which read each code once.
constexpr int64_t kQuantGemvMaxRows = 16;
// A term added to a quantized product before its one rounding: out[r][f] += scale *
// values[r][f / lambda] (values float32, contiguous [M, n / lambda]; see EpilogueAddend in
// quant_gemm.cuh). The GEMVs and fused GEMMs below that take one return whether they added it
// (true also when none was given); when they did not, the caller adds it in a pass of its own.
// Low-rank (the tensor-core GEMVs only): with `factor` (float32, contiguous [n / lambda, r]) the
// values are [M, r] and the term is scale * (values[r] . factor[f / lambda]), each dot product
// summed in float32 in the epilogue (the fused GEMMs do not take a factor).
struct GemmAddend {
  const TensorArg* values = nullptr;
  int64_t lambda = 1;
  double scale = 1;
  const TensorArg* factor = nullptr;
};

// out [M, out] (contiguous) = x [M, in] (any 2-D strides) · Wᵀ, M <= kQuantGemvMaxRows. settled:
// the weight (and table) are not written by the kernel just before (GemvOverlap::kSettled).
bool launchFourBitGemv(const TensorArg& x, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                       const TensorArg& out, const FourBitLayout& layout, bool settled, const GemmAddend& addend = {});
bool launchIntGemv(const TensorArg& x, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                   const TensorArg& out, const IntLayout& layout, bool settled, const GemmAddend& addend = {});
// The decode tile layout of an NF4 / FP4 weight (blocks of 64, inFeatures % 256 == 0; see
// FourBitTiles in quant_gemv_tc.cuh): tiles uint8 [ceil(out / 16) * in / 64 * 512], tileAbsmax
// float32 [ceil(out / 16) * in / 64 * 16], from packed codes and float32 absmax.
void launchFourBitDecodeTiles(const TensorArg& packed, const TensorArg& absmax, const TensorArg& tiles, const TensorArg& tileAbsmax,
                              const FourBitLayout& layout);
// out [M, out] (contiguous) = x [M, in] (bfloat16 / float16, dense 16-byte aligned rows, any M) · Wᵀ
// for W in the decode tile layout. settled: the tiles and table are not written by the kernel just
// before, so the GEMV may start reading them while it finishes (GemvOverlap::kSettled).
bool launchFourBitTilesGemv(const TensorArg& x, const TensorArg& tiles, const TensorArg& tileAbsmax, const TensorArg& table,
                            const TensorArg& out, const FourBitLayout& layout, bool settled, const GemmAddend& addend = {});
// The same two for an INT4 weight in blocks of 1 x 64 (IntTiles in quant_gemv_tc.cuh): the codes as
// NF4's, tile scales and tile offsets (float16 or float32, the weight's) as its absmax.
void launchIntDecodeTiles(const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets, const TensorArg& tiles,
                          const TensorArg& tileScales, const TensorArg& tileOffsets, const IntLayout& layout);
bool launchIntTilesGemv(const TensorArg& x, const TensorArg& tiles, const TensorArg& tileScales, const TensorArg& tileOffsets,
                        const TensorArg& out, const IntLayout& layout, bool settled, const GemmAddend& addend = {});
// quant_gemm.cu: the fused dequantize + GEMM on the tensor cores (on Hopper the TMA + wgmma
// kernel of quant_gemm_wgmma.cuh where the product fills the GPU), x bfloat16 / float16 [M, k]
// (dense rows, 16-byte aligned), out contiguous [M, n] of x's dtype: out = x · Wᵀ (transposed
// false: k = in, n = out) or x · W (transposed true: k = out, n = in). Returns false, launching
// nothing, when the operands or the layout do not suit it (inFeatures % 32, a power-of-two
// absmax blocksize >= 32 or block width, outFeatures % 8 for the transposed product, aligned
// codes); the caller then takes the dequantize-then-GEMM path.
// `addend`, when given, is added in the epilogue (GemmAddend above).
bool launchFourBitGemm(const TensorArg& x, const TensorArg& packed, const TensorArg& absmax, const TensorArg& table,
                       const TensorArg& out, const FourBitLayout& layout, bool transposed, const GemmAddend& addend = {});
bool launchIntGemm(const TensorArg& x, const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets,
                   const TensorArg& out, const IntLayout& layout, bool transposed, const GemmAddend& addend = {});

}  // namespace blora
