// Standalone check and timing of the tensor-core attention kernels (native/attention_tc.cu,
// native/attention_tc_backward.cu) next to the SIMT kernels (native/attention.cu,
// native/attention_backward.cu), through the launchers the addon calls.
//
// Build: dev/build.sh attention_tc (sm_90a and sm_80, CUDA runtime linked statically). Run:
//   dev/attention_tc          checks, then timings
//   dev/attention_tc check    checks only
//   dev/attention_tc time     timings only
// Checks, on seeded random bfloat16 / float16 inputs:
// - small problems (odd T and S, causal, sliding window, grouped heads, T != S, q in the
//   [B, T, H, D] layout of a Llama layer): o, lse, dq, dk, dv of both paths against a float64
//   CPU reference; tolerance |x - ref| <= atol + rtol |ref| (bfloat16 2e-2 / 2e-2, float16
//   4e-3 / 4e-3, lse 1e-3 / 1e-3 on both);
// - the benchmark shapes: the tensor-core results against the SIMT kernels' (same tolerance);
// - the backward run twice: bitwise identical gradients;
// - guard elements past every output stay untouched.
// The exit code is non-zero when any check fails (or a kernel hangs). Timings: CUDA events,
// 2 warm-up runs, then the median of 10 (3 for the slow SIMT kernels), in ms and TFLOP/s
// (forward 4 B H D · visible pairs; backward counted as 2.5 times the forward, the usual
// FlashAttention convention; the kernels here do 3.5 times the forward's matmul work).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../native/allocator.cc"
#include "../native/device.cc"
#include "../native/attention.cu"
#include "../native/attention_backward.cu"
#include "../native/attention_tc.cu"
#include "../native/attention_tc_backward.cu"
#include "harness.cuh"

namespace attn_dev {

using namespace blora;

using dev::cudaOrDie;
using dev::failures;
using dev::waitOrDie;

double halfToDouble(uint16_t bits, bool bf16) {
  if (bf16) {
    const uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
  double v = exponent == 0 ? std::ldexp(mantissa, -24) : exponent == 31 ? INFINITY : std::ldexp(1024 + mantissa, exponent - 25);
  if (exponent == 31 && mantissa) v = NAN;
  return sign ? -v : v;
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Host-side random 16-bit values in [-amp, amp), as bit patterns of the dtype.
std::vector<uint16_t> randomHalves(size_t n, uint64_t seed, float amp, bool bf16) {
  std::vector<uint16_t> out(n);
  for (size_t i = 0; i < n; i++) {
    const float x = (float(mix(seed * 0x9E3779B97F4A7C15ull + i) >> 40) / float(1 << 24) * 2.f - 1.f) * amp;
    if (bf16) {
      uint32_t u;
      std::memcpy(&u, &x, 4);
      u += 0x7fffu + ((u >> 16) & 1u);
      out[i] = uint16_t(u >> 16);
    } else {
      const __half h = __float2half_rn(x);
      std::memcpy(&out[i], &h, 2);
    }
  }
  return out;
}

// One problem: q [B, H, T, D] (optionally stored [B, T, H, D]), k and v [B, Hkv, S, D] dense.
struct Problem {
  const char* name;
  bool bf16;
  int64_t b, h, hkv, t, s, d;
  bool causal;
  int64_t window;
  bool llamaLayout;  // q and dO stored [B, T, H, D]
};

constexpr int64_t kGuard = 64;  // guard elements after each output

struct Buffers {
  Problem p;
  void *q = nullptr, *k = nullptr, *v = nullptr, *dO = nullptr;
  void *o = nullptr, *lse = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  std::vector<uint16_t> hq, hk, hv, hdO;
  TensorArg aq, ak, av, adO, ao, alse, adq, adk, adv;
  AttentionMask mask;

  size_t qCount() const { return size_t(p.b * p.h * p.t * p.d); }
  size_t kCount() const { return size_t(p.b * p.hkv * p.s * p.d); }
};

TensorArg arg(void* data, DType dtype, int64_t b, int64_t h, int64_t t, int64_t d, bool headsMiddle) {
  TensorArg a;
  a.data = data;
  a.dtype = dtype;
  a.rank = 4;
  a.shape[0] = b, a.shape[1] = h, a.shape[2] = t, a.shape[3] = d;
  if (headsMiddle) {
    a.strides[0] = t * h * d, a.strides[1] = d, a.strides[2] = h * d, a.strides[3] = 1;
  } else {
    a.strides[0] = h * t * d, a.strides[1] = t * d, a.strides[2] = d, a.strides[3] = 1;
  }
  return a;
}

void* deviceAlloc(size_t bytes) {
  void* p = nullptr;
  cudaOrDie(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}

Buffers setUp(const Problem& p, uint64_t seed) {
  Buffers b;
  b.p = p;
  const DType dt = p.bf16 ? DType::BFloat16 : DType::Float16;
  const size_t nq = b.qCount(), nk = b.kCount(), rows = size_t(p.b * p.h * p.t);
  b.hq = randomHalves(nq, seed, 2.f, p.bf16);
  b.hk = randomHalves(nk, seed + 1, 2.f, p.bf16);
  b.hv = randomHalves(nk, seed + 2, 1.f, p.bf16);
  b.hdO = randomHalves(nq, seed + 3, 1.f, p.bf16);
  // Device copies in the stored layout (logical [B, H, T, D] values).
  auto upload = [&](const std::vector<uint16_t>& logical, bool headsMiddle, int64_t heads, int64_t len) {
    std::vector<uint16_t> stored(logical.size());
    for (int64_t i = 0; i < p.b; i++) for (int64_t j = 0; j < heads; j++) for (int64_t r = 0; r < len; r++) {
      const int64_t from = ((i * heads + j) * len + r) * p.d;
      const int64_t to = headsMiddle ? ((i * len + r) * heads + j) * p.d : from;
      std::memcpy(&stored[size_t(to)], &logical[size_t(from)], size_t(p.d) * 2);
    }
    void* d = deviceAlloc(stored.size() * 2);
    cudaOrDie(cudaMemcpy(d, stored.data(), stored.size() * 2, cudaMemcpyHostToDevice), "upload");
    return d;
  };
  b.q = upload(b.hq, p.llamaLayout, p.h, p.t);
  b.k = upload(b.hk, false, p.hkv, p.s);
  b.v = upload(b.hv, false, p.hkv, p.s);
  b.dO = upload(b.hdO, p.llamaLayout, p.h, p.t);
  b.o = deviceAlloc((nq + kGuard) * 2);
  b.dq = deviceAlloc((nq + kGuard) * 2);
  b.dk = deviceAlloc((nk + kGuard) * 2);
  b.dv = deviceAlloc((nk + kGuard) * 2);
  b.lse = deviceAlloc((rows + kGuard) * 4);
  b.aq = arg(b.q, dt, p.b, p.h, p.t, p.d, p.llamaLayout);
  b.adO = arg(b.dO, dt, p.b, p.h, p.t, p.d, p.llamaLayout);
  b.ak = arg(b.k, dt, p.b, p.hkv, p.s, p.d, false);
  b.av = arg(b.v, dt, p.b, p.hkv, p.s, p.d, false);
  b.ao = arg(b.o, dt, p.b, p.h, p.t, p.d, false);
  b.adq = arg(b.dq, dt, p.b, p.h, p.t, p.d, false);
  b.adk = arg(b.dk, dt, p.b, p.hkv, p.s, p.d, false);
  b.adv = arg(b.dv, dt, p.b, p.hkv, p.s, p.d, false);
  b.alse = arg(b.lse, DType::Float32, 1, p.b, p.h, p.t, false);
  b.alse.rank = 3;
  b.alse.shape[0] = p.b, b.alse.shape[1] = p.h, b.alse.shape[2] = p.t;
  b.alse.strides[0] = p.h * p.t, b.alse.strides[1] = p.t, b.alse.strides[2] = 1;
  b.mask.causal = p.causal;
  b.mask.window = p.window;
  b.mask.scale = 1.0 / std::sqrt(double(p.d));
  return b;
}

void tearDown(Buffers& b) {
  for (void* p : {b.q, b.k, b.v, b.dO, b.o, b.lse, b.dq, b.dk, b.dv}) cudaFree(p);
}

// Fills the outputs and their guards with NaN bit patterns (0xffff), on the kernels' stream: it is
// non-blocking, so a plain cudaMemset (legacy stream) could still be running when they start.
void poison(Buffers& b) {
  const size_t nq = b.qCount(), nk = b.kCount(), rows = size_t(b.p.b * b.p.h * b.p.t);
  cudaOrDie(cudaMemsetAsync(b.o, 0xff, (nq + kGuard) * 2, stream()), "memset");
  cudaOrDie(cudaMemsetAsync(b.dq, 0xff, (nq + kGuard) * 2, stream()), "memset");
  cudaOrDie(cudaMemsetAsync(b.dk, 0xff, (nk + kGuard) * 2, stream()), "memset");
  cudaOrDie(cudaMemsetAsync(b.dv, 0xff, (nk + kGuard) * 2, stream()), "memset");
  cudaOrDie(cudaMemsetAsync(b.lse, 0xff, (rows + kGuard) * 4, stream()), "memset");
}

void forward(Buffers& b) { launchAttention(b.aq, b.ak, b.av, b.ao, b.alse, b.mask); }
void backward(Buffers& b) {
  launchAttentionBackward(b.adO, b.aq, b.ak, b.av, b.ao, b.alse, b.adq, b.adk, b.adv, b.mask);
}

// Outputs read back as doubles: o, lse, dq, dk, dv.
struct Results {
  std::vector<double> out[5];
  std::vector<uint16_t> raw[4];  // o, dq, dk, dv bits (for the determinism check)
  bool guardsIntact = true;
};

Results download(const Buffers& b) {
  Results r;
  const size_t nq = b.qCount(), nk = b.kCount(), rows = size_t(b.p.b * b.p.h * b.p.t);
  void* halves[4] = {b.o, b.dq, b.dk, b.dv};
  const size_t counts[4] = {nq, nq, nk, nk};
  const int slots[4] = {0, 2, 3, 4};
  for (int i = 0; i < 4; i++) {
    std::vector<uint16_t> bits(counts[i] + kGuard);
    cudaOrDie(cudaMemcpy(bits.data(), halves[i], bits.size() * 2, cudaMemcpyDeviceToHost), "download");
    for (int64_t g = 0; g < kGuard; g++) r.guardsIntact &= bits[counts[i] + size_t(g)] == 0xffff;
    bits.resize(counts[i]);
    r.out[slots[i]].resize(counts[i]);
    for (size_t j = 0; j < counts[i]; j++) r.out[slots[i]][j] = halfToDouble(bits[j], b.p.bf16);
    r.raw[i] = std::move(bits);
  }
  std::vector<float> lse(rows + kGuard);
  cudaOrDie(cudaMemcpy(lse.data(), b.lse, lse.size() * 4, cudaMemcpyDeviceToHost), "download");
  for (int64_t g = 0; g < kGuard; g++) {
    uint32_t u;
    std::memcpy(&u, &lse[rows + size_t(g)], 4);
    r.guardsIntact &= u == 0xffffffffu;
  }
  r.out[1].assign(lse.begin(), lse.begin() + int64_t(rows));
  return r;
}

// Float64 reference of o, lse, dq, dk, dv from the inputs (plain loops).
Results reference(const Buffers& b) {
  const Problem& p = b.p;
  const int64_t d = p.d, group = p.h / p.hkv;
  const double scale = b.mask.scale;
  auto val = [&](const std::vector<uint16_t>& x) {
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); i++) out[i] = halfToDouble(x[i], p.bf16);
    return out;
  };
  const std::vector<double> q = val(b.hq), k = val(b.hk), v = val(b.hv), dO = val(b.hdO);
  Results r;
  r.out[0].assign(q.size(), 0.0);
  r.out[1].assign(size_t(p.b * p.h * p.t), -INFINITY);
  r.out[2].assign(q.size(), 0.0);
  r.out[3].assign(k.size(), 0.0);
  r.out[4].assign(k.size(), 0.0);
  AttnDims a{};
  a.t = p.t, a.s = p.s, a.causal = p.causal, a.window = p.window;
  std::vector<double> probs;
  for (int64_t bi = 0; bi < p.b; bi++) for (int64_t hi = 0; hi < p.h; hi++) {
    const int64_t kv = bi * p.hkv + hi / group;
    for (int64_t t = 0; t < p.t; t++) {
      const int64_t row = (bi * p.h + hi) * p.t + t, lo = a.keyLo(t), hi2 = a.keyHi(t);
      if (lo >= hi2) continue;
      probs.assign(size_t(hi2 - lo), 0.0);
      double mx = -INFINITY;
      for (int64_t s = lo; s < hi2; s++) {
        double dot = 0;
        for (int64_t c = 0; c < d; c++) dot += q[size_t(row * d + c)] * k[size_t((kv * p.s + s) * d + c)];
        probs[size_t(s - lo)] = dot * scale;
        mx = std::max(mx, dot * scale);
      }
      double sum = 0;
      for (double& x : probs) sum += std::exp(x - mx);
      for (double& x : probs) x = std::exp(x - mx) / sum;
      r.out[1][size_t(row)] = mx + std::log(sum);
      for (size_t i = 0; i < probs.size(); i++) {
        for (int64_t c = 0; c < d; c++) r.out[0][size_t(row * d + c)] += probs[i] * v[size_t((kv * p.s + lo + int64_t(i)) * d + c)];
      }
      double delta = 0;
      for (int64_t c = 0; c < d; c++) delta += dO[size_t(row * d + c)] * r.out[0][size_t(row * d + c)];
      for (size_t i = 0; i < probs.size(); i++) {
        const int64_t key = kv * p.s + lo + int64_t(i);
        double dp = 0;
        for (int64_t c = 0; c < d; c++) {
          dp += dO[size_t(row * d + c)] * v[size_t(key * d + c)];
          r.out[4][size_t(key * d + c)] += probs[i] * dO[size_t(row * d + c)];
        }
        const double ds = probs[i] * (dp - delta) * scale;
        for (int64_t c = 0; c < d; c++) {
          r.out[2][size_t(row * d + c)] += ds * k[size_t(key * d + c)];
          r.out[3][size_t(key * d + c)] += ds * q[size_t(row * d + c)];
        }
      }
    }
  }
  return r;
}

// Compares one output; prints the worst element. Returns true when within tolerance.
bool compare(const char* what, const char* name, const std::vector<double>& got, const std::vector<double>& want,
             double rtol, double atol) {
  size_t worst = 0, bad = 0;
  double worstExcess = -1, maxErr = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double x = got[i], y = want[i];
    bool ok;
    double err;
    if (std::isinf(y)) {
      ok = x == y;
      err = ok ? 0 : INFINITY;
    } else {
      err = std::fabs(x - y);
      ok = err <= atol + rtol * std::fabs(y);  // false for NaN
    }
    if (!ok) bad++;
    const double excess = std::isnan(err) ? INFINITY : err - (atol + rtol * std::fabs(y));
    if (excess > worstExcess) worstExcess = excess, worst = i;
    if (!std::isnan(err) && !std::isinf(err)) maxErr = std::max(maxErr, err);
  }
  const bool ok = bad == 0;
  std::printf("    %-4s %-9s max |err| %.3e  %s", name, what, maxErr, ok ? "ok" : "FAIL");
  if (!ok) std::printf(" (%zu bad; worst [%zu] = %.6g, expected %.6g)", bad, worst, got[worst], want[worst]);
  std::printf("\n");
  if (!ok) failures++;
  return ok;
}

const char* const kNames[5] = {"o", "lse", "dq", "dk", "dv"};

void compareAll(const char* what, const Results& got, const Results& want, bool bf16) {
  const double rtol = bf16 ? 2e-2 : 4e-3, atol = bf16 ? 2e-2 : 4e-3;
  for (int i = 0; i < 5; i++) {
    const bool stats = i == 1;
    compare(what, kNames[i], got.out[i], want.out[i], stats ? 1e-3 : rtol, stats ? 1e-3 : atol);
  }
  if (!got.guardsIntact) {
    std::printf("    FAIL: %s wrote past the end of an output\n", what);
    failures++;
  }
}

// Runs forward and backward on `path`; returns the results.
Results runPath(Buffers& b, const char* path) {
  setAttentionPathByName(path);
  poison(b);
  forward(b);
  backward(b);
  waitOrDie(path);
  return download(b);
}

std::string describe(const Problem& p) {
  char text[256];
  std::snprintf(text, sizeof text, "%s %s B=%lld H=%lld Hkv=%lld T=%lld S=%lld D=%lld%s%s%s", p.name,
                p.bf16 ? "bf16" : "fp16", (long long)p.b, (long long)p.h, (long long)p.hkv, (long long)p.t,
                (long long)p.s, (long long)p.d, p.causal ? " causal" : "",
                p.window ? (" window=" + std::to_string(p.window)).c_str() : "", p.llamaLayout ? " [B,T,H,D] q/dO" : "");
  return text;
}

void checkSmall(const Problem& p, uint64_t seed) {
  std::printf("  %s\n", describe(p).c_str());
  Buffers b = setUp(p, seed);
  const std::string kernel = attentionKernelName(b.aq, b.ak, b.av, &b.adO);
  if (kernel != "tensorcore") {
    std::printf("    FAIL: the tensor-core path does not apply (%s)\n", kernel.c_str());
    failures++;
  }
  const Results want = reference(b);
  const Results tc = runPath(b, "tensorcore");
  compareAll("tensorcore", tc, want, p.bf16);
  const Results simt = runPath(b, "simt");
  compareAll("simt", simt, want, p.bf16);
  // Determinism: a second tensor-core run gives the same bits.
  const Results again = runPath(b, "tensorcore");
  for (int i = 0; i < 4; i++) {
    if (again.raw[i] != tc.raw[i]) {
      std::printf("    FAIL: output %d differs between two tensor-core runs\n", i);
      failures++;
    }
  }
  tearDown(b);
}

void runChecks() {
  std::printf("\n== Correctness: tensor cores and SIMT vs a float64 CPU reference ==\n");
  const Problem small[] = {
      {"tiny", true, 1, 4, 1, 1, 1, 64, true, 0, false},
      {"odd", true, 2, 8, 2, 17, 17, 64, false, 0, false},
      {"odd", false, 2, 8, 2, 100, 100, 64, true, 0, false},
      {"odd", true, 2, 4, 1, 129, 129, 128, true, 0, false},
      {"odd", false, 1, 4, 1, 257, 257, 128, false, 0, false},
      {"window", true, 1, 8, 2, 257, 257, 64, true, 70, false},
      {"window", false, 2, 4, 4, 129, 129, 128, false, 40, false},
      {"T<S", true, 1, 4, 1, 77, 300, 64, true, 0, false},
      {"T>S", true, 1, 4, 1, 150, 40, 64, true, 0, false},
      {"T<S win", false, 1, 4, 2, 65, 200, 128, true, 50, false},
      {"llama", true, 2, 8, 2, 192, 192, 64, true, 0, true},
      {"llama", false, 1, 8, 2, 130, 130, 128, true, 0, true},
      // Long sequences and many heads, against the float64 reference too (a few seconds each).
      {"long", true, 1, 4, 1, 2048, 2048, 128, true, 0, true},
      {"long", true, 1, 4, 1, 2048, 2048, 128, true, 0, false},
      {"long", true, 1, 4, 1, 2048, 2048, 64, true, 0, true},
      {"wide", true, 2, 32, 8, 256, 256, 128, true, 0, true},
  };
  uint64_t seed = 1;
  for (const Problem& p : small) checkSmall(p, seed++);

  std::printf("\n== Correctness at the benchmark shapes: tensor cores vs SIMT ==\n");
  const Problem big[] = {
      {"tinyllama", true, 8, 32, 4, 512, 512, 64, true, 0, true},
      {"large", true, 4, 32, 8, 2048, 2048, 128, true, 0, true},
  };
  for (const Problem& p : big) {
    std::printf("  %s\n", describe(p).c_str());
    Buffers b = setUp(p, seed++);
    const Results simt = runPath(b, "simt");
    const Results tc = runPath(b, "tensorcore");
    compareAll("vs simt", tc, simt, p.bf16);
    const Results again = runPath(b, "tensorcore");
    for (int i = 0; i < 4; i++) {
      if (again.raw[i] != tc.raw[i]) {
        std::printf("    FAIL: output %d differs between two tensor-core runs\n", i);
        failures++;
      }
    }
    tearDown(b);
  }
}

// Median time of `launch` in ms.
template <typename Launch>
double timeMs(Launch&& launch, int runs) {
  for (int i = 0; i < 2; i++) launch();
  waitOrDie("warm-up");
  std::vector<cudaEvent_t> events(size_t(runs) + 1);
  for (cudaEvent_t& e : events) cudaEventCreate(&e);
  cudaEventRecord(events[0], stream());
  for (int i = 0; i < runs; i++) {
    launch();
    cudaEventRecord(events[size_t(i) + 1], stream());
  }
  waitOrDie("the timed runs");
  std::vector<float> elapsed(size_t(runs), 0.f);
  float* out = elapsed.data();
  for (int i = 0; i < runs; i++) cudaEventElapsedTime(out + i, events[size_t(i)], events[size_t(i) + 1]);
  for (cudaEvent_t& e : events) cudaEventDestroy(e);
  std::sort(elapsed.begin(), elapsed.end());
  return double(elapsed[elapsed.size() / 2]);
}

void runTimings() {
  std::printf("\n== Timings (median; TFLOP/s: forward 4 B H D pairs, backward 2.5 x that) ==\n");
  const Problem shapes[] = {
      {"tinyllama", true, 8, 32, 4, 512, 512, 64, true, 0, true},
      {"tinyllama", true, 8, 32, 4, 512, 512, 64, true, 0, false},
      {"large", true, 4, 32, 8, 2048, 2048, 128, true, 0, true},
      {"large", true, 4, 32, 8, 2048, 2048, 128, false, 0, false},
      {"large fp16", false, 4, 32, 8, 2048, 2048, 128, true, 0, false},
  };
  uint64_t seed = 100;
  for (const Problem& p : shapes) {
    Buffers b = setUp(p, seed++);
    AttnDims a{};
    a.t = p.t, a.s = p.s, a.causal = p.causal, a.window = p.window;
    double pairs = 0;
    for (int64_t t = 0; t < p.t; t++) pairs += double(std::max<int64_t>(0, a.keyHi(t) - a.keyLo(t)));
    const double fwdFlops = 4.0 * double(p.b * p.h * p.d) * pairs, bwdFlops = 2.5 * fwdFlops;
    std::printf("  %s\n", describe(p).c_str());
    auto report = [&](const char* what, double ms, double flops) {
      std::printf("    %-34s %9.3f ms  %7.1f TFLOP/s\n", what, ms, flops / ms * 1e-9);
    };
    setAttentionPathByName("tensorcore");
    forward(b);
    report("forward, tensor cores (4 warps)", timeMs([&] { forward(b); }, 10), fwdFlops);
    const AttnDims dims = attentionDims("attention", b.aq, b.ak, b.av, b.mask);
    report("forward, tensor cores (8 warps)", timeMs([&] {
             if (p.bf16) {
               if (p.d == 64) attn_tc::launchForward<__nv_bfloat16, 64, 8>(b.aq, b.ak, b.av, b.ao, b.alse, dims);
               else attn_tc::launchForward<__nv_bfloat16, 128, 8>(b.aq, b.ak, b.av, b.ao, b.alse, dims);
             } else {
               if (p.d == 64) attn_tc::launchForward<__half, 64, 8>(b.aq, b.ak, b.av, b.ao, b.alse, dims);
               else attn_tc::launchForward<__half, 128, 8>(b.aq, b.ak, b.av, b.ao, b.alse, dims);
             }
           }, 10), fwdFlops);
    report("backward, tensor cores (3 kernels)", timeMs([&] { backward(b); }, 10), bwdFlops);
    setAttentionPathByName("simt");
    report("forward, SIMT", timeMs([&] { forward(b); }, 3), fwdFlops);
    report("backward, SIMT", timeMs([&] { backward(b); }, 3), bwdFlops);
    tearDown(b);
  }
  setAttentionPathByName("auto");
}

}  // namespace attn_dev

int main(int argc, char** argv) {
  using namespace attn_dev;
  const std::string mode = dev::harnessMode(argc, argv);
  if (mode.empty()) return 2;
  try {
    if (mode != "time") runChecks();
    if (mode != "check") runTimings();
  } catch (const std::exception& e) {
    std::printf("FATAL: %s\n", e.what());
    return 2;
  }
  if (mode != "time") std::printf("\n%s: %d check(s) failed\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
