// Standalone check and timing of the fused 4-bit GEMM on Hopper (native/quant_gemm_wgmma.cuh)
// next to the mma.sync fused kernel (native/quant_gemm.cu) and to dequantize-then-GEMM (our
// dequantize kernel, then the TMA + wgmma bf16 GEMM).
//
// Build: dev/build.sh quant_gemm_wgmma. Run:
//   dev/quant_gemm_wgmma          checks, then timings
//   dev/quant_gemm_wgmma check    checks only
//   dev/quant_gemm_wgmma time     timings only
//   dev/quant_gemm_wgmma epilogue the Hopper kernel with and without an epilogue term, side by side
//   dev/quant_gemm_wgmma splits   the Hopper kernel at 64-1024 rows, each tile width and split K forced
//   dev/quant_gemm_wgmma profile  one forward product per format, for a profiler
// Checks: both kernels against a float64 CPU reference on seeded random codes, scales and
// activations: NF4 (float32 absmax) and INT4 (float16 and float32 scale / offset, groups of 32
// and 64), y = x·Wᵀ and dx = dy·W, bfloat16 and float16, ragged M / N / K (K a multiple of 32
// but not of 64), padded activation rows, both block-tile widths, each tile's K steps split over
// 2-8 blocks (even and uneven); and with an epilogue term (out = acc + s · z[row][feature / λ],
// the adapter's update), λ 1, 2 and 4. Timings: the LLaMA-7B
// layer shapes at M = 256, 1024 and 4096, weights rotated over copies totalling more than
// 4 x the L2 cache, CUDA events, median of 20, TFLOP/s.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../native/allocator.cc"
#include "../native/device.cc"
#include "../native/gemm_bf16_wgmma.cu"
#include "../native/quant_dequant.cu"
#include "../native/quant_gemm.cu"
#include "harness.cuh"

namespace quant_gemm_dev {

using namespace blora;
using dev::cudaOrDie;
using dev::failures;
using dev::medianMs;
using dev::waitOrDie;

const float kNf4[16] = {-1.0f, -0.6961928f, -0.5250731f, -0.3949175f, -0.2844414f, -0.1848449f, -0.0910500f, 0.0f,
                        0.0795803f, 0.1609302f, 0.2461123f, 0.3379152f, 0.4407098f, 0.5626170f, 0.7229568f, 1.0f};

// Host float -> 16-bit (round to nearest even) and back.
uint16_t toBf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float fromBf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
uint16_t toHalfBits(float v) { return __half_as_ushort(__float2half_rn(v)); }
float fromHalfBits(uint16_t b) { return __half2float(__ushort_as_half(b)); }

enum class Format { Nf4, Int4 };

// One quantized weight [out, in] on the host and the device, with its decoded float32 values.
struct Weight {
  Format format = Format::Nf4;
  int64_t out = 0, in = 0;
  int blockCols = 64;     // NF4 blocksize (flat), INT4 group width (one row per block)
  bool halfScales = true; // INT4 scale / offset dtype
  std::vector<uint8_t> codes;
  std::vector<float> values;  // W[r * in + c] as float32, exactly as the kernels compute it
  void *dCodes = nullptr, *dScales = nullptr, *dOffsets = nullptr, *dTable = nullptr;
  TensorArg codesArg, scalesArg, offsetsArg, tableArg;
};

TensorArg denseArg(void* data, DType dtype, int64_t n) {
  TensorArg t;
  t.data = data;
  t.dtype = dtype;
  t.rank = 1;
  t.shape[0] = n;
  t.strides[0] = 1;
  return t;
}

// A [rows, cols] matrix of 16-bit floats with `ld` elements between rows.
TensorArg matrixArg(void* data, DType dtype, int64_t rows, int64_t cols, int64_t ld) {
  TensorArg t;
  t.data = data;
  t.dtype = dtype;
  t.rank = 2;
  t.shape[0] = rows;
  t.shape[1] = cols;
  t.strides[0] = ld;
  t.strides[1] = 1;
  return t;
}

template <typename V>
void* upload(const std::vector<V>& host) {
  void* d = nullptr;
  cudaOrDie(cudaMalloc(&d, std::max<size_t>(16, host.size() * sizeof(V))), "cudaMalloc");
  cudaOrDie(cudaMemcpy(d, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice), "upload");
  return d;
}

Weight makeWeight(Format format, int64_t out, int64_t in, int blockCols, bool halfScales, uint64_t seed) {
  Weight w;
  w.format = format;
  w.out = out;
  w.in = in;
  w.blockCols = blockCols;
  w.halfScales = halfScales;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const int64_t n = out * in;
  w.codes.resize(size_t(n / 2));
  for (auto& b : w.codes) b = uint8_t(byte(rng));
  auto code = [&](int64_t i) { return (i & 1) ? (w.codes[i / 2] & 15) : (w.codes[i / 2] >> 4); };
  const int64_t blocks = (n + blockCols - 1) / blockCols;  // NF4: the last block may be partial
  w.values.resize(size_t(n));
  if (format == Format::Nf4) {
    std::vector<float> absmax(static_cast<size_t>(blocks));
    for (auto& a : absmax) a = 0.02f + 0.1f * unit(rng);
    for (int64_t i = 0; i < n; i++) w.values[i] = kNf4[code(i)] * absmax[i / blockCols];  // one float32 product
    w.dScales = upload(absmax);
    w.dTable = upload(std::vector<float>(kNf4, kNf4 + 16));
    w.scalesArg = denseArg(w.dScales, DType::Float32, blocks);
    w.tableArg = denseArg(w.dTable, DType::Float32, 16);
  } else {
    std::vector<float> alpha(static_cast<size_t>(blocks)), beta(static_cast<size_t>(blocks));
    for (int64_t b = 0; b < blocks; b++) {
      alpha[b] = 0.002f + 0.01f * unit(rng);
      beta[b] = -8.f * alpha[b] + 0.01f * (unit(rng) - 0.5f);
      if (halfScales) {
        alpha[b] = fromHalfBits(toHalfBits(alpha[b]));
        beta[b] = fromHalfBits(toHalfBits(beta[b]));
      }
    }
    for (int64_t i = 0; i < n; i++) {
      const int64_t b = i / blockCols;  // blocks of one row: consecutive along the row
      w.values[i] = float(double(alpha[b]) * code(i) + double(beta[b]));
    }
    if (halfScales) {
      std::vector<uint16_t> a(static_cast<size_t>(blocks)), o(static_cast<size_t>(blocks));
      for (int64_t b = 0; b < blocks; b++) {
        a[b] = toHalfBits(alpha[b]);
        o[b] = toHalfBits(beta[b]);
      }
      w.dScales = upload(a);
      w.dOffsets = upload(o);
    } else {
      w.dScales = upload(alpha);
      w.dOffsets = upload(beta);
    }
    const DType s = halfScales ? DType::Float16 : DType::Float32;
    w.scalesArg = denseArg(w.dScales, s, blocks);
    w.offsetsArg = denseArg(w.dOffsets, s, blocks);
  }
  w.dCodes = upload(w.codes);
  w.codesArg = denseArg(w.dCodes, DType::UInt8, n / 2);
  return w;
}

void freeWeight(Weight& w) {
  for (void* p : {w.dCodes, w.dScales, w.dOffsets, w.dTable}) cudaFree(p);
}

// The fused op on whichever kernel the GEMM path picks (false: the launcher refused).
bool fusedProduct(const Weight& w, const TensorArg& x, const TensorArg& y, bool transposed, const GemmAddend& addend = {}) {
  if (w.format == Format::Nf4) {
    return launchFourBitGemm(x, w.codesArg, w.scalesArg, w.tableArg, y, FourBitLayout{w.out, w.in, w.blockCols}, transposed,
                             addend);
  }
  return launchIntGemm(x, w.codesArg, w.scalesArg, w.offsetsArg, y, IntLayout{4, w.out, w.in, 1, w.blockCols}, transposed,
                       addend);
}

void dequantize(const Weight& w, const TensorArg& out) {
  if (w.format == Format::Nf4) launchFourBitDequantize(w.codesArg, w.scalesArg, w.tableArg, out, FourBitLayout{w.out, w.in, w.blockCols});
  else launchIntDequantize(w.codesArg, w.scalesArg, w.offsetsArg, out, IntLayout{4, w.out, w.in, 1, w.blockCols});
}

std::string describe(const Weight& w, bool transposed, int64_t m, bool bf16, int64_t lda) {
  char s[200];
  std::snprintf(s, sizeof s, "%s%s %s %s M=%lld W=[%lld, %lld]%s", w.format == Format::Nf4 ? "nf4" : "int4",
                w.format == Format::Int4 ? (w.halfScales ? "/f16-scales" : "/f32-scales") : "", transposed ? "dy·W " : "x·Wᵀ",
                bf16 ? "bf16" : "fp16", (long long)m, (long long)w.out, (long long)w.in,
                lda ? (" lda=" + std::to_string(lda)).c_str() : "");
  return s;
}

// One product on the path `path`, checked against float64 on the host: every output element
// within half an ulp of the output dtype plus 2^-20 of the sum of |terms| (float32 accumulation).
// With lambda > 0 the product carries the epilogue term scale · z[row][feature / lambda] (z float32
// in [-2, 2), the scaled value rounded to float32 as the kernels compute it).
void checkOne(const Weight& w, bool transposed, int64_t m, bool bf16, int64_t ldaPad, GemmPath path, uint64_t seed,
              int lambda = 0) {
  const int64_t k = transposed ? w.out : w.in, n = transposed ? w.in : w.out;
  const int64_t lda = k + ldaPad;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<uint16_t> x(size_t(m * lda), 0);
  std::vector<float> xv(size_t(m * k));
  for (int64_t r = 0; r < m; r++) {
    for (int64_t c = 0; c < k; c++) {
      const float v = dist(rng);
      x[r * lda + c] = bf16 ? toBf16(v) : toHalfBits(v);
      xv[r * k + c] = bf16 ? fromBf16(x[r * lda + c]) : fromHalfBits(x[r * lda + c]);
    }
  }
  // The MMAs see W rounded to the activation dtype.
  std::vector<float> wv(w.values.size());
  for (size_t i = 0; i < wv.size(); i++) wv[i] = bf16 ? fromBf16(toBf16(w.values[i])) : fromHalfBits(toHalfBits(w.values[i]));
  const float scale = 0.75f;
  const int64_t zCols = lambda ? n / lambda : 0;
  std::vector<float> z(size_t(m * zCols));
  for (float& v : z) v = 2.f * dist(rng);
  void* dz = lambda ? upload(z) : nullptr;
  const TensorArg za = lambda ? matrixArg(dz, DType::Float32, m, zCols, zCols) : TensorArg{};
  const GemmAddend addend = lambda ? GemmAddend{&za, lambda, scale} : GemmAddend{};
  void* dx = upload(x);
  void* dy = nullptr;
  cudaOrDie(cudaMalloc(&dy, size_t(m * n) * 2), "cudaMalloc y");
  cudaOrDie(cudaMemset(dy, 0xff, size_t(m * n) * 2), "poison y");  // NaNs where nothing is written
  const DType dtype = bf16 ? DType::BFloat16 : DType::Float16;
  const TensorArg xa = matrixArg(dx, dtype, m, k, lda), ya = matrixArg(dy, dtype, m, n, n);
  setGemmPath(path);
  const bool ran = fusedProduct(w, xa, ya, transposed, addend);
  setGemmPath(GemmPath::Auto);
  const wgmma::SplitPlan forced = wgmma::forcedFusedQuantPlan();
  const std::string plan = forced.bn && path == GemmPath::Wgmma
                               ? " BN " + std::to_string(forced.bn) + " x " + std::to_string(forced.splits) + " splits"
                               : "";
  const std::string name = describe(w, transposed, m, bf16, ldaPad ? lda : 0) + (lambda ? " + z/" + std::to_string(lambda) : "") +
                           (path == GemmPath::Wgmma ? " [wgmma" + plan + "]" : " [mma.sync]");
  if (!ran) {
    std::printf("FAIL %s: the launcher refused the product\n", name.c_str());
    failures++;
  } else {
    waitOrDie(name.c_str());
    std::vector<uint16_t> y(size_t(m * n));
    cudaOrDie(cudaMemcpy(y.data(), dy, y.size() * 2, cudaMemcpyDeviceToHost), "download y");
    int64_t bad = 0;
    double worst = 0;
    const double ulp = bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
    for (int64_t r = 0; r < m; r++) {
      for (int64_t c = 0; c < n; c++) {
        double sum = 0, abs = 0;
        for (int64_t i = 0; i < k; i++) {
          const double wi = transposed ? wv[i * w.in + c] : wv[c * w.in + i];
          const double term = double(xv[r * k + i]) * wi;
          sum += term;
          abs += std::fabs(term);
        }
        if (lambda) sum += double(scale * z[r * zCols + c / lambda]);
        const double got = bf16 ? fromBf16(y[r * n + c]) : fromHalfBits(y[r * n + c]);
        const double err = std::fabs(got - sum), tol = ulp * std::fabs(sum) + std::ldexp(abs, -20) + 1e-30;
        if (!(err <= tol)) bad++;
        worst = std::max(worst, err / tol);
      }
    }
    std::printf("%s %s: worst error %.3f of the bound%s\n", bad ? "FAIL" : "ok  ", name.c_str(), worst,
                bad ? (", " + std::to_string(bad) + " elements out").c_str() : "");
    if (bad) failures++;
  }
  cudaFree(dx);
  cudaFree(dy);
  if (dz) cudaFree(dz);
}

void runChecks() {
  std::printf("== Checks against float64\n");
  struct Case {
    Format format;
    int blockCols;
    bool halfScales;
    int64_t in;
  };
  // [out, in]: out = 392, not a multiple of the tile; in a multiple of 32 but not of 64, except
  // where the INT4 groups of 64 must tile the rows.
  const Case cases[] = {{Format::Nf4, 64, true, 480}, {Format::Int4, 64, true, 448}, {Format::Int4, 32, false, 480}};
  uint64_t seed = 1;
  for (const Case& cs : cases) {
    Weight w = makeWeight(cs.format, 392, cs.in, cs.blockCols, cs.halfScales, seed++);
    for (const bool transposed : {false, true}) {
      for (const bool bf16 : {true, false}) {
        for (const GemmPath path : {GemmPath::Wgmma, GemmPath::Pipelined}) checkOne(w, transposed, 333, bf16, 0, path, seed++);
      }
      for (const int lambda : {1, 2, 4}) {
        for (const GemmPath path : {GemmPath::Wgmma, GemmPath::Pipelined}) checkOne(w, transposed, 333, true, 0, path, seed++, lambda);
      }
      checkOne(w, transposed, 77, true, 24, GemmPath::Wgmma, seed++);  // padded activation rows, one tile row
    }
    freeWeight(w);
  }
  // An odd number of output features: no paired stores.
  Weight odd = makeWeight(Format::Nf4, 393, 480, 64, true, seed++);
  checkOne(odd, false, 77, true, 0, GemmPath::Wgmma, seed++);
  checkOne(odd, false, 77, true, 0, GemmPath::Wgmma, seed++, 3);  // 393 = 3 x 131
  freeWeight(odd);
  // Enough tiles for the 128 x 256 tile (with 132 SMs): 9 x 16 tiles forward and backward.
  Weight wide = makeWeight(Format::Nf4, 4096, 128, 64, true, seed++);
  checkOne(wide, false, 1100, true, 0, GemmPath::Wgmma, seed++);
  checkOne(wide, false, 1100, true, 0, GemmPath::Wgmma, seed++, 2);
  freeWeight(wide);
  Weight wideT = makeWeight(Format::Int4, 128, 4096, 64, true, seed++);
  checkOne(wideT, true, 1100, true, 0, GemmPath::Wgmma, seed++);
  freeWeight(wideT);
  // Split K, each plan forced: 8 K steps in 2, 3 (3 + 3 + 2) and 8 units a tile, both tile
  // widths, both products, with and without the epilogue term; and 64 K steps in 7 units
  // (10 each, the last 4) at 200 rows, all tiles in one wave.
  const wgmma::SplitPlan plans[] = {{128, 2}, {128, 3}, {256, 2}, {256, 8}};
  const Case splitCases[] = {{Format::Nf4, 64, true, 480}, {Format::Int4, 32, false, 480}};
  for (const Case& cs : splitCases) {
    Weight w = makeWeight(cs.format, 392, cs.in, cs.blockCols, cs.halfScales, seed++);
    for (const wgmma::SplitPlan& plan : plans) {
      wgmma::forcedFusedQuantPlan() = plan;
      for (const bool transposed : {false, true}) {
        checkOne(w, transposed, 333, true, 0, GemmPath::Wgmma, seed++);
        checkOne(w, transposed, 333, false, 0, GemmPath::Wgmma, seed++, 2);
      }
      wgmma::forcedFusedQuantPlan() = {};
    }
    freeWeight(w);
  }
  Weight longK = makeWeight(Format::Nf4, 300, 4096, 64, true, seed++);
  for (const wgmma::SplitPlan plan : {wgmma::SplitPlan{256, 7}, wgmma::SplitPlan{128, 7}}) {
    wgmma::forcedFusedQuantPlan() = plan;
    checkOne(longK, false, 200, true, 0, GemmPath::Wgmma, seed++, 1);
    wgmma::forcedFusedQuantPlan() = {};
  }
  Weight longKT = makeWeight(Format::Int4, 4096, 320, 64, true, seed++);
  wgmma::forcedFusedQuantPlan() = {256, 7};
  checkOne(longKT, true, 200, true, 0, GemmPath::Wgmma, seed++);
  wgmma::forcedFusedQuantPlan() = {};
  // The automatic plan of a few rows (split over the SMs) at 256 rows.
  checkOne(longK, false, 256, true, 0, GemmPath::Wgmma, seed++);
  freeWeight(longK);
  freeWeight(longKT);
}

// Enough copies of a weight [out, in] (blocks / groups of 64, float16 INT4 scales) to total more
// than 4 x the L2 cache, so that timed calls cycling over them read the weight from memory.
std::vector<Weight> rotatingCopies(Format format, int64_t out, int64_t in, uint64_t seed) {
  int l2 = 0;
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  const int64_t bytes = out * in / 2;
  const int copies = int(std::max<int64_t>(2, (4 * int64_t(l2) + bytes - 1) / bytes));
  std::vector<Weight> ws;
  for (int c = 0; c < copies; c++) ws.push_back(makeWeight(format, out, in, 64, true, seed + c));
  return ws;
}

// Bfloat16 activations x [m, k] (filled) and an output y [m, n] on the device, freed with it.
struct TimedOperands {
  void *dx = nullptr, *dy = nullptr;
  TensorArg x, y;
  TimedOperands(int64_t m, int64_t k, int64_t n) {
    cudaOrDie(cudaMalloc(&dx, size_t(m * k) * 2), "cudaMalloc x");
    cudaOrDie(cudaMalloc(&dy, size_t(m * n) * 2), "cudaMalloc y");
    cudaOrDie(cudaMemset(dx, 0x3c, size_t(m * k) * 2), "fill x");
    x = matrixArg(dx, DType::BFloat16, m, k, k);
    y = matrixArg(dy, DType::BFloat16, m, n, n);
  }
  ~TimedOperands() {
    cudaFree(dx);
    cudaFree(dy);
  }
  TimedOperands(const TimedOperands&) = delete;
  TimedOperands& operator=(const TimedOperands&) = delete;
};

// Timings: one call per weight copy, copies cycling, so that weights come from memory.
void runTimings() {
  std::printf("\n== Timings (bf16 activations, median of 20, TFLOP/s; NF4 blocksize 64, INT4 groups of 64 with float16 scales)\n");
  std::printf("%-6s %-6s %-18s %-15s %-15s %s\n", "format", "prod", "M x K x N", "wgmma fused", "mma.sync fused",
              "dequant + wgmma GEMM   (each: TFLOP/s, ms)");
  const int64_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};  // W [out, in]
  for (const Format format : {Format::Nf4, Format::Int4}) {
    for (const auto& shape : shapes) {
      std::vector<Weight> ws = rotatingCopies(format, shape[0], shape[1], 100);
      const int copies = int(ws.size());
      void* scratch = nullptr;
      cudaOrDie(cudaMalloc(&scratch, size_t(shape[0] * shape[1]) * 2), "cudaMalloc scratch");
      for (const int64_t m : {256, 1024, 4096}) {
        for (const bool transposed : {false, true}) {
          const int64_t k = transposed ? shape[0] : shape[1], n = transposed ? shape[1] : shape[0];
          const TimedOperands io(m, k, n);
          const TensorArg &xa = io.x, &ya = io.y;
          int next = 0;
          auto fused = [&](GemmPath path) {
            setGemmPath(path);
            const double ms = medianMs([&] { fusedProduct(ws[next++ % copies], xa, ya, transposed); });
            setGemmPath(GemmPath::Auto);
            return ms;
          };
          const double wg = fused(GemmPath::Wgmma), mma = fused(GemmPath::Pipelined);
          // Dequantize into scratch [out, in], then the bf16 GEMM with W (or Wᵀ, a transposed view).
          TensorArg wArg = matrixArg(scratch, DType::BFloat16, k, n, n);
          if (!transposed) {  // Wᵀ: a transposed view of W [n, k]
            wArg.strides[0] = 1;
            wArg.strides[1] = k;
          }
          TensorArg flat = denseArg(scratch, DType::BFloat16, shape[0] * shape[1]);
          const MatmulShape s = matmulShape("matmul", xa, wArg, ya);
          setGemmPath(GemmPath::Wgmma);
          const double dq = medianMs([&] {
            dequantize(ws[next++ % copies], flat);
            launchGemmWgmma(xa, wArg, ya, s);
          });
          setGemmPath(GemmPath::Auto);
          const double flops = 2.0 * double(m) * double(k) * double(n);
          auto tf = [&](double ms) { return flops / (ms * 1e-3) / 1e12; };
          char dims[64];
          std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
          std::printf("%-6s %-6s %-18s %7.1f %.3f %7.1f %.3f %7.1f %.3f ms\n", format == Format::Nf4 ? "nf4" : "int4",
                      transposed ? "dyW" : "xWt", dims, tf(wg), wg, tf(mma), mma, tf(dq), dq);
        }
      }
      cudaFree(scratch);
      for (Weight& w : ws) freeWeight(w);
    }
  }
}

// The Hopper kernel at 4096 rows with and without the epilogue term (λ 1 and 2), interleaved
// call by call over rotating weight copies: what adding an adapter's update in the epilogue costs.
void runEpilogueTimings() {
  std::printf("\n== The epilogue term on the wgmma kernel (bf16, M = 4096, median of 20, ms; NF4 blocksize 64)\n");
  std::printf("%-6s %-18s %9s %9s %9s\n", "prod", "M x K x N", "plain", "+ z (λ 1)", "+ z (λ 2)");
  const int64_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  const int64_t m = 4096;
  for (const auto& shape : shapes) {
    std::vector<Weight> ws = rotatingCopies(Format::Nf4, shape[0], shape[1], 200);
    const int copies = int(ws.size());
    for (const bool transposed : {false, true}) {
      const int64_t k = transposed ? shape[0] : shape[1], n = transposed ? shape[1] : shape[0];
      void *dx = nullptr, *dy = nullptr, *dz = nullptr;
      cudaOrDie(cudaMalloc(&dx, size_t(m * k) * 2), "cudaMalloc x");
      cudaOrDie(cudaMalloc(&dy, size_t(m * n) * 2), "cudaMalloc y");
      cudaOrDie(cudaMalloc(&dz, size_t(m * n) * 4), "cudaMalloc z");
      cudaOrDie(cudaMemset(dx, 0x3c, size_t(m * k) * 2), "fill x");
      cudaOrDie(cudaMemset(dz, 0, size_t(m * n) * 4), "fill z");
      const TensorArg xa = matrixArg(dx, DType::BFloat16, m, k, k), ya = matrixArg(dy, DType::BFloat16, m, n, n);
      const TensorArg z1 = matrixArg(dz, DType::Float32, m, n, n), z2 = matrixArg(dz, DType::Float32, m, n / 2, n / 2);
      int next = 0;
      setGemmPath(GemmPath::Wgmma);
      auto time = [&](const GemmAddend& addend) {
        return medianMs([&] { fusedProduct(ws[next++ % copies], xa, ya, transposed, addend); });
      };
      const double plain = time({}), one = time(GemmAddend{&z1, 1, 0.5}), two = time(GemmAddend{&z2, 2, 0.5});
      setGemmPath(GemmPath::Auto);
      char dims[64];
      std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
      std::printf("%-6s %-18s %9.3f %9.3f %9.3f   (+%.0f %%, +%.0f %%)\n", transposed ? "dyW" : "xWt", dims, plain, one, two,
                  100 * (one / plain - 1), 100 * (two / plain - 1));
      cudaFree(dx);
      cudaFree(dy);
      cudaFree(dz);
    }
    for (Weight& w : ws) freeWeight(w);
  }
}

// The Hopper kernel at few activation rows with each tile width and split forced, next to the
// automatic plan and the mma.sync kernel (`dev/quant_gemm_wgmma splits`): what the plan's cost
// model is fitted to. NF4, bf16, weights rotated as in the timings; ms, median of 20.
void runSplitTimings() {
  const wgmma::SplitPlan plans[] = {{128, 1}, {128, 2}, {128, 4}, {256, 1}, {256, 2}, {256, 3}, {256, 4}, {256, 8}};
  std::printf("\n== Split K on the wgmma kernel (NF4 blocksize 64, bf16, median of 20, ms)\n");
  std::printf("%-5s %-18s %8s %8s", "prod", "M x K x N", "mma.sync", "auto");
  for (const auto& p : plans) std::printf("  %3dx%-4d", p.bn, p.splits);
  std::printf("\n");
  const int64_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (const auto& shape : shapes) {
    std::vector<Weight> ws = rotatingCopies(Format::Nf4, shape[0], shape[1], 300);
    const int copies = int(ws.size());
    for (const int64_t m : {64, 128, 256, 512, 1024}) {
      for (const bool transposed : {false, true}) {
        const int64_t k = transposed ? shape[0] : shape[1], n = transposed ? shape[1] : shape[0];
        const TimedOperands io(m, k, n);
        const TensorArg &xa = io.x, &ya = io.y;
        int next = 0;
        auto time = [&](GemmPath path, wgmma::SplitPlan plan) {
          setGemmPath(path);
          wgmma::forcedFusedQuantPlan() = plan;
          const double ms = medianMs([&] { fusedProduct(ws[next++ % copies], xa, ya, transposed); });
          wgmma::forcedFusedQuantPlan() = {};
          setGemmPath(GemmPath::Auto);
          return ms;
        };
        char dims[64];
        std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        std::printf("%-5s %-18s %8.4f %8.4f", transposed ? "dyW" : "xWt", dims, time(GemmPath::Pipelined, {}),
                    time(GemmPath::Wgmma, {}));
        for (const auto& p : plans) std::printf("  %8.4f", time(GemmPath::Wgmma, p));
        setGemmPath(GemmPath::Wgmma);
        const wgmma::SplitPlan chosen = wgmma::fusedQuantPlan(m, k, n);
        setGemmPath(GemmPath::Auto);
        std::printf("   auto: %dx%d\n", chosen.bn, chosen.splits);
      }
    }
    for (Weight& w : ws) freeWeight(w);
  }
}

// The automatic plan's time against K at 1024 and 4096 rows of a 4096-feature weight (one and
// four rounds of 128 x 256 tiles): the slope is a step's cost, the rest the units' fixed cost.
void runUnitCostTimings() {
  std::printf("\n== One unit's fixed cost: NF4 x·Wᵀ, N = 4096, bf16, median of 20, ms\n%-6s", "M \\ K");
  const int64_t ks[] = {1024, 2048, 4096, 8192};
  for (const int64_t k : ks) std::printf(" %8lld", (long long)k);
  std::printf("\n");
  const int64_t n = 4096;
  std::vector<std::vector<Weight>> weights;
  for (const int64_t k : ks) weights.push_back(rotatingCopies(Format::Nf4, n, k, 400));
  for (const int64_t m : {1024, 4096}) {
    std::printf("%-6lld", (long long)m);
    for (size_t i = 0; i < weights.size(); i++) {
      const TimedOperands io(m, ks[i], n);
      const std::vector<Weight>& ws = weights[i];
      int next = 0;
      setGemmPath(GemmPath::Wgmma);
      std::printf(" %8.4f", medianMs([&] { fusedProduct(ws[next++ % ws.size()], io.x, io.y, false); }));
      setGemmPath(GemmPath::Auto);
    }
    std::printf("\n");
  }
  for (auto& ws : weights) {
    for (Weight& w : ws) freeWeight(w);
  }
}

// One forward launch of each format at 4096 x 4096 x 4096 on the wgmma kernel, for a profiler
// (`dev/quant_gemm_wgmma profile`).
void runProfile() {
  for (const Format format : {Format::Nf4, Format::Int4}) {
    Weight w = makeWeight(format, 4096, 4096, 64, true, 7);
    void *dx = nullptr, *dy = nullptr;
    cudaOrDie(cudaMalloc(&dx, size_t(4096) * 4096 * 2), "cudaMalloc x");
    cudaOrDie(cudaMalloc(&dy, size_t(4096) * 4096 * 2), "cudaMalloc y");
    cudaOrDie(cudaMemset(dx, 0x3c, size_t(4096) * 4096 * 2), "fill x");
    const TensorArg xa = matrixArg(dx, DType::BFloat16, 4096, 4096, 4096), ya = matrixArg(dy, DType::BFloat16, 4096, 4096, 4096);
    setGemmPath(GemmPath::Wgmma);
    fusedProduct(w, xa, ya, false);
    waitOrDie("profile");
    cudaFree(dx);
    cudaFree(dy);
    freeWeight(w);
  }
}

}  // namespace quant_gemm_dev

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "profile") {
    quant_gemm_dev::runProfile();
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "epilogue") {
    quant_gemm_dev::runEpilogueTimings();
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "splits") {
    if (!blora::probeDevice().available || !blora::wgmmaAvailable()) return 2;
    quant_gemm_dev::runSplitTimings();
    quant_gemm_dev::runUnitCostTimings();
    return 0;
  }
  const std::string mode = blora::dev::harnessMode(argc, argv);
  if (mode.empty()) return 2;
  if (!blora::wgmmaAvailable()) {
    std::printf("no Hopper (sm_90a) image for this GPU: nothing to check\n");
    return 2;
  }
  try {
    if (mode != "time") quant_gemm_dev::runChecks();
    if (mode != "check") quant_gemm_dev::runTimings();
  } catch (const std::exception& e) {
    std::printf("FATAL: %s\n", e.what());
    return 2;
  }
  std::printf("\n%s\n", blora::dev::failures ? "SOME CHECKS FAILED" : "all checks passed");
  return blora::dev::failures ? 1 : 0;
}
