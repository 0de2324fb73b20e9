// JavaScript bindings of the strided copy, rope and the sums over axes (conventions as in
// addon.cc: storage typed arrays, element offsets and strides, every element a kernel will
// touch checked against its array first).
#include <nan.h>

#include <string>
#include <utility>

#include "args.h"
#include "layout_ops.h"
#include "thread_pool.h"

namespace blora {

namespace {

// copyF32(x, xOffset, sizes: Float64Array, strides: Float64Array, out, outOffset):
// out (dense) = the elements x[xOffset + sum of i_d * strides[d]] for i_d < sizes[d].
NAN_METHOD(CopyF32) {
  Args args(info, "copyF32");
  int64_t x_len, o_len, rank = 0, stride_count = 0;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  const double* size_values = args.f64(2, "sizes", &rank);
  const double* stride_values = args.f64(3, "strides", &stride_count);
  float* out = args.f32(4, "out", &o_len);
  const int64_t o_off = args.size(5, "outOffset");
  if (args.ok() && (rank != stride_count || rank > kMaxCopyRank)) {
    args.fail("sizes and strides must have the same length, at most " + std::to_string(kMaxCopyRank));
  }
  int64_t sizes[kMaxCopyRank], strides[kMaxCopyRank];
  std::pair<int64_t, int64_t> dims[kMaxCopyRank];
  int64_t numel = 1;
  for (int64_t d = 0; d < rank && args.ok(); ++d) {
    sizes[d] = static_cast<int64_t>(size_values[d]);
    strides[d] = static_cast<int64_t>(stride_values[d]);
    if (size_values[d] != static_cast<double>(sizes[d]) || sizes[d] < 0 ||
        stride_values[d] != static_cast<double>(strides[d])) {
      args.fail("sizes and strides must be integers (sizes >= 0)");
    }
    dims[d] = {sizes[d], strides[d]};
    numel *= sizes[d];
  }
  args.span("x", x_len, x_off, dims, dims + (args.ok() ? rank : 0));
  args.span("out", o_len, o_off, {{numel, 1}});
  if (!args.ok()) return args.throw_error();
  copy_strided_f32(kernel_threads(), x + x_off, static_cast<int>(rank), sizes, strides, out + o_off);
}

// ropeF32(x, xOffset, geometry: Float64Array [B, H, T, Dh, sb, sh, st], cos, cosOffset, sin,
//         sinOffset, out, outOffset, inverse)
NAN_METHOD(RopeF32) {
  Args args(info, "ropeF32");
  int64_t x_len, g_len, c_len, s_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  const double* g = args.f64(2, "geometry", &g_len);
  const float* cos = args.f32(3, "cos", &c_len);
  const int64_t c_off = args.size(4, "cosOffset");
  const float* sin = args.f32(5, "sin", &s_len);
  const int64_t s_off = args.size(6, "sinOffset");
  float* out = args.f32(7, "out", &o_len);
  const int64_t o_off = args.size(8, "outOffset");
  const bool inverse = args.boolean(9);
  int64_t v[7] = {};
  if (args.ok() && g_len != 7) args.fail("geometry must hold [B, H, T, Dh, sb, sh, st]");
  for (int i = 0; i < 7 && args.ok(); ++i) {
    v[i] = static_cast<int64_t>(g[i]);
    if (g[i] != static_cast<double>(v[i]) || (i < 4 && v[i] < 0)) args.fail("geometry must hold integers (sizes >= 0)");
  }
  const int64_t batch = v[0], heads = v[1], t = v[2], dh = v[3];
  if (args.ok() && dh % 2 != 0) args.fail("Dh must be even, got " + std::to_string(dh));
  args.span("x", x_len, x_off, {{batch, v[4]}, {heads, v[5]}, {t, v[6]}, {dh, 1}});
  args.span("cos", c_len, c_off, {{t * (dh / 2), 1}});
  args.span("sin", s_len, s_off, {{t * (dh / 2), 1}});
  args.span("out", o_len, o_off, {{batch * heads * t * dh, 1}});
  if (!args.ok()) return args.throw_error();
  rope_f32(kernel_threads(), {x + x_off, v[4], v[5], v[6]}, batch, heads, t, dh, cos + c_off, sin + s_off, inverse,
           out + o_off);
}

// sumF32(x, xOffset, outer, reduced, inner, out, outOffset, divisor): out [outer, inner] =
// sums over the middle dim of x (dense [outer, reduced, inner]) divided by divisor.
NAN_METHOD(SumF32) {
  Args args(info, "sumF32");
  int64_t x_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  const int64_t outer = args.size(2, "outer"), reduced = args.size(3, "reduced"), inner = args.size(4, "inner");
  float* out = args.f32(5, "out", &o_len);
  const int64_t o_off = args.size(6, "outOffset");
  const double divisor = args.number(7, "divisor");
  args.span("x", x_len, x_off, {{outer * reduced * inner, 1}});
  args.span("out", o_len, o_off, {{outer * inner, 1}});
  if (!args.ok()) return args.throw_error();
  sum_f32(kernel_threads(), x + x_off, outer, reduced, inner, divisor, out + o_off);
}

}  // namespace

void init_layout_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target) {
  Nan::SetMethod(target, "copyF32", CopyF32);
  Nan::SetMethod(target, "ropeF32", RopeF32);
  Nan::SetMethod(target, "sumF32", SumF32);
}

}  // namespace blora
