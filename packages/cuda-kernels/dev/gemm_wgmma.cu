// Standalone check and timing of the TMA + wgmma GEMM (native/gemm_bf16_wgmma.cu), next to
// the pipelined mma.sync kernel (native/gemm_bf16_pipelined.cu), on a Hopper GPU.
//
// Build: dev/build.sh gemm_wgmma (sm_90a and sm_80, CUDA runtime linked statically). Run:
//   dev/gemm_wgmma          checks, then timings
//   dev/gemm_wgmma check    checks only
//   dev/gemm_wgmma time     timings only
//   dev/gemm_wgmma splits   few-row products with each tile width and split K forced
// The checks compare every kernel configuration with a naive float32-accumulating GPU
// kernel on seeded random inputs: odd sizes, all four operand layouts, batches (a broadcast
// weight too), bfloat16 and float16, and operands the kernel must refuse. The exit code is
// non-zero when any check fails (or a kernel hangs). Timings: CUDA events, 3 warm-up runs,
// then the median of 20, in TFLOP/s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../native/allocator.cc"
#include "../native/device.cc"
#include "../native/gemm_bf16_pipelined.cu"
#include "../native/gemm_bf16_wgmma.cu"
#include "harness.cuh"

namespace gemm_dev {

using namespace blora;

using dev::cudaOrDie;
using dev::failures;
using dev::medianMs;
using dev::waitOrDie;

// Seeded uniform values in [-1, 1), rounded to T.
template <typename T>
__global__ void fillRandom(T* p, int64_t n, uint64_t seed) {
  BLORA_GRID_STRIDE_LOOP(i, n) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(i) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = Num<T>::store(float(z >> 40) / float(1 << 23) - 1.f);
  }
}

template <typename T>
__global__ void fillBits(T* p, int64_t n, uint16_t bits) {
  BLORA_GRID_STRIDE_LOOP(i, n) { reinterpret_cast<uint16_t*>(p)[i] = bits; }
}

// ref[b][m][n] = sum_k A(b, m, k) * B(b, k, n) in float32, any strides.
template <typename T>
__global__ void referenceGemm(const T* A, const T* B, float* ref, int M, int N, int K, int64_t sab, int64_t sam,
                              int64_t sak, int64_t sbb, int64_t sbk, int64_t sbn) {
  const int n = int(blockIdx.x * blockDim.x + threadIdx.x), m = int(blockIdx.y);
  const int64_t b = blockIdx.z;
  if (n >= N) return;
  float sum = 0.f;
  for (int k = 0; k < K; k++) {
    sum += Num<T>::load(A[b * sab + m * sam + k * sak]) * Num<T>::load(B[b * sbb + k * sbk + int64_t(n) * sbn]);
  }
  ref[(b * M + m) * N + n] = sum;
}

template <typename T>
__global__ void toFloat(const T* in, float* out, int64_t n) {
  BLORA_GRID_STRIDE_LOOP(i, n) { out[i] = Num<T>::load(in[i]); }
}

TensorArg makeArg(void* data, DType dtype, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  TensorArg t;
  t.data = data;
  t.dtype = dtype;
  t.rank = int(shape.size());
  for (int d = 0; d < t.rank; d++) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
  return t;
}

// One product: operands in device memory with the requested layouts.
struct Problem {
  int batch = 1, M = 0, N = 0, K = 0;
  bool aKMajor = true, bKMajor = true, broadcastB = false;
  int64_t lda = 0, ldb = 0;      // 0: dense
  int64_t offsetA = 0;           // elements: a misaligned start when not a multiple of 8
  DType dtype = DType::BFloat16;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  size_t aElems = 0, bElems = 0;
  TensorArg argA, argB, argC;

  std::string describe() const {
    char s[200];
    std::snprintf(s, sizeof s, "%s %dx%dx%d batch %d A %s B %s%s%s%s", dtype == DType::BFloat16 ? "bf16" : "fp16", M, N, K,
                  batch, aKMajor ? "K-major" : "M-major", bKMajor ? "K-major" : "N-major", broadcastB ? " (B broadcast)" : "",
                  lda || ldb ? " (padded ld)" : "", offsetA % 8 ? " (A misaligned)" : "");
    return s;
  }
};

void setup(Problem& p, uint64_t seed) {
  const int64_t aRows = p.aKMajor ? p.M : p.K, aCols = p.aKMajor ? p.K : p.M;
  const int64_t bRows = p.bKMajor ? p.N : p.K, bCols = p.bKMajor ? p.K : p.N;
  const int64_t lda = p.lda ? p.lda : aCols, ldb = p.ldb ? p.ldb : bCols;
  const int bBatches = p.broadcastB ? 1 : p.batch;
  p.aElems = size_t(p.offsetA + p.batch * aRows * lda);
  p.bElems = size_t(bBatches * bRows * ldb);
  const size_t cElems = size_t(p.batch) * p.M * p.N;
  cudaOrDie(cudaMalloc(&p.a, p.aElems * 2), "cudaMalloc A");
  cudaOrDie(cudaMalloc(&p.b, p.bElems * 2), "cudaMalloc B");
  cudaOrDie(cudaMalloc(&p.c, (cElems + 64) * 2), "cudaMalloc C");  // + a guard zone
  auto fill = [&](void* ptr, size_t n, uint64_t s) {
    if (p.dtype == DType::BFloat16) fillRandom<<<256, 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(ptr), int64_t(n), s);
    else fillRandom<<<256, 256, 0, stream()>>>(static_cast<__half*>(ptr), int64_t(n), s);
  };
  fill(p.a, p.aElems, seed);
  fill(p.b, p.bElems, seed + 1);
  const int64_t bBatchStride = p.broadcastB ? 0 : bRows * ldb;
  std::vector<int64_t> aShape = {p.batch, p.M, p.K}, bShape = {p.batch, p.K, p.N}, cShape = {p.batch, p.M, p.N};
  std::vector<int64_t> aStr = {aRows * lda, p.aKMajor ? lda : 1, p.aKMajor ? 1 : lda};
  std::vector<int64_t> bStr = {bBatchStride, p.bKMajor ? 1 : ldb, p.bKMajor ? ldb : 1};
  std::vector<int64_t> cStr = {int64_t(p.M) * p.N, p.N, 1};
  if (p.batch == 1) {  // rank 2, as most matmuls arrive
    for (auto* v : {&aShape, &bShape, &cShape, &aStr, &bStr, &cStr}) v->erase(v->begin());
  }
  p.argA = makeArg(p.a, p.dtype, aShape, aStr);
  p.argA.offset = p.offsetA;
  p.argB = makeArg(p.b, p.dtype, bShape, bStr);
  p.argC = makeArg(p.c, p.dtype, cShape, cStr);
}

void release(Problem& p) {
  cudaFree(p.a);
  cudaFree(p.b);
  cudaFree(p.c);
}

MatmulShape shapeOf(const Problem& p) { return matmulShape("matmul", p.argA, p.argB, p.argC); }

// The float32 reference of the problem, on the host.
std::vector<float> reference(const Problem& p) {
  const MatmulShape s = shapeOf(p);
  const size_t n = size_t(p.batch) * p.M * p.N;
  float* d = nullptr;
  cudaOrDie(cudaMalloc(&d, n * 4), "cudaMalloc reference");
  const int64_t sab = p.batch > 1 ? p.argA.strides[0] : 0, sbb = p.batch > 1 ? p.argB.strides[0] : 0;
  const dim3 grid(unsigned((p.N + 127) / 128), unsigned(p.M), unsigned(p.batch));
  if (p.dtype == DType::BFloat16) {
    referenceGemm<<<grid, 128, 0, stream()>>>(reinterpret_cast<const __nv_bfloat16*>(p.argA.first()),
                                              static_cast<const __nv_bfloat16*>(p.b), d, p.M, p.N, p.K, sab, s.sam, s.sak,
                                              sbb, s.sbk, s.sbn);
  } else {
    referenceGemm<<<grid, 128, 0, stream()>>>(reinterpret_cast<const __half*>(p.argA.first()), static_cast<const __half*>(p.b),
                                              d, p.M, p.N, p.K, sab, s.sam, s.sak, sbb, s.sbk, s.sbn);
  }
  waitOrDie("the reference GEMM");
  std::vector<float> host(n);
  cudaOrDie(cudaMemcpy(host.data(), d, n * 4, cudaMemcpyDeviceToHost), "copying the reference");
  cudaFree(d);
  return host;
}

// Runs `launch` on a NaN-filled output and compares with the reference: relative max error
// max|out - ref| / max|ref|, every element written, the guard zone after C untouched.
template <typename Launch>
void checkOne(const char* kernel, Problem& p, const std::vector<float>& ref, Launch launch) {
  const size_t n = size_t(p.batch) * p.M * p.N;
  const uint16_t nanBits = 0x7FFF;  // a NaN in both bf16 and fp16
  if (p.dtype == DType::BFloat16) fillBits<<<256, 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(p.c), int64_t(n + 64), nanBits);
  else fillBits<<<256, 256, 0, stream()>>>(static_cast<__half*>(p.c), int64_t(n + 64), nanBits);
  if (!launch()) {
    std::printf("  FAIL %-22s %s: the kernel refused the problem\n", kernel, p.describe().c_str());
    failures++;
    return;
  }
  waitOrDie(kernel);
  std::vector<uint16_t> guard(64);
  cudaOrDie(cudaMemcpy(guard.data(), static_cast<uint16_t*>(p.c) + n, 64 * 2, cudaMemcpyDeviceToHost), "copying the guard");
  float* d = nullptr;
  cudaOrDie(cudaMalloc(&d, n * 4), "cudaMalloc result");
  if (p.dtype == DType::BFloat16) toFloat<<<256, 256, 0, stream()>>>(static_cast<const __nv_bfloat16*>(p.c), d, int64_t(n));
  else toFloat<<<256, 256, 0, stream()>>>(static_cast<const __half*>(p.c), d, int64_t(n));
  std::vector<float> out(n);
  cudaOrDie(cudaMemcpy(out.data(), d, n * 4, cudaMemcpyDeviceToHost), "copying the result");
  cudaFree(d);
  double maxErr = 0, maxRef = 0;
  size_t nans = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    maxRef = std::max(maxRef, double(std::fabs(ref[i])));
    if (std::isnan(out[i])) {
      nans++;
      continue;
    }
    const double e = std::fabs(double(out[i]) - ref[i]);
    if (e > maxErr) maxErr = e, worst = i;
  }
  const bool guardOk = std::all_of(guard.begin(), guard.end(), [&](uint16_t g) { return g == nanBits; });
  const double rel = maxRef > 0 ? maxErr / maxRef : maxErr;
  const double limit = p.dtype == DType::BFloat16 ? 8e-3 : 2e-3;  // output rounding is 2^-9 / 2^-12
  const bool ok = nans == 0 && guardOk && rel <= limit;
  std::printf("  %s %-22s %-58s rel.max.err %.2e", ok ? "ok  " : "FAIL", kernel, p.describe().c_str(), rel);
  if (nans) std::printf("  %zu elements unwritten (NaN)", nans);
  if (!guardOk) std::printf("  wrote past the end of C");
  if (rel > limit) {
    const size_t per = size_t(p.M) * p.N;
    std::printf("  worst at batch %zu row %zu col %zu: %g vs %g", worst / per, worst % per / p.N, worst % p.N, out[worst],
                ref[worst]);
  }
  std::printf("\n");
  if (!ok) failures++;
}

void checkProblem(Problem p, uint64_t seed, bool allVariants) {
  setup(p, seed);
  const std::vector<float> ref = reference(p);
  const MatmulShape s = shapeOf(p);
  // The launcher as the addon calls it, with the wgmma path forced (any size).
  setGemmPath(GemmPath::Wgmma);
  char name[48];
  const wgmma::SplitPlan plan = gemmWgmmaPlan(p.argA, p.argB, s);
  std::snprintf(name, sizeof name, "wgmma (launcher 128x%d/%d)", plan.bn, plan.splits);
  checkOne(name, p, ref, [&] { return launchGemmWgmma(p.argA, p.argB, p.argC, s); });
  if (allVariants) {
    checkOne("wgmma 128x256 3 stages", p, ref, [&] { return wgmma::launchVariant<256, 3>(p.argA, p.argB, p.argC, s); });
    checkOne("wgmma 128x256 4 stages", p, ref, [&] { return wgmma::launchVariant<256, 4>(p.argA, p.argB, p.argC, s); });
    checkOne("wgmma 128x128 4 stages", p, ref, [&] { return wgmma::launchVariant<128, 4>(p.argA, p.argB, p.argC, s); });
    checkOne("wgmma 128x128 6 stages", p, ref, [&] { return wgmma::launchVariant<128, 6>(p.argA, p.argB, p.argC, s); });
    // K split over blocks: 2 and 3 units a tile (uneven when the steps do not divide), and 8.
    checkOne("wgmma 128x256 2 splits", p, ref, [&] { return wgmma::launchVariant<256, 4>(p.argA, p.argB, p.argC, s, 2); });
    checkOne("wgmma 128x256 3 splits", p, ref, [&] { return wgmma::launchVariant<256, 4>(p.argA, p.argB, p.argC, s, 3); });
    checkOne("wgmma 128x128 3 splits", p, ref, [&] { return wgmma::launchVariant<128, 6>(p.argA, p.argB, p.argC, s, 3); });
    checkOne("wgmma 128x128 8 splits", p, ref, [&] { return wgmma::launchVariant<128, 6>(p.argA, p.argB, p.argC, s, 8); });
  }
  // The pipelined kernel on the same data: a check of the harness as much as of the kernel.
  if (gemmPipelinedTileN(p.argA, p.argB, s) > 0) {
    checkOne("pipelined (mma.sync)", p, ref, [&] { return launchGemmPipelined(p.argA, p.argB, p.argC, s); });
  }
  release(p);
}

// Operands TMA cannot read must be refused, so the caller falls back.
void checkRefused(Problem p) {
  setup(p, 99);
  setGemmPath(GemmPath::Wgmma);
  const MatmulShape s = shapeOf(p);
  const bool refused = gemmWgmmaPlan(p.argA, p.argB, s).bn == 0 && !launchGemmWgmma(p.argA, p.argB, p.argC, s);
  std::printf("  %s refuses %s\n", refused ? "ok  " : "FAIL", p.describe().c_str());
  if (!refused) failures++;
  release(p);
}

void runChecks() {
  std::printf("\n== Correctness (wgmma kernel vs naive float32 GPU reference) ==\n");
  uint64_t seed = 1;
  // TMA reads rows whose stride is a multiple of 16 bytes: an M-major A needs M % 8 == 0 and an
  // N-major B N % 8 == 0 (odd extents of those layouts are refusals, checked further down).
  for (bool ak : {true, false}) {
    for (bool bk : {true, false}) {
      Problem p;
      p.M = ak ? 129 : 136, p.N = bk ? 257 : 264, p.K = 72, p.aKMajor = ak, p.bKMajor = bk;
      checkProblem(p, seed++, true);
      p.M = 1000, p.N = 1000, p.K = 1000;
      checkProblem(p, seed++, true);
    }
  }
  for (bool ak : {true, false}) {
    for (bool bk : {true, false}) {
      Problem p;  // batched, with K below one stage and (K-major B) N not a multiple of 8
      p.batch = 3, p.M = 200, p.N = bk ? 131 : 136, p.K = 40, p.aKMajor = ak, p.bKMajor = bk;
      checkProblem(p, seed++, false);
      p.dtype = DType::Float16;
      p.M = ak ? 515 : 520, p.N = 384, p.K = 264, p.batch = 1;
      checkProblem(p, seed++, false);
    }
  }
  {
    Problem p;  // a weight broadcast over the batch (batch stride 0), x · Wᵀ
    p.batch = 4, p.M = 300, p.N = 520, p.K = 136, p.bKMajor = true, p.broadcastB = true;
    checkProblem(p, seed++, true);
    p.bKMajor = false;
    checkProblem(p, seed++, false);
  }
  {
    Problem p;  // padded leading dims; a single row; a tiny product
    p.M = 384, p.N = 640, p.K = 200, p.lda = 264, p.ldb = 208, p.aKMajor = true, p.bKMajor = true;
    checkProblem(p, seed++, false);
    p = Problem();
    p.M = 1, p.N = 512, p.K = 128;
    checkProblem(p, seed++, false);
    p = Problem();
    p.M = 8, p.N = 8, p.K = 8;
    checkProblem(p, seed++, false);
    p = Problem();
    p.M = 4096, p.N = 4096, p.K = 4096, p.bKMajor = false;  // B N-major keeps the naive reference fast
    checkProblem(p, seed++, false);
  }
  {
    Problem p;  // few rows and long K: the launcher splits K (x · Wᵀ, dy · W, one row, batches)
    p.M = 16, p.N = 4096, p.K = 4096;
    checkProblem(p, seed++, true);
    p.M = 100, p.N = 1000, p.K = 2000, p.bKMajor = false;
    checkProblem(p, seed++, true);
    p.M = 1, p.N = 520, p.K = 1032, p.bKMajor = true;
    checkProblem(p, seed++, true);
    p.batch = 3, p.M = 40, p.N = 264, p.K = 1000, p.broadcastB = true;
    checkProblem(p, seed++, true);
  }
  std::printf("\n== Operands the wgmma kernel must refuse ==\n");
  {
    Problem p;
    p.M = 256, p.N = 256, p.K = 128, p.offsetA = 3;  // first element not 16-byte aligned
    checkRefused(p);
    p.offsetA = 0, p.lda = 130;  // leading dim not a multiple of 8 elements
    checkRefused(p);
    p.lda = 0, p.K = 100, p.M = 250, p.aKMajor = false, p.lda = 250;  // M-major, stride 250
    checkRefused(p);
    p = Problem();
    p.M = 129, p.N = 257, p.K = 72, p.aKMajor = false;  // M-major A with M = 129: rows of 258 bytes
    checkRefused(p);
    p.aKMajor = true, p.bKMajor = false;  // N-major B with N = 257
    checkRefused(p);
  }
  setGemmPath(GemmPath::Auto);
}

void runTimings() {
  std::printf("\n== Timing (bf16, median of 20, TFLOP/s; cuBLAS measured earlier with PyTorch: 685 at 4096^3,\n"
              "   725 at M=4096 N=4096 K=11008, 769 at M=4096 N=11008 K=4096) ==\n");
  struct Shape {
    int M, N, K;
  };
  const Shape shapes[] = {{4096, 4096, 4096}, {8192, 8192, 8192}, {4096, 11008, 4096}, {4096, 4096, 11008}};
  struct LayoutCase {
    const char* name;
    bool aK, bK;
  };
  const LayoutCase layouts[] = {{"x.W^T (A K-major, B K-major)", true, true},
                                {"dy.W  (A K-major, B N-major)", true, false},
                                {"x^T.dy (A M-major, B N-major)", false, false}};
  std::printf("%-20s %-32s %9s %9s %9s %9s %9s\n", "M x N x K", "layout", "wg256x4", "wg256x3", "wg128x6", "wg128x4",
              "pipelined");
  for (const Shape& sh : shapes) {
    for (const LayoutCase& l : layouts) {
      Problem p;
      p.M = sh.M, p.N = sh.N, p.K = sh.K, p.aKMajor = l.aK, p.bKMajor = l.bK;
      setup(p, 7);
      const MatmulShape s = shapeOf(p);
      const double flops = 2.0 * sh.M * sh.N * double(sh.K);
      auto tflops = [&](auto launch) { return flops / (medianMs(launch) * 1e-3) / 1e12; };
      const double w256x4 = tflops([&] { wgmma::launchVariant<256, 4>(p.argA, p.argB, p.argC, s); });
      const double w256x3 = tflops([&] { wgmma::launchVariant<256, 3>(p.argA, p.argB, p.argC, s); });
      const double w128x6 = tflops([&] { wgmma::launchVariant<128, 6>(p.argA, p.argB, p.argC, s); });
      const double w128x4 = tflops([&] { wgmma::launchVariant<128, 4>(p.argA, p.argB, p.argC, s); });
      const double pipe = tflops([&] { launchGemmPipelined(p.argA, p.argB, p.argC, s); });
      char dims[40];
      std::snprintf(dims, sizeof dims, "%dx%dx%d", sh.M, sh.N, sh.K);
      std::printf("%-20s %-32s %9.1f %9.1f %9.1f %9.1f %9.1f\n", dims, l.name, w256x4, w256x3, w128x6, w128x4, pipe);
      std::fflush(stdout);
      release(p);
    }
  }
}

// The kernel at few activation rows, x · Wᵀ with W [N, K] row-major (both operands K-major), each
// tile width and split forced, next to the launcher's plan and the pipelined kernel
// (`dev/gemm_wgmma splits`): what the plan's cost model is fitted to. W rotates over copies
// totalling more than 4 x the L2 cache; ms, median of 20.
void runSplitTimings() {
  struct Plan {
    int bn, splits;
  };
  const Plan plans[] = {{128, 1}, {128, 2}, {128, 4}, {128, 8}, {256, 1}, {256, 2}, {256, 4}, {256, 8}};
  std::printf("\n== Split K (bf16 x.W^T, W [N, K], median of 20, ms) ==\n%-18s %9s %9s", "M x N x K", "pipelined", "launcher");
  for (const Plan& pl : plans) std::printf("  %3dx%-4d", pl.bn, pl.splits);
  std::printf("\n");
  int l2 = 0;
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};  // N, K
  for (const auto& nk : shapes) {
    const int N = nk[0], K = nk[1];
    const int64_t wBytes = int64_t(N) * K * 2;
    const int copies = int(std::max<int64_t>(2, (4 * int64_t(l2) + wBytes - 1) / wBytes));
    std::vector<void*> ws(copies);
    for (void*& w : ws) {
      cudaOrDie(cudaMalloc(&w, size_t(wBytes)), "cudaMalloc W");
      fillRandom<<<256, 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(w), int64_t(N) * K, 5);
    }
    for (const int M : {1, 16, 64, 256, 1024, 4096}) {
      void *x = nullptr, *y = nullptr;
      cudaOrDie(cudaMalloc(&x, size_t(M) * K * 2), "cudaMalloc x");
      cudaOrDie(cudaMalloc(&y, size_t(M) * N * 2), "cudaMalloc y");
      fillRandom<<<256, 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(x), int64_t(M) * K, 6);
      const TensorArg xa = makeArg(x, DType::BFloat16, {M, K}, {K, 1}), ya = makeArg(y, DType::BFloat16, {M, N}, {N, 1});
      std::vector<TensorArg> wa;
      for (void* w : ws) wa.push_back(makeArg(w, DType::BFloat16, {K, N}, {1, K}));  // Wᵀ: a transposed view
      const MatmulShape s = matmulShape("matmul", xa, wa[0], ya);
      int next = 0;
      auto ms = [&](auto launch) { return medianMs([&] { launch(wa[next++ % copies]); }); };
      char dims[40];
      std::snprintf(dims, sizeof dims, "%dx%dx%d", M, N, K);
      const double pipelined = gemmPipelinedTileN(xa, wa[0], s) > 0 ? ms([&](const TensorArg& w) { launchGemmPipelined(xa, w, ya, s); }) : 0;
      setGemmPath(GemmPath::Wgmma);
      const wgmma::SplitPlan chosen = gemmWgmmaPlan(xa, wa[0], s);
      std::printf("%-18s %9.4f %9.4f", dims, pipelined, ms([&](const TensorArg& w) { launchGemmWgmma(xa, w, ya, s); }));
      for (const Plan& pl : plans) {
        const double t = pl.bn == 256 ? ms([&](const TensorArg& w) { wgmma::launchVariant<256, wgmma::kWideStages>(xa, w, ya, s, pl.splits); })
                                      : ms([&](const TensorArg& w) { wgmma::launchVariant<128, wgmma::kNarrowStages>(xa, w, ya, s, pl.splits); });
        std::printf("  %8.4f", t);
      }
      setGemmPath(GemmPath::Auto);
      const wgmma::SplitPlan autoPlan = gemmWgmmaPlan(xa, wa[0], s);
      std::printf("   plan %dx%d (auto path: %s)\n", chosen.bn, chosen.splits,
                  autoPlan.bn ? (std::to_string(autoPlan.bn) + "x" + std::to_string(autoPlan.splits)).c_str() : "not wgmma");
      std::fflush(stdout);
      cudaFree(x);
      cudaFree(y);
    }
    for (void* w : ws) cudaFree(w);
  }
}

}  // namespace gemm_dev

int main(int argc, char** argv) {
  using namespace gemm_dev;
  if (argc > 1 && std::string(argv[1]) == "splits") {
    if (!probeDevice().available || !wgmmaAvailable()) return 2;
    runSplitTimings();
    return 0;
  }
  const std::string mode = dev::harnessMode(argc, argv);
  if (mode.empty()) return 2;
  std::printf("cuTensorMapEncodeTiled found: %s; sm_90a image loaded (wgmmaAvailable): %s\n",
              wgmma::tensorMapEncoder() ? "yes" : "NO", wgmmaAvailable() ? "yes" : "NO");
  if (!wgmmaAvailable()) {
    std::printf("FAIL: the wgmma kernel cannot run on this device\n");
    return 1;
  }
  if (mode != "time") runChecks();
  if (mode != "check") runTimings();
  if (mode != "time") {
    std::printf("\n%s: %d check(s) failed\n", failures ? "FAILED" : "PASSED", failures);
  }
  return failures ? 1 : 0;
}
