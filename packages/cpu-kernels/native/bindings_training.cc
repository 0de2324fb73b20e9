// JavaScript bindings of rmsNorm, cross-entropy and AdamW (conventions as in addon.cc: storage
// typed arrays, element offsets and strides, every element checked against its array first).
#include <nan.h>

#include <string>

#include "args.h"
#include "thread_pool.h"
#include "training_ops.h"

namespace blora {

namespace {

// rmsNormF32(x, xOffset, ldx, weight, weightOffset, y, yOffset, rstd, rstdOffset, rows, d, eps, offset)
NAN_METHOD(RmsNormF32) {
  Args args(info, "rmsNormF32");
  int64_t x_len, w_len, y_len, r_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset"), ldx = args.integer(2, "ldx");
  const float* w = args.f32(3, "weight", &w_len);
  const int64_t w_off = args.size(4, "weightOffset");
  float* y = args.f32(5, "y", &y_len);
  const int64_t y_off = args.size(6, "yOffset");
  float* rstd = args.f32(7, "rstd", &r_len);
  const int64_t r_off = args.size(8, "rstdOffset"), rows = args.size(9, "rows"), d = args.size(10, "d");
  const double eps = args.number(11, "eps"), offset = args.number(12, "offset");
  args.span("x", x_len, x_off, {{rows, ldx}, {d, 1}});
  args.span("weight", w_len, w_off, {{d, 1}});
  args.span("y", y_len, y_off, {{rows, d}, {d, 1}});
  args.span("rstd", r_len, r_off, {{rows, 1}});
  if (!args.ok()) return args.throw_error();
  rms_norm_f32(kernel_threads(), x + x_off, ldx, w + w_off, offset, eps, rows, d, y + y_off, rstd + r_off);
}

// rmsNormBackwardF32(dy, dyOffset, lddy, x, xOffset, ldx, weight, weightOffset, rstd, rstdOffset,
//                    dx, dxOffset, dweight, dweightOffset, rows, d, offset)
NAN_METHOD(RmsNormBackwardF32) {
  Args args(info, "rmsNormBackwardF32");
  int64_t dy_len, x_len, w_len, r_len, dx_len, dw_len;
  const float* dy = args.f32(0, "dy", &dy_len);
  const int64_t dy_off = args.size(1, "dyOffset"), lddy = args.integer(2, "lddy");
  const float* x = args.f32(3, "x", &x_len);
  const int64_t x_off = args.size(4, "xOffset"), ldx = args.integer(5, "ldx");
  const float* w = args.f32(6, "weight", &w_len);
  const int64_t w_off = args.size(7, "weightOffset");
  const float* rstd = args.f32(8, "rstd", &r_len);
  const int64_t r_off = args.size(9, "rstdOffset");
  float* dx = args.f32(10, "dx", &dx_len);
  const int64_t dx_off = args.size(11, "dxOffset");
  float* dw = args.f32(12, "dweight", &dw_len);
  const int64_t dw_off = args.size(13, "dweightOffset"), rows = args.size(14, "rows"), d = args.size(15, "d");
  const double offset = args.number(16, "offset");
  args.span("dy", dy_len, dy_off, {{rows, lddy}, {d, 1}});
  args.span("x", x_len, x_off, {{rows, ldx}, {d, 1}});
  args.span("weight", w_len, w_off, {{d, 1}});
  args.span("rstd", r_len, r_off, {{rows, 1}});
  args.span("dx", dx_len, dx_off, {{rows, d}, {d, 1}});
  args.span("dweight", dw_len, dw_off, {{d, 1}});
  if (!args.ok()) return args.throw_error();
  if (!rms_norm_backward_f32(kernel_threads(), dy + dy_off, lddy, x + x_off, ldx, w + w_off, offset, rstd + r_off, rows,
                             d, dx + dx_off, dw + dw_off)) {
    Nan::ThrowError("@blora/cpu-kernels rmsNormBackwardF32: out of memory for partial sums");
  }
}

/** Reads logits (first .. first + 2: logits, offset, ld), targets (first + 3, first + 4) and the sizes. */
struct CrossEntropyArgs {
  const float* logits;
  int64_t ld;
  const int32_t* targets;
  int64_t rows, v, ignore;
};

CrossEntropyArgs read_cross_entropy(Args& args, int64_t rows, int64_t v, int64_t ignore) {
  int64_t l_len, t_len;
  const float* logits = args.f32(0, "logits", &l_len);
  const int64_t l_off = args.size(1, "logitsOffset"), ld = args.integer(2, "ld");
  const int32_t* targets = args.i32(3, "targets", &t_len);
  const int64_t t_off = args.size(4, "targetsOffset");
  args.span("logits", l_len, l_off, {{rows, ld}, {v, 1}});
  args.span("targets", t_len, t_off, {{rows, 1}});
  if (!args.ok()) return {};
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t target = targets[t_off + r];
    if (target != ignore && (target < 0 || target >= v)) {
      args.fail("target " + std::to_string(target) + " at position " + std::to_string(r) + " is out of range [0, " +
                std::to_string(v) + ")");
      return {};
    }
  }
  return {logits + l_off, ld, targets + t_off, rows, v, ignore};
}

// crossEntropyF32(logits, logitsOffset, ld, targets, targetsOffset, lse, lseOffset, rows, v, ignoreIndex):
// fills lse and returns the summed loss of the rows that are not ignored.
NAN_METHOD(CrossEntropyF32) {
  Args args(info, "crossEntropyF32");
  int64_t s_len;
  float* lse = args.f32(5, "lse", &s_len);
  const int64_t s_off = args.size(6, "lseOffset"), rows = args.size(7, "rows"), v = args.size(8, "v");
  const int64_t ignore = args.integer(9, "ignoreIndex");
  args.span("lse", s_len, s_off, {{rows, 1}});
  const CrossEntropyArgs a = read_cross_entropy(args, rows, v, ignore);
  if (!args.ok()) return args.throw_error();
  double total = 0.0;
  if (!cross_entropy_f32(active_kernels(), kernel_threads(), a.logits, a.ld, a.targets, rows, v, ignore, lse + s_off,
                         &total)) {
    return Nan::ThrowError("@blora/cpu-kernels crossEntropyF32: out of memory for a row of exponentials");
  }
  info.GetReturnValue().Set(Nan::New(total));
}

// crossEntropyBackwardF32(logits, logitsOffset, ld, targets, targetsOffset, lse, lseOffset,
//                         dlogits, dlogitsOffset, rows, v, ignoreIndex, scale)
NAN_METHOD(CrossEntropyBackwardF32) {
  Args args(info, "crossEntropyBackwardF32");
  int64_t s_len, d_len;
  const float* lse = args.f32(5, "lse", &s_len);
  const int64_t s_off = args.size(6, "lseOffset");
  float* dlogits = args.f32(7, "dlogits", &d_len);
  const int64_t d_off = args.size(8, "dlogitsOffset"), rows = args.size(9, "rows"), v = args.size(10, "v");
  const int64_t ignore = args.integer(11, "ignoreIndex");
  const double scale = args.number(12, "scale");
  args.span("lse", s_len, s_off, {{rows, 1}});
  args.span("dlogits", d_len, d_off, {{rows, v}, {v, 1}});
  const CrossEntropyArgs a = read_cross_entropy(args, rows, v, ignore);
  if (!args.ok()) return args.throw_error();
  cross_entropy_backward_f32(active_kernels(), kernel_threads(), a.logits, a.ld, a.targets, lse + s_off, rows, v, ignore,
                             scale, dlogits + d_off);
}

// adamwStepF32(param, paramOffset, grad, gradOffset, m, mOffset, v, vOffset, n,
//              beta1, beta2, eps, decay, stepSize, sqrtCorrection2)
NAN_METHOD(AdamwStepF32) {
  Args args(info, "adamwStepF32");
  int64_t p_len, g_len, m_len, v_len;
  float* p = args.f32(0, "param", &p_len);
  const int64_t p_off = args.size(1, "paramOffset");
  const float* g = args.f32(2, "grad", &g_len);
  const int64_t g_off = args.size(3, "gradOffset");
  float* m = args.f32(4, "m", &m_len);
  const int64_t m_off = args.size(5, "mOffset");
  float* v = args.f32(6, "v", &v_len);
  const int64_t v_off = args.size(7, "vOffset"), n = args.size(8, "n");
  AdamwConstants c;
  c.beta1 = args.number(9, "beta1");
  c.beta2 = args.number(10, "beta2");
  c.eps = args.number(11, "eps");
  c.decay = args.number(12, "decay");
  c.step_size = args.number(13, "stepSize");
  c.sqrt_correction2 = args.number(14, "sqrtCorrection2");
  args.span("param", p_len, p_off, {{n, 1}});
  args.span("grad", g_len, g_off, {{n, 1}});
  args.span("m", m_len, m_off, {{n, 1}});
  args.span("v", v_len, v_off, {{n, 1}});
  if (!args.ok()) return args.throw_error();
  adamw_f32(kernel_threads(), p + p_off, g + g_off, m + m_off, v + v_off, n, c);
}

}  // namespace

void init_training_bindings(Nan::ADDON_REGISTER_FUNCTION_ARGS_TYPE target) {
  Nan::SetMethod(target, "rmsNormF32", RmsNormF32);
  Nan::SetMethod(target, "rmsNormBackwardF32", RmsNormBackwardF32);
  Nan::SetMethod(target, "crossEntropyF32", CrossEntropyF32);
  Nan::SetMethod(target, "crossEntropyBackwardF32", CrossEntropyBackwardF32);
  Nan::SetMethod(target, "adamwStepF32", AdamwStepF32);
}

}  // namespace blora
