// Standalone check and timing of the float32 GEMM (native/matmul_simt.cu): its 3xTF32
// tensor-core kernel (native/matmul_tf32x3.cu) next to its CUDA-core SGEMM.
//
// Build: dev/build.sh sgemm (sm_90a and sm_80, CUDA runtime linked statically). Run:
//   dev/sgemm          checks, then timings
//   dev/sgemm check    checks only
//   dev/sgemm time     timings only
// The checks compare the launcher (and every tile configuration of both kernels forced, with
// and without a split of K) with a naive GPU reference that accumulates in float64, on seeded
// random inputs: odd sizes, all four operand layouts, padded and misaligned operands (the
// scalar load path), operands dense along neither dim, batches (a broadcast operand too) and
// K = 0. Every element must be written, nothing past the output, and a split-K product must be
// bitwise identical from run to run. The exit code is non-zero when any check fails. Timings:
// CUDA events, 3 warm-up runs, then the median of 20, rotating over copies of the operands that
// together exceed the L2 cache; the low-rank adapter products of a TinyLlama training step
// (4096 tokens, rank 64 and the λ = 2 variant) and 4096³ in every layout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../native/allocator.cc"
#include "../native/device.cc"
#include "../native/matmul_simt.cu"
#include "../native/matmul_tf32x3.cu"
#include "harness.cuh"

namespace sgemm_dev {

using namespace blora;

using dev::cudaOrDie;
using dev::failures;

// Waits for the stream, but gives up (and exits) after 60 s.
void waitOrDie(const char* what) { dev::waitOrDie(what, 60); }

__global__ void fillValue(float* p, int64_t n, float v) {
  BLORA_GRID_STRIDE_LOOP(i, n) { p[i] = v; }
}

// Writes seeded values in [-1, 1) at the logical elements [batch][rows][cols] of a strided
// matrix (the gaps between them keep what they held: NaN, so a kernel reading one shows).
__global__ void scatterRandom(float* p, int batch, int rows, int cols, int64_t sb, int64_t sr, int64_t sc, uint64_t seed) {
  const int64_t n = int64_t(batch) * rows * cols;
  BLORA_GRID_STRIDE_LOOP(i, n) {
    const int64_t b = i / (int64_t(rows) * cols), r = i / cols % rows, c = i % cols;
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(i) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[b * sb + r * sr + c * sc] = float(z >> 40) / float(1 << 23) - 1.f;
  }
}

// ref = sum_k A(b, m, k) * B(b, k, n) in float64; spread = sqrt(sum_k (A * B)^2), the scale of
// the float32 rounding error.
__global__ void referenceGemm(const float* A, const float* B, double* ref, double* spread, int M, int N, int K,
                              int64_t sab, int64_t sam, int64_t sak, int64_t sbb, int64_t sbk, int64_t sbn) {
  const int n = int(blockIdx.x * blockDim.x + threadIdx.x), m = int(blockIdx.y);
  const int64_t b = blockIdx.z;
  if (n >= N) return;
  double sum = 0, squares = 0;
  for (int k = 0; k < K; k++) {
    const double p = double(A[b * sab + m * sam + k * sak]) * double(B[b * sbb + k * sbk + int64_t(n) * sbn]);
    sum += p;
    squares += p * p;
  }
  ref[(b * M + m) * N + n] = sum;
  spread[(b * M + m) * N + n] = std::sqrt(squares);
}

TensorArg makeArg(float* data, int64_t offset, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  TensorArg t;
  t.data = data;
  t.offset = offset;
  t.dtype = DType::Float32;
  t.rank = int(shape.size());
  for (int d = 0; d < t.rank; d++) t.shape[d] = shape[d], t.strides[d] = strides[d];
  return t;
}

// One product a [batch, M, K] · b [batch, K, N] with operands laid out as asked, in `copies`
// copies (timings rotate over them so the operands do not sit in L2).
struct Problem {
  int batch = 1, M = 1, N = 1, K = 1;
  bool aKMajor = true, bKMajor = false;  // a row-major, b row-major: the plain layout
  int aStep = 1, bStep = 1;              // 2: every other element along the dense dim (dense along neither)
  int64_t aPad = 0, bPad = 0;            // extra elements per row: leading dims that break float4 loads
  int64_t offsetA = 0;                   // a misaligned first element when not a multiple of 4
  bool broadcastB = false;
  int copies = 1;
  float *a = nullptr, *b = nullptr, *c = nullptr;
  int64_t aElems = 0, bElems = 0, cElems = 0;
  std::vector<int64_t> aShape, aStr, bShape, bStr, cShape, cStr;

  TensorArg argA(int copy = 0) const { return makeArg(a, copy * aElems + offsetA, aShape, aStr); }
  TensorArg argB(int copy = 0) const { return makeArg(b, copy * bElems, bShape, bStr); }
  TensorArg argC(int copy = 0) const { return makeArg(c, copy * cElems, cShape, cStr); }

  std::string describe() const {
    char s[200];
    std::snprintf(s, sizeof s, "%dx%dx%d%s A %s B %s%s%s%s%s", M, N, K,
                  batch > 1 ? (" batch " + std::to_string(batch)).c_str() : "", aKMajor ? "K-major" : "M-major",
                  bKMajor ? "K-major" : "N-major", broadcastB ? " (B broadcast)" : "", aPad || bPad ? " (padded ld)" : "",
                  offsetA % 4 ? " (A misaligned)" : "", aStep > 1 || bStep > 1 ? " (stride-2 gaps)" : "");
    return s;
  }
};

void setup(Problem& p, uint64_t seed) {
  // Physical rows x cols of each operand; the dense dim is the column.
  const int64_t aRows = p.aKMajor ? p.M : p.K, aCols = (p.aKMajor ? p.K : p.M) * p.aStep + p.aPad;
  const int64_t bRows = p.bKMajor ? p.N : p.K, bCols = (p.bKMajor ? p.K : p.N) * p.bStep + p.bPad;
  const int bBatches = p.broadcastB ? 1 : p.batch;
  p.aElems = p.offsetA + p.batch * aRows * aCols + 4;  // + 4: copies stay 16-byte aligned relative to each other
  p.aElems = (p.aElems + 3) / 4 * 4;
  p.bElems = (bBatches * bRows * bCols + 3) / 4 * 4;
  p.cElems = (int64_t(p.batch) * p.M * p.N + 3) / 4 * 4;
  cudaOrDie(cudaMalloc(&p.a, std::max<int64_t>(1, p.aElems * p.copies) * 4), "cudaMalloc A");
  cudaOrDie(cudaMalloc(&p.b, std::max<int64_t>(1, p.bElems * p.copies) * 4), "cudaMalloc B");
  cudaOrDie(cudaMalloc(&p.c, (p.cElems * p.copies + 64) * 4), "cudaMalloc C");  // + a guard zone
  fillValue<<<1024, 256, 0, stream()>>>(p.a, p.aElems * p.copies, NAN);
  fillValue<<<1024, 256, 0, stream()>>>(p.b, p.bElems * p.copies, NAN);
  const int64_t sam = p.aKMajor ? aCols : p.aStep, sak = p.aKMajor ? p.aStep : aCols;
  const int64_t sbk = p.bKMajor ? p.bStep : bCols, sbn = p.bKMajor ? bCols : p.bStep;
  for (int copy = 0; copy < p.copies; copy++) {
    scatterRandom<<<1024, 256, 0, stream()>>>(p.a + copy * p.aElems + p.offsetA, p.batch, p.M, p.K, aRows * aCols, sam, sak,
                                              seed);
    scatterRandom<<<1024, 256, 0, stream()>>>(p.b + copy * p.bElems, bBatches, p.K, p.N, bRows * bCols, sbk, sbn, seed + 1);
  }
  p.aShape = {p.batch, p.M, p.K}, p.bShape = {p.batch, p.K, p.N}, p.cShape = {p.batch, p.M, p.N};
  p.aStr = {aRows * aCols, sam, sak}, p.bStr = {p.broadcastB ? 0 : bRows * bCols, sbk, sbn};
  p.cStr = {int64_t(p.M) * p.N, p.N, 1};
  if (p.batch == 1) {  // rank 2, as most matmuls arrive
    for (auto* v : {&p.aShape, &p.bShape, &p.cShape, &p.aStr, &p.bStr, &p.cStr}) v->erase(v->begin());
  }
  waitOrDie("setup");
}

void release(Problem& p) {
  cudaFree(p.a);
  cudaFree(p.b);
  cudaFree(p.c);
}

struct Reference {
  std::vector<double> value, spread;
};

Reference reference(const Problem& p) {
  const MatmulShape s = matmulShape("matmul", p.argA(), p.argB(), p.argC());
  const size_t n = size_t(p.batch) * p.M * p.N;
  double *value = nullptr, *spread = nullptr;
  cudaOrDie(cudaMalloc(&value, std::max<size_t>(n, 1) * 8), "cudaMalloc reference");
  cudaOrDie(cudaMalloc(&spread, std::max<size_t>(n, 1) * 8), "cudaMalloc reference");
  const int64_t sab = p.batch > 1 ? p.aStr[0] : 0, sbb = p.batch > 1 ? p.bStr[0] : 0;
  const dim3 grid(unsigned((p.N + 127) / 128), unsigned(p.M), unsigned(p.batch));
  referenceGemm<<<grid, 128, 0, stream()>>>(reinterpret_cast<const float*>(p.argA().first()), p.b, value, spread, p.M, p.N,
                                            p.K, sab, s.sam, s.sak, sbb, s.sbk, s.sbn);
  waitOrDie("the reference GEMM");
  Reference r;
  r.value.resize(n);
  r.spread.resize(n);
  cudaOrDie(cudaMemcpy(r.value.data(), value, n * 8, cudaMemcpyDeviceToHost), "copying the reference");
  cudaOrDie(cudaMemcpy(r.spread.data(), spread, n * 8, cudaMemcpyDeviceToHost), "copying the reference");
  cudaFree(value);
  cudaFree(spread);
  return r;
}

std::vector<float> runOnNaN(const Problem& p, const std::function<void()>& launch) {
  const size_t n = size_t(p.batch) * p.M * p.N;
  fillValue<<<1024, 256, 0, stream()>>>(p.c, int64_t(n) + 64, NAN);
  launch();
  cudaOrDie(cudaGetLastError(), "the launch");
  waitOrDie("the SGEMM");
  std::vector<float> out(n + 64);
  cudaOrDie(cudaMemcpy(out.data(), p.c, (n + 64) * 4, cudaMemcpyDeviceToHost), "copying the result");
  return out;
}

// Error bound per element: float32 rounding grows like sqrt(K) times the spread of the terms
// (16x the typical size; a missing or doubled term is far larger for any K tested here).
void checkOne(const std::string& kernel, const Problem& p, const Reference& ref, const std::function<void()>& launch,
              bool repeatBitwise) {
  const size_t n = size_t(p.batch) * p.M * p.N;
  const std::vector<float> out = runOnNaN(p, launch);
  size_t nans = 0, bad = 0, worst = 0;
  double worstRatio = 0;
  const double u = std::ldexp(1.0, -24);
  for (size_t i = 0; i < n; i++) {
    if (std::isnan(out[i])) {
      nans++;
      continue;
    }
    const double bound = 16 * u * std::sqrt(double(p.K) + 1) * ref.spread[i] + 1e-30;
    const double ratio = std::fabs(double(out[i]) - ref.value[i]) / bound;
    if (ratio > worstRatio) worstRatio = ratio, worst = i;
    if (ratio > 1) bad++;
  }
  const bool guardOk = std::all_of(out.begin() + long(n), out.end(), [](float g) { return std::isnan(g); });
  bool sameBits = true;
  if (repeatBitwise) {
    const std::vector<float> again = runOnNaN(p, launch);
    sameBits = std::memcmp(out.data(), again.data(), n * 4) == 0;
  }
  const bool ok = nans == 0 && bad == 0 && guardOk && sameBits;
  std::printf("  %s %-34s %-62s err/bound %.3f", ok ? "ok  " : "FAIL", kernel.c_str(), p.describe().c_str(), worstRatio);
  if (repeatBitwise) std::printf(sameBits ? "  bitwise repeatable" : "  RESULTS DIFFER BETWEEN RUNS");
  if (nans) std::printf("  %zu elements unwritten or NaN", nans);
  if (!guardOk) std::printf("  wrote past the end of C");
  if (bad) {
    const size_t per = size_t(p.M) * p.N;
    std::printf("  %zu beyond the bound; worst at batch %zu row %zu col %zu: %.7g vs %.7g", bad, worst / per,
                worst % per / p.N, worst % p.N, out[worst], ref.value[worst]);
  }
  std::printf("\n");
  if (!ok) failures++;
}

// The launcher as the addon calls it, then every tile configuration of both kernels forced
// (the tensor-core one where it can read the operands), unsplit and split.
void checkProblem(Problem p, uint64_t seed, bool allPlans) {
  setup(p, seed);
  const Reference ref = reference(p);
  const MatmulShape s = matmulShape("matmul", p.argA(), p.argB(), p.argC());
  const SgemmPlan plan = planFor(p.argA(), p.argB(), s);
  checkOne("launcher (" + describePlan(plan) + ")", p, ref, [&] { launchMatmulSimt(p.argA(), p.argB(), p.argC()); },
           plan.slices > 1);
  bool aKDense, bKDense;
  const SgemmArgs args = sgemmArgs(p.argA(), p.argB(), s, aKDense, bKDense);
  if (allPlans && s.M > 0 && s.N > 0) {
    for (bool tf32x3 : {false, true}) {
      if (tf32x3 && !(args.vecA && args.vecB)) continue;
      for (const auto& [bm, bn] : {std::pair{128, 128}, std::pair{128, 64}, std::pair{64, 128}}) {
        for (int slices : {1, 3}) {
          SgemmPlan forced;
          forced.tf32x3 = tf32x3, forced.bm = bm, forced.bn = bn;
          forced.sliceK = std::max(s.K, 1);
          if (slices > 1) {
            forced.sliceK = std::max(kStepK, ((s.K + slices - 1) / slices + kStepK - 1) / kStepK * kStepK);
            forced.slices = (s.K + forced.sliceK - 1) / forced.sliceK;
            if (forced.slices < 2) continue;
          }
          checkOne(describePlan(forced), p, ref, [&] { launchSgemm(p.argA(), p.argB(), p.argC(), s, forced); }, false);
        }
      }
    }
  }
  release(p);
}

void runChecks() {
  std::printf("\n== Correctness (SGEMM vs float64-accumulating GPU reference; bound = 16 u sqrt(K) spread) ==\n");
  uint64_t seed = 1;
  struct Dims {
    int M, N, K;
  };
  const Dims odd[] = {{1, 1, 1}, {3, 5, 7}, {129, 257, 72}, {131, 67, 13}, {257, 64, 1000}, {64, 300, 4096},
                      {1000, 333, 64}, {65, 129, 260}};
  for (bool ak : {true, false}) {
    for (bool bk : {true, false}) {
      for (const Dims& d : odd) {
        Problem p;
        p.M = d.M, p.N = d.N, p.K = d.K, p.aKMajor = ak, p.bKMajor = bk;
        checkProblem(p, seed++, d.M * d.N * d.K < 50'000'000);
      }
    }
  }
  std::printf("\n-- scalar load paths: padded leading dims, a misaligned start, gaps between elements --\n");
  for (bool ak : {true, false}) {
    for (bool bk : {true, false}) {
      Problem p;
      p.M = 150, p.N = 140, p.K = 300, p.aKMajor = ak, p.bKMajor = bk, p.aPad = 3, p.bPad = 1;
      checkProblem(p, seed++, true);
      p.aPad = p.bPad = 0, p.offsetA = 1;
      checkProblem(p, seed++, true);
      p.offsetA = 0, p.aStep = 2, p.bStep = 2;
      checkProblem(p, seed++, true);
    }
  }
  std::printf("\n-- batches, a broadcast operand, K = 0 --\n");
  for (bool ak : {true, false}) {
    Problem p;
    p.batch = 3, p.M = 200, p.N = 130, p.K = 2100, p.aKMajor = ak, p.bKMajor = !ak;
    checkProblem(p, seed++, true);
    p.batch = 5, p.M = 64, p.N = 64, p.K = 1024, p.broadcastB = true;
    checkProblem(p, seed++, true);
  }
  {
    Problem p;
    p.M = 37, p.N = 45, p.K = 0;
    checkProblem(p, seed++, true);
  }
  std::printf("\n-- the adapter shapes themselves --\n");
  const struct {
    int M, N, K;
    bool ak, bk;
  } real[] = {{4096, 64, 2048, true, true}, {2048, 64, 4096, false, false}, {64, 5632, 4096, false, false},
              {4096, 256, 64, true, true},  {4096, 64, 256, true, false},   {4096, 2048, 64, true, false}};
  for (const auto& r : real) {
    Problem p;
    p.M = r.M, p.N = r.N, p.K = r.K, p.aKMajor = r.ak, p.bKMajor = r.bk;
    checkProblem(p, seed++, false);
  }
}

// Median time of `launch(copy)` in ms (dev::medianMs), the copies taken in turn.
template <typename Launch>
double medianMs(int copies, Launch launch) {
  int run = 0;
  return dev::medianMs([&] { launch(run++ % copies); });
}

struct Timed {
  double simt = 0, tf32x3 = 0, unsplit = 0;
};

// Times one product on both kernels with the launcher's tile and split of K (and the
// tensor-core kernel without the split).
Timed timeShape(int M, int N, int K, bool ak, bool bk, const char* what) {
  Problem p;
  p.M = M, p.N = N, p.K = K, p.aKMajor = ak, p.bKMajor = bk;
  const double bytes = 4.0 * (double(M) * K + double(K) * N + double(M) * N);
  p.copies = int(std::min(8.0, std::max(1.0, std::ceil(160e6 / bytes))));
  setup(p, 7);
  const MatmulShape s = matmulShape("matmul", p.argA(), p.argB(), p.argC());
  const SgemmPlan simtPlan = planSgemm(s, false), tcPlan = planSgemm(s, true);
  SgemmPlan unsplitPlan = tcPlan;
  unsplitPlan.slices = 1, unsplitPlan.sliceK = std::max(K, 1);
  Timed t;
  t.simt = medianMs(p.copies, [&](int c) { launchSgemm(p.argA(c), p.argB(c), p.argC(c), s, simtPlan); });
  t.tf32x3 = medianMs(p.copies, [&](int c) { launchSgemm(p.argA(c), p.argB(c), p.argC(c), s, tcPlan); });
  t.unsplit = tcPlan.slices > 1 ? medianMs(p.copies, [&](int c) { launchSgemm(p.argA(c), p.argB(c), p.argC(c), s, unsplitPlan); })
                                : t.tf32x3;
  const double flops = 2.0 * M * N * double(K);
  char dims[40];
  std::snprintf(dims, sizeof dims, "%dx%dx%d", M, N, K);
  std::printf("%-16s %-22s %-6s %9.4f %7.1f %9.4f %7.1f %6.2fx  %-30s %9.4f\n", dims, what,
              ak ? (bk ? "KK" : "KN") : (bk ? "MK" : "MN"), t.simt, flops / t.simt / 1e9, t.tf32x3,
              flops / t.tf32x3 / 1e9, t.simt / t.tf32x3, describePlan(tcPlan).c_str(), t.unsplit);
  std::fflush(stdout);
  release(p);
  return t;
}

// The six adapter products of one projection (d_in -> d_out, rank r, 4096 tokens), as autograd
// produces them; returns the summed times.
Timed timeProjection(const char* name, int dIn, int dOut, int r) {
  const int T = 4096;
  char label[6][40];
  const char* parts[6] = {"fwd x.A^T", "fwd (xA).B^T", "bwd dB=dy^T.(xA)", "bwd d(xA)=dy.B", "bwd dA=d(xA)^T.x",
                          "bwd dx=d(xA).A"};
  for (int i = 0; i < 6; i++) std::snprintf(label[i], sizeof label[i], "%s %s", name, parts[i]);
  const Timed ts[6] = {timeShape(T, r, dIn, true, true, label[0]),    timeShape(T, dOut, r, true, true, label[1]),
                       timeShape(dOut, r, T, false, false, label[2]), timeShape(T, r, dOut, true, false, label[3]),
                       timeShape(r, dIn, T, false, false, label[4]),  timeShape(T, dIn, r, true, false, label[5])};
  Timed sum;
  for (const Timed& t : ts) sum.simt += t.simt, sum.tf32x3 += t.tf32x3, sum.unsplit += t.unsplit;
  return sum;
}

void runTimings() {
  std::printf("\n== Timing (float32, median of 20, ms and TFLOP/s; layout: A K- or M-major, B K- or N-major;\n"
              "   speedup = CUDA-core ms / 3xTF32 ms; last column: the 3xTF32 plan without the split of K) ==\n");
  std::printf("%-16s %-22s %-6s %9s %7s %9s %7s %7s  %-30s %9s\n", "M x N x K", "product", "layout", "simt ms", "TFLOP/s",
              "tf32x3 ms", "TFLOP/s", "speedup", "3xTF32 plan", "no-split");
  for (int lambda : {1, 2}) {
    const int r = 64 * lambda;
    std::printf("-- TinyLlama projections, rank %d%s --\n", r, lambda > 1 ? " (Q-BLoRA λ = 2: widths halved)" : "");
    const struct {
      const char* name;
      int dIn, dOut;
    } projections[] = {{"q", 2048, 2048}, {"k", 2048, 256}, {"v", 2048, 256}, {"o", 2048, 2048},
                       {"gate", 2048, 5632}, {"up", 2048, 5632}, {"down", 5632, 2048}};
    Timed step;
    for (const auto& pr : projections) {
      // k and v, and gate and up, have the same shapes: time once, count twice.
      const bool repeat = std::strcmp(pr.name, "v") == 0 || std::strcmp(pr.name, "up") == 0;
      static Timed last;
      const Timed t = repeat ? last : timeProjection(pr.name, pr.dIn / lambda, pr.dOut / lambda, r);
      last = t;
      step.simt += t.simt, step.tf32x3 += t.tf32x3, step.unsplit += t.unsplit;
    }
    std::printf("=> one training step (22 layers x 7 projections x 6 products = 924 matmuls): CUDA cores %.1f ms,"
                " 3xTF32 %.1f ms (%.1f ms without split-K)\n",
                22 * step.simt, 22 * step.tf32x3, 22 * step.unsplit);
  }
  std::printf("-- square --\n");
  for (bool ak : {true, false}) {
    for (bool bk : {true, false}) timeShape(4096, 4096, 4096, ak, bk, "4096^3");
  }
}

}  // namespace sgemm_dev

int main(int argc, char** argv) {
  using namespace sgemm_dev;
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
