// JavaScript bindings of the quantized-weight matmuls and attention. Same conventions as
// addon.cc: storage typed arrays plus element offsets and strides, every element a kernel will
// touch checked against its array first, no copies.
#include <nan.h>

#include <string>

#include "args.h"
#include "attention.h"
#include "quant.h"
#include "thread_pool.h"

namespace blora {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/** a * b, or a recorded error when the product overflows. */
int64_t checked_product(Args& args, int64_t a, int64_t b, const char* what) {
  int64_t p = 0;
  if (__builtin_mul_overflow(a, b, &p)) args.fail(std::string(what) + " is too large");
  return p;
}

/** Reads `count` integers from the Float64Array argument i into dst. */
void read_integers(Args& args, int i, const char* name, int64_t count, int64_t* dst) {
  int64_t length;
  const double* values = args.f64(i, name, &length);
  if (!args.ok()) return;
  if (length != count) return args.fail(std::string(name) + " must hold " + std::to_string(count) + " numbers");
  for (int64_t j = 0; j < count; ++j) {
    const double v = values[j];
    if (!std::isfinite(v) || v != std::trunc(v) || std::fabs(v) > 9007199254740991.0) {
      return args.fail(std::string(name) + "[" + std::to_string(j) + "] must be an integer, got " + std::to_string(v));
    }
    dst[j] = static_cast<int64_t>(v);
  }
}

/** The common tail of both quantized matmuls: x, out and the checks that involve them. */
struct Activations {
  const float* x;
  int64_t rows, ldx;
  float* out;
};

/**
 * Reads x (args first .. first + 3: x, xOffset, rows, ldx) and out (out_arg, out_arg + 1:
 * out, outOffset) for a product with inner size k and output width cols.
 */
Activations read_activations(Args& args, int first, int out_arg, int64_t k, int64_t cols) {
  int64_t x_len, o_len;
  const float* x = args.f32(first, "x", &x_len);
  const int64_t x_off = args.size(first + 1, "xOffset"), rows = args.size(first + 2, "rows");
  const int64_t ldx = args.integer(first + 3, "ldx");
  float* out = args.f32(out_arg, "out", &o_len);
  const int64_t o_off = args.size(out_arg + 1, "outOffset");
  args.span("x", x_len, x_off, {{rows, ldx}, {k, 1}});
  args.span("out", o_len, o_off, {{checked_product(args, rows, cols, "out"), 1}});
  return {x + x_off, rows, ldx, out + o_off};
}

void run_quant_matmul(Args& args, const QuantWeight& w, bool transposed, const Activations& a, bool int8) {
  if (!args.ok()) return args.throw_error();
  if (!quant_matmul_f32(active_kernels(), kernel_threads(), w, transposed, a.x, a.rows, a.ldx, a.out, int8)) {
    Nan::ThrowError("@blora/cpu-kernels: out of memory for weight decoding buffers");
  }
}

// nf4MatmulF32(transposed, x, xOffset, rows, ldx, packed, packedOffset, absmax, absmaxOffset,
//              table, tableOffset, out, outOffset, outFeatures, inFeatures, blocksize, int8Activations)
NAN_METHOD(Nf4MatmulF32) {
  Args args(info, "nf4MatmulF32");
  const bool transposed = args.boolean(0);
  int64_t p_len, a_len, t_len;
  const uint8_t* packed = args.u8(5, "packed", &p_len);
  const int64_t p_off = args.size(6, "packedOffset");
  const float* absmax = args.f32(7, "absmax", &a_len);
  const int64_t a_off = args.size(8, "absmaxOffset");
  const float* table = args.f32(9, "table", &t_len);
  const int64_t t_off = args.size(10, "tableOffset");
  const int64_t out_f = args.size(13, "outFeatures"), in_f = args.size(14, "inFeatures");
  const int64_t blocksize = args.size(15, "blocksize");
  if (args.ok() && blocksize == 0) args.fail("blocksize must be >= 1");
  const int64_t n = checked_product(args, out_f, in_f, "the weight");
  const Activations a = read_activations(args, 1, 11, transposed ? out_f : in_f, transposed ? in_f : out_f);
  args.span("packed", p_len, p_off, {{ceil_div(n, 2), 1}});
  if (args.ok()) args.span("absmax", a_len, a_off, {{ceil_div(n, blocksize), 1}});
  args.span("table", t_len, t_off, {{16, 1}});
  if (!args.ok()) return args.throw_error();
  const QuantWeight w{QuantFormat::FourBit, packed + p_off, out_f, in_f, absmax + a_off, blocksize, table + t_off,
                      nullptr, nullptr, false, 1, 1};
  run_quant_matmul(args, w, transposed, a, args.boolean(16));
}

// intMatmulF32(bits, transposed, x, xOffset, rows, ldx, codes, codesOffset, scales, scalesOffset,
//              offsets, offsetsOffset, out, outOffset, outFeatures, inFeatures, blockRows, blockCols,
//              int8Activations)
// scales and offsets: both Float32Array, or both Uint16Array holding float16 bits.
NAN_METHOD(IntMatmulF32) {
  Args args(info, "intMatmulF32");
  const int64_t bits = args.integer(0, "bits");
  const bool transposed = args.boolean(1);
  int64_t c_len, s_len, f_len;
  bool s_half, f_half;
  const uint8_t* codes = args.u8(6, "codes", &c_len);
  const int64_t c_off = args.size(7, "codesOffset");
  const void* scales = args.f32_or_f16(8, "scales", &s_len, &s_half);
  const int64_t s_off = args.size(9, "scalesOffset");
  const void* offsets = args.f32_or_f16(10, "offsets", &f_len, &f_half);
  const int64_t f_off = args.size(11, "offsetsOffset");
  const int64_t out_f = args.size(14, "outFeatures"), in_f = args.size(15, "inFeatures");
  const int64_t block_rows = args.size(16, "blockRows"), block_cols = args.size(17, "blockCols");
  if (args.ok() && bits != 4 && bits != 8) args.fail("bits must be 4 or 8, got " + std::to_string(bits));
  if (args.ok() && s_half != f_half) args.fail("scales and offsets must have the same type", true);
  if (args.ok() && (block_rows == 0 || block_cols == 0 || out_f % block_rows != 0 || in_f % block_cols != 0)) {
    args.fail("blocks of " + std::to_string(block_rows) + " x " + std::to_string(block_cols) + " do not tile a weight [" +
              std::to_string(out_f) + ", " + std::to_string(in_f) + "]");
  }
  const int64_t n = checked_product(args, out_f, in_f, "the weight");
  const Activations a = read_activations(args, 2, 12, transposed ? out_f : in_f, transposed ? in_f : out_f);
  args.span("codes", c_len, c_off, {{bits == 4 ? ceil_div(n, 2) : n, 1}});
  if (!args.ok()) return args.throw_error();
  const int64_t blocks = (out_f / block_rows) * (in_f / block_cols);
  const size_t width = s_half ? sizeof(uint16_t) : sizeof(float);
  args.span("scales", s_len, s_off, {{blocks, 1}});
  args.span("offsets", f_len, f_off, {{blocks, 1}});
  if (!args.ok()) return args.throw_error();
  const QuantWeight w{bits == 4 ? QuantFormat::Int4 : QuantFormat::Int8, codes + c_off, out_f, in_f, nullptr, 1,
                      nullptr, static_cast<const char*>(scales) + s_off * width,
                      static_cast<const char*>(offsets) + f_off * width, s_half, block_rows, block_cols};
  run_quant_matmul(args, w, transposed, a, args.boolean(18));
}

// Attention operands: typed arrays, then a Float64Array of (offset, sb, sh, st) per operand and
// a Float64Array of the sizes [B, H, T, D, Hkv, S, Dv]; the last dim of every operand is dense.
struct AttentionArgs {
  AttentionShape shape;
  HeadMajor operands[9];
};

/** Which sizes an operand has: heads from H or Hkv, rows from T or S, columns from D, Dv or 1. */
enum class Heads { Query, KeyValue };
enum class Cols { Depth, ValueDepth, One };
struct OperandKind {
  const char* name;
  Heads heads;
  Cols cols;
};

void read_attention(Args& args, const OperandKind* kinds, int count, int geometry_arg, AttentionArgs* out) {
  int64_t dims[7] = {};
  int64_t geometry[36] = {};
  read_integers(args, geometry_arg, "geometry", 4 * count, geometry);
  read_integers(args, geometry_arg + 1, "dims", 7, dims);
  AttentionShape& s = out->shape;
  s = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], 1.0f, false, 0};
  for (int64_t d : dims) {
    if (args.ok() && d < 0) args.fail("dims must be >= 0, got " + std::to_string(d));
  }
  if (args.ok() && (s.kv_heads < 1 || s.heads % s.kv_heads != 0)) {
    args.fail("the query heads (" + std::to_string(s.heads) + ") must be a multiple of the key/value heads (" +
              std::to_string(s.kv_heads) + ")");
  }
  s.scale = static_cast<float>(args.number(geometry_arg + 2, "scale"));
  s.causal = args.boolean(geometry_arg + 3);
  s.window = args.size(geometry_arg + 4, "window");
  for (int i = 0; i < count && args.ok(); ++i) {
    const OperandKind& kind = kinds[i];
    int64_t length;
    float* data = args.f32(i, kind.name, &length);
    const int64_t* g = geometry + 4 * i;
    const int64_t heads = kind.heads == Heads::Query ? s.heads : s.kv_heads;
    const int64_t rows = kind.heads == Heads::Query ? s.queries : s.keys;
    const int64_t cols = kind.cols == Cols::Depth ? s.depth : kind.cols == Cols::ValueDepth ? s.value_depth : 1;
    args.span(kind.name, length, g[0], {{s.batch, g[1]}, {heads, g[2]}, {rows, g[3]}, {cols, 1}});
    out->operands[i] = {data + (args.ok() ? g[0] : 0), g[1], g[2], g[3]};
  }
}

// attentionF32(q, k, v, o, lse, geometry, dims, scale, causal, window)
NAN_METHOD(AttentionF32) {
  Args args(info, "attentionF32");
  static const OperandKind kinds[] = {
      {"q", Heads::Query, Cols::Depth},         {"k", Heads::KeyValue, Cols::Depth},
      {"v", Heads::KeyValue, Cols::ValueDepth}, {"o", Heads::Query, Cols::ValueDepth},
      {"lse", Heads::Query, Cols::One},
  };
  AttentionArgs a;
  read_attention(args, kinds, 5, 5, &a);
  if (!args.ok()) return args.throw_error();
  const HeadMajor* op = a.operands;
  if (!attention_f32(active_kernels(), kernel_threads(), a.shape, op[0], op[1], op[2], op[3], op[4])) {
    Nan::ThrowError("@blora/cpu-kernels attentionF32: out of memory for score rows");
  }
}

// attentionBackwardF32(dO, q, k, v, o, lse, dq, dk, dv, geometry, dims, scale, causal, window)
NAN_METHOD(AttentionBackwardF32) {
  Args args(info, "attentionBackwardF32");
  static const OperandKind kinds[] = {
      {"dO", Heads::Query, Cols::ValueDepth},   {"q", Heads::Query, Cols::Depth},
      {"k", Heads::KeyValue, Cols::Depth},      {"v", Heads::KeyValue, Cols::ValueDepth},
      {"o", Heads::Query, Cols::ValueDepth},    {"lse", Heads::Query, Cols::One},
      {"dq", Heads::Query, Cols::Depth},        {"dk", Heads::KeyValue, Cols::Depth},
      {"dv", Heads::KeyValue, Cols::ValueDepth},
  };
  AttentionArgs a;
  read_attention(args, kinds, 9, 9, &a);
  if (!args.ok()) return args.throw_error();
  const HeadMajor* op = a.operands;
  if (!attention_backward_f32(active_kernels(), kernel_threads(), a.shape, op[0], op[1], op[2], op[3], op[4], op[5],
                              op[6], op[7], op[8])) {
    Nan::ThrowError("@blora/cpu-kernels attentionBackwardF32: out of memory for score rows");
  }
}

}  // namespace

void init_nn_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target) {
  Nan::SetMethod(target, "nf4MatmulF32", Nf4MatmulF32);
  Nan::SetMethod(target, "intMatmulF32", IntMatmulF32);
  Nan::SetMethod(target, "attentionF32", AttentionF32);
  Nan::SetMethod(target, "attentionBackwardF32", AttentionBackwardF32);
}

}  // namespace blora
