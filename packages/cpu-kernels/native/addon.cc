// JavaScript bindings. Every function takes the storage typed arrays of the tensors plus
// element offsets, sizes and strides as numbers, checks that every element it will touch lies
// inside its array, and works on the arrays' memory directly (no copies). This file holds the
// module setup and the GEMM, elementwise, softmax and pooling functions; bindings_nn.cc,
// bindings_training.cc and bindings_layout.cc add the quantized matmuls, attention, rmsNorm,
// cross-entropy, AdamW, the strided copy, rope and sums.
#include <nan.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "gemm.h"
#include "kernels.h"
#include "ops.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Bumped whenever the JavaScript-facing signatures change, so a stale build is detected.
constexpr int kAddonVersion = 4;

const KernelTable* g_kernels = nullptr;

/** The widest table this CPU runs. */
const KernelTable& best_kernels() {
#if defined(BLORA_HAVE_AVX512)
  if (cpu_has_avx512()) return avx512_kernels();
#endif
#if defined(BLORA_HAVE_AVX2)
  if (cpu_has_avx2_fma()) return kAvx2Kernels;
#endif
  return kScalarKernels;
}

}  // namespace

const KernelTable& active_kernels() {
  if (!g_kernels) g_kernels = &best_kernels();
  return *g_kernels;
}

namespace {

const KernelTable& kernels() { return active_kernels(); }

v8::Local<v8::Object> info_object() {
  v8::Local<v8::Object> o = Nan::New<v8::Object>();
  Nan::Set(o, Nan::New("version").ToLocalChecked(), Nan::New(kAddonVersion));
  Nan::Set(o, Nan::New("isa").ToLocalChecked(), Nan::New(kernels().isa).ToLocalChecked());
  Nan::Set(o, Nan::New("threads").ToLocalChecked(), Nan::New(kernel_threads()));
  Nan::Set(o, Nan::New("avx2Supported").ToLocalChecked(), Nan::New(cpu_has_avx2_fma()));
  Nan::Set(o, Nan::New("avx512Supported").ToLocalChecked(), Nan::New(cpu_has_avx512()));
  return o;
}

// info(): { version, isa, threads, avx2Supported, avx512Supported }
NAN_METHOD(Info) { info.GetReturnValue().Set(info_object()); }

// configure(isa: 'auto' | 'avx512' | 'avx2' | 'scalar', threads: number (0 = all CPUs)): info()
NAN_METHOD(Configure) {
  Args args(info, "configure");
  const std::string isa = *Nan::Utf8String(info[0]);
  const int64_t threads = args.size(1, "threads");
  if (!args.ok()) return args.throw_error();
  if (isa == "scalar") {
    g_kernels = &kScalarKernels;
  } else if (isa == "auto") {
    g_kernels = nullptr;
  } else if (isa == "avx2") {
#if defined(BLORA_HAVE_AVX2)
    if (!cpu_has_avx2_fma()) return Nan::ThrowError("@blora/cpu-kernels configure: this CPU lacks AVX2/FMA");
    g_kernels = &kAvx2Kernels;
#else
    return Nan::ThrowError("@blora/cpu-kernels configure: built without AVX2 support");
#endif
  } else if (isa == "avx512") {
#if defined(BLORA_HAVE_AVX512)
    if (!cpu_has_avx512()) {
      return Nan::ThrowError("@blora/cpu-kernels configure: this CPU (or OS) lacks AVX-512 F/BW/DQ/VL/VNNI");
    }
    g_kernels = &avx512_kernels();
#else
    return Nan::ThrowError("@blora/cpu-kernels configure: built without AVX-512 support");
#endif
  } else {
    return Nan::ThrowRangeError(
        ("@blora/cpu-kernels configure: unknown isa '" + isa + "'; expected auto, avx512, avx2 or scalar").c_str());
  }
  set_kernel_threads(threads == 0 ? available_cpus() : static_cast<int>(std::min<int64_t>(threads, 256)));
  info.GetReturnValue().Set(info_object());
}

// matmulF32(a, b, out, outOffset, m, n, k, rsa, csa, rsb, csb, offsets):
// out[outOffset + t*m*n + i*n + j] = sum_p A_t(i, p) B_t(p, j), where offsets = [aOffset_t, bOffset_t, ...].
NAN_METHOD(MatmulF32) {
  Args args(info, "matmulF32");
  int64_t a_len, b_len, c_len, pairs;
  const float* a = args.f32(0, "a", &a_len);
  const float* b = args.f32(1, "b", &b_len);
  float* c = args.f32(2, "out", &c_len);
  const int64_t c_off = args.size(3, "outOffset");
  GemmShape s;
  s.m = args.size(4, "m");
  s.n = args.size(5, "n");
  s.k = args.size(6, "k");
  s.rsa = args.integer(7, "rsa");
  s.csa = args.integer(8, "csa");
  s.rsb = args.integer(9, "rsb");
  s.csb = args.integer(10, "csb");
  const double* offsets = args.f64(11, "offsets", &pairs);
  if (args.ok() && pairs % 2 != 0) args.fail("offsets must hold (a, b) pairs");
  const int64_t batch = pairs / 2;
  args.span("out", c_len, c_off, {{batch * s.m * s.n, 1}});
  std::vector<GemmOperands> items;
  if (args.ok()) items.resize(batch);
  for (int64_t t = 0; t < batch && args.ok(); ++t) {
    const int64_t ao = static_cast<int64_t>(offsets[2 * t]), bo = static_cast<int64_t>(offsets[2 * t + 1]);
    if (s.n > 0) args.span("a", a_len, ao, {{s.m, s.rsa}, {s.k, s.csa}});
    if (s.m > 0) args.span("b", b_len, bo, {{s.k, s.rsb}, {s.n, s.csb}});
    items[t] = {a + ao, b + bo, c + c_off + t * s.m * s.n};
  }
  if (!args.ok()) return args.throw_error();
  if (!gemm_f32(kernels(), kernel_threads(), s, items.data(), batch)) {
    return Nan::ThrowError("@blora/cpu-kernels matmulF32: out of memory for packing buffers");
  }
}

// binaryF32(op, x, xOffset, xStep, y, yOffset, yStep, out, outOffset, n): op 0..3 = add, sub, mul, div.
NAN_METHOD(BinaryF32) {
  Args args(info, "binaryF32");
  int64_t x_len, y_len, o_len;
  const int64_t op = args.integer(0, "op");
  const float* x = args.f32(1, "x", &x_len);
  const int64_t x_off = args.size(2, "xOffset"), xs = args.size(3, "xStep");
  const float* y = args.f32(4, "y", &y_len);
  const int64_t y_off = args.size(5, "yOffset"), ys = args.size(6, "yStep");
  float* out = args.f32(7, "out", &o_len);
  const int64_t o_off = args.size(8, "outOffset"), n = args.size(9, "n");
  if (args.ok() && (op < 0 || op > 3)) args.fail("op must be 0 (add), 1 (sub), 2 (mul) or 3 (div)");
  if (args.ok() && (xs > 1 || ys > 1)) args.fail("steps must be 0 or 1");
  args.span("x", x_len, x_off, {{n, xs}});
  args.span("y", y_len, y_off, {{n, ys}});
  args.span("out", o_len, o_off, {{n, 1}});
  if (!args.ok()) return args.throw_error();
  if (n == 0) return;
  binary_f32(kernels(), kernel_threads(), static_cast<BinaryOp>(op), x + x_off, xs, y + y_off, ys, out + o_off, n);
}

// activationF32(op, x, xOffset, out, outOffset, n): op 0 = sigmoid, 1 = silu.
NAN_METHOD(ActivationF32) {
  Args args(info, "activationF32");
  int64_t x_len, o_len;
  const int64_t op = args.integer(0, "op");
  const float* x = args.f32(1, "x", &x_len);
  const int64_t x_off = args.size(2, "xOffset");
  float* out = args.f32(3, "out", &o_len);
  const int64_t o_off = args.size(4, "outOffset"), n = args.size(5, "n");
  if (args.ok() && (op < 0 || op > 1)) args.fail("op must be 0 (sigmoid) or 1 (silu)");
  args.span("x", x_len, x_off, {{n, 1}});
  args.span("out", o_len, o_off, {{n, 1}});
  if (!args.ok()) return args.throw_error();
  if (n == 0) return;
  activation_f32(kernels(), kernel_threads(), static_cast<ActivationOp>(op), x + x_off, out + o_off, n);
}

// softmaxF32(x, xOffset, out, outOffset, rows, n, log)
NAN_METHOD(SoftmaxF32) {
  Args args(info, "softmaxF32");
  int64_t x_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  float* out = args.f32(2, "out", &o_len);
  const int64_t o_off = args.size(3, "outOffset"), rows = args.size(4, "rows"), n = args.size(5, "n");
  const bool log = args.boolean(6);
  args.span("x", x_len, x_off, {{rows * n, 1}});
  args.span("out", o_len, o_off, {{rows * n, 1}});
  if (!args.ok()) return args.throw_error();
  if (rows * n == 0) return;
  softmax_f32(kernels(), kernel_threads(), x + x_off, out + o_off, rows, n, log);
}

// avgPool1dF32(x, xOffset, out, outOffset, outputs, k)
NAN_METHOD(AvgPool1dF32) {
  Args args(info, "avgPool1dF32");
  int64_t x_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  float* out = args.f32(2, "out", &o_len);
  const int64_t o_off = args.size(3, "outOffset"), outputs = args.size(4, "outputs"), k = args.size(5, "k");
  if (args.ok() && k == 0) args.fail("k must be >= 1");
  args.span("x", x_len, x_off, {{outputs * k, 1}});
  args.span("out", o_len, o_off, {{outputs, 1}});
  if (!args.ok()) return args.throw_error();
  if (outputs == 0) return;
  avg_pool_f32(kernels(), kernel_threads(), x + x_off, out + o_off, outputs, k);
}

// repeatInterleaveF32(x, xOffset, out, outOffset, blocks, inner, repeats)
NAN_METHOD(RepeatInterleaveF32) {
  Args args(info, "repeatInterleaveF32");
  int64_t x_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  const int64_t x_off = args.size(1, "xOffset");
  float* out = args.f32(2, "out", &o_len);
  const int64_t o_off = args.size(3, "outOffset"), blocks = args.size(4, "blocks"), inner = args.size(5, "inner"),
                repeats = args.size(6, "repeats");
  args.span("x", x_len, x_off, {{blocks * inner, 1}});
  args.span("out", o_len, o_off, {{blocks * inner * repeats, 1}});
  if (!args.ok()) return args.throw_error();
  if (blocks * inner * repeats == 0) return;
  repeat_interleave_f32(kernel_threads(), x + x_off, out + o_off, blocks, inner, repeats);
}

// expF32(x, out): out[i] = exp(x[i]) with the approximation softmax uses (for accuracy tests).
NAN_METHOD(ExpF32) {
  Args args(info, "expF32");
  int64_t x_len, o_len;
  const float* x = args.f32(0, "x", &x_len);
  float* out = args.f32(1, "out", &o_len);
  if (args.ok() && x_len != o_len) args.fail("x and out must have the same length");
  if (!args.ok()) return args.throw_error();
  kernels().exp(x, out, x_len);
}

NAN_MODULE_INIT(Init) {
  Nan::SetMethod(target, "info", Info);
  Nan::SetMethod(target, "configure", Configure);
  Nan::SetMethod(target, "matmulF32", MatmulF32);
  Nan::SetMethod(target, "binaryF32", BinaryF32);
  Nan::SetMethod(target, "softmaxF32", SoftmaxF32);
  Nan::SetMethod(target, "activationF32", ActivationF32);
  Nan::SetMethod(target, "avgPool1dF32", AvgPool1dF32);
  Nan::SetMethod(target, "repeatInterleaveF32", RepeatInterleaveF32);
  Nan::SetMethod(target, "expF32", ExpF32);
  init_nn_bindings(target);
  init_training_bindings(target);
  init_layout_bindings(target);
}

}  // namespace
}  // namespace blora

NAN_MODULE_WORKER_ENABLED(blora_cpu, blora::Init)
