// Standalone check and timing of the tensor-core 4-bit GEMV (native/quant_gemv_tc.cuh) for
// decoding shapes (M = 1..16 activation rows), NF4 and INT4 weights (float32 or float16 scales),
// as the addon launches it and in fixed configurations, next to the ceiling that bounds it: a
// kernel that only reads the same code and scale bytes. (bench/results/logs/gemv4-2026-12-01-groups.log
// also times the kernel it replaced.) The `tiles` configurations run the same kernel on NF4 / INT4
// weights in the decode tile layout (FourBitTiles / IntTiles, native/quant_gemv_tc.cuh), built here on
// the host as an independent check of launchFourBitDecodeTiles and of @blora/quant's int4DecodeTiles.
//
// Build: dev/build.sh gemv4. Run:
//   dev/gemv4          checks, then timings
//   dev/gemv4 check    checks only
//   dev/gemv4 time     timings only (GEMV4_ONLY=a,b: only the configurations named with a or b;
//                      GEMV4_FORMATS=nf4,int4h: only these formats)
//   dev/gemv4 profile  one launch of each configuration, for ncu
// Checks: every launch configuration against a float64 CPU reference built from the very
// weights the dequantize kernels produce (rounded to the activation dtype), on seeded random
// codes, scales and activations, odd sizes included. Timings: one call per weight copy (copies
// together >= 2.5 x the 60 MB L2) captured in a CUDA graph, replayed back to back between two
// events; the median of 9 samples; then the addon's launch again on one copy, which stays in L2.
// The read-only ceiling is timed four ways: plain launches; dependent launches that let the next
// start at once, which stream close to the memory's peak; the same with two blocks an SM (about
// the warps the GEMV has); and dependent launches that first wait for the kernel before, as a
// GEMV whose input is that kernel's output must before it computes. Then staged: each block copies
// (part of) its share into shared memory before that wait, by cp.async or bulk copies, letting the
// next launch start before or after the wait (a GEMV built on that, slower than the shipped one, is
// in the history: "tried a staged 4-bit GEMV").
// GB/s counts the bytes of codes + scales (+ offsets) once per call. The weights are built in
// gemv4_weights.cuh, the read-only kernels live in gemv4_ceilings.cuh.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../native/device.cc"
#include "../native/quant_gemv_tc.cuh"
#include "harness.cuh"
#include "gemv4_ceilings.cuh"
#include "gemv4_weights.cuh"

namespace gemv_dev {

using namespace blora;
using dev::cudaOrDie;
using dev::failures;
using dev::waitOrDie;


// FourBitTiles and IntTiles (native/quant_gemv_tc.cuh) read the layout makeTiles builds on the host here.

// Sources that read the decode tile layout (the tile configurations).
template <typename Source>
constexpr bool kTileSource = std::is_same_v<Source, FourBitTiles> || std::is_same_v<Source, IntTiles<float>> ||
                             std::is_same_v<Source, IntTiles<__half>>;

// --- launching one configuration ---

using Bf16 = __nv_bfloat16;

// A configuration of the GEMV: Warps warps a block taking Unroll groups a turn, registers capped
// for minBlocks blocks an SM, loading a turn ahead or not, prefetching activations or not
// (GemvShape); warps = 0 is the addon's choice (launchGemvGroups). overlap: a programmatic
// dependent launch (GemvOverlap) that waits before reading anything (1: kLaunch) or builds the
// table and loads the first turn first (2: kSettled). scaleVectors false: one scale a load; tiles:
// the weight in the decode tile layout (FourBitTiles / IntTiles), for weights with blocks of 64 and
// rows of whole quads of groups only.
struct Config {
  int warps, unroll, minBlocks;
  bool ahead, prefetch;
  int overlap;
  bool scaleVectors, tiles;
  std::string name() const {
    const std::string tail = (overlap ? "/overlap" + std::to_string(overlap) : "") + (scaleVectors ? "" : "/scalar") + (tiles ? "/tiles" : "");
    if (warps == 0) return "addon" + tail;
    return "w" + std::to_string(warps) + "/u" + std::to_string(unroll) + "/b" + std::to_string(minBlocks) + (ahead ? "/ahead" : "") +
           (prefetch ? "/px" : "") + tail;
  }
  bool fits(const struct Weight& w) const;
};
// The launch shapes compiled (W, U, B, Ahead, PrefetchX), for weights in the bitsandbytes layout and in tiles.
#define BLORA_GEMV_CONFIGS(X) \
  X(8, 4, 1, false, false) X(8, 4, 1, false, true) X(16, 2, 2, false, false) X(16, 2, 2, false, true) X(8, 4, 3, false, false)
#define BLORA_GEMV_TILE_CONFIGS(X) BLORA_GEMV_CONFIGS(X) X(8, 2, 2, true, false) X(8, 2, 2, true, true)
const Config kConfigs[] = {
    {0, 0, 0, false, false, 0, true, false}, {0, 0, 0, false, false, 1, true, false}, {0, 0, 0, false, false, 2, true, false},
    {8, 4, 1, false, false, 1, true, false}, {8, 4, 1, false, true, 1, true, false},  {8, 4, 1, false, false, 2, true, false},
    {8, 4, 1, false, true, 2, true, false},  {16, 2, 2, false, false, 2, true, false}, {16, 2, 2, false, true, 2, true, false},
    {0, 0, 0, false, false, 0, true, true},  {0, 0, 0, false, false, 1, true, true},  {0, 0, 0, false, false, 2, true, true},
    {8, 4, 1, false, false, 1, true, true},  {8, 4, 1, false, true, 1, true, true},   {8, 4, 1, false, false, 2, true, true},
    {8, 4, 1, false, true, 2, true, true},   {16, 2, 2, false, false, 2, true, true}, {16, 2, 2, false, true, 2, true, true},
    {8, 2, 2, true, false, 1, true, true},   {8, 2, 2, true, true, 1, true, true},    {8, 2, 2, true, true, 2, true, true},
    {8, 4, 3, false, false, 2, true, false}, {8, 4, 3, false, false, 2, true, true}};
bool Config::fits(const Weight& w) const { return !tiles || w.dTiles != nullptr; }

template <typename Source, int G>
void launchConfig(const Config& c, const Weight& w, const Source& src, const Bf16* x, int rows, Bf16* y) {
  const GemvOverlap overlap = c.overlap == 2 ? GemvOverlap::kSettled : c.overlap == 1 ? GemvOverlap::kLaunch : GemvOverlap::kNone;
  const GemvArgs<Bf16> args{x, w.in, rows, w.dTable, y, w.out, w.in, overlap};
  if (c.warps == 0) return cudaOrDie(launchGemvGroups<Bf16, Source, G>(args, src, stream()), "GEMV launch");
#define BLORA_GEMV_CONFIG_LAUNCH(W, U, B, A, P)                                                 \
  if (c.warps == W && c.unroll == U && c.minBlocks == B && c.ahead == A && c.prefetch == P) \
    return cudaOrDie(launchGemvGroupsWith<Bf16, Source, G, GemvShape<W, U, B, A, P>>(args, src, stream(), c.scaleVectors), "GEMV launch");
  if constexpr (kTileSource<Source>) {
    BLORA_GEMV_TILE_CONFIGS(BLORA_GEMV_CONFIG_LAUNCH)
  } else {
    BLORA_GEMV_CONFIGS(BLORA_GEMV_CONFIG_LAUNCH)
  }
  std::printf("FATAL: no kernel for %s\n", c.name().c_str());
  std::exit(2);
}

void launch(const Config& c, const Weight& w, const Bf16* x, int rows, Bf16* y) {
  const int shift = w.block == 64 ? 6 : 5;
  if (c.tiles && w.format == Format::Nf4) {
    launchConfig<FourBitTiles, 64>(c, w, FourBitTiles{w.dTiles, static_cast<const float*>(w.dTileScales), w.in}, x, rows, y);
  } else if (c.tiles && w.format == Format::Int4) {
    const IntTiles<float> src{w.dTiles, static_cast<const float*>(w.dTileScales), static_cast<const float*>(w.dTileOffsets), w.in};
    launchConfig<IntTiles<float>, 64>(c, w, src, x, rows, y);
  } else if (c.tiles) {
    const IntTiles<__half> src{w.dTiles, static_cast<const __half*>(w.dTileScales), static_cast<const __half*>(w.dTileOffsets), w.in};
    launchConfig<IntTiles<__half>, 64>(c, w, src, x, rows, y);
  } else if (w.format == Format::Nf4) {
    const FourBitGroups src{w.dCodes, static_cast<const float*>(w.dScales), w.in, shift};
    if (w.block == 64) launchConfig<FourBitGroups, 64>(c, w, src, x, rows, y);
    else launchConfig<FourBitGroups, 32>(c, w, src, x, rows, y);
  } else if (w.format == Format::Int4) {
    const IntGroups<float> src{w.dCodes, static_cast<const float*>(w.dScales), static_cast<const float*>(w.dOffsets), w.in, 1, w.in / w.block, shift};
    if (w.block == 64) launchConfig<IntGroups<float>, 64>(c, w, src, x, rows, y);
    else launchConfig<IntGroups<float>, 32>(c, w, src, x, rows, y);
  } else {
    const IntGroups<__half> src{w.dCodes, static_cast<const __half*>(w.dScales), static_cast<const __half*>(w.dOffsets), w.in, 1, w.in / w.block, shift};
    if (w.block == 64) launchConfig<IntGroups<__half>, 64>(c, w, src, x, rows, y);
    else launchConfig<IntGroups<__half>, 32>(c, w, src, x, rows, y);
  }
  cudaOrDie(cudaGetLastError(), "GEMV launch");
}


// --- checks ---

std::vector<uint16_t> randomActivations(int rows, int64_t in, uint64_t seed) {
  std::vector<uint16_t> x(size_t(rows * in));
  for (auto& v : x) v = bf16Bits(2.f * uniform(seed) - 1.f);
  return x;
}

float fromBits(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

bool checkOne(Format f, int64_t out, int64_t in, int rows, int block, uint64_t seed) {
  Weight w = makeWeight(f, out, in, seed, block);
  const std::vector<uint16_t> x = randomActivations(rows, in, seed + 99);
  std::vector<double> ref(size_t(rows * out));
  double refSq = 0;
  for (int m = 0; m < rows; m++) {
    for (int64_t r = 0; r < out; r++) {
      double s = 0;
      for (int64_t c = 0; c < in; c++) s += double(fromBits(x[m * in + c])) * double(w.value(r, c));
      ref[m * out + r] = s;
      refSq += s * s;
    }
  }
  const double rms = std::sqrt(refSq / std::max<double>(1, double(ref.size())));
  Bf16 *dx, *dy;
  cudaOrDie(cudaMalloc(&dx, x.size() * 2), "cudaMalloc x");
  cudaOrDie(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice), "copy x");
  cudaOrDie(cudaMalloc(&dy, ref.size() * 2), "cudaMalloc y");
  bool ok = true;
  for (const Config& c : kConfigs) {
    if (!c.fits(w)) continue;
    cudaOrDie(cudaMemsetAsync(dy, 0xff, ref.size() * 2, stream()), "poison y");
    for (int rep = 0; rep < 2; rep++) launch(c, w, dx, rows, dy);  // twice: nothing may carry over
    waitOrDie("GEMV check");
    std::vector<uint16_t> y(ref.size());
    cudaOrDie(cudaMemcpy(y.data(), dy, y.size() * 2, cudaMemcpyDeviceToHost), "copy y");
    double worst = 0;
    for (size_t i = 0; i < y.size(); i++) {
      const double v = fromBits(y[i]);
      const double err = std::isfinite(v) ? std::fabs(v - ref[i]) : 1e30;
      worst = std::max(worst, err / (std::fabs(ref[i]) + rms));
    }
    // bfloat16 output rounding (2^-9 relative), float32 sums, and weights (or NF4 code values)
    // rounded to bfloat16 (the reference keeps them exact).
    const bool pass = worst < 1e-2;
    if (!pass) {
      ok = false;
      failures++;
    }
    std::printf("  %-5s %6lldx%-6lld block %2d M=%-2d %-18s worst |err| / (|ref| + rms) = %.2e %s\n", formatName(f), (long long)out,
                (long long)in, block, rows, c.name().c_str(), worst, pass ? "ok" : "FAIL");
  }
  cudaFree(dx);
  cudaFree(dy);
  release(w);
  return ok;
}

void runChecks() {
  std::printf("\n== Correctness (float64 reference on the dequantized weights) ==\n");
  uint64_t seed = 11;
  const struct {
    int64_t out, in;
    int rows, block;
  } shapes[] = {{8, 128, 1, 64},    {37, 384, 3, 64},    {100, 1024, 16, 64}, {257, 2176, 9, 64}, {1000, 4096, 1, 64},
                {64, 11008, 5, 64}, {72, 96, 8, 32},     {131, 160, 12, 32},  {33, 4096, 16, 32}, {8, 64, 2, 64},
                {40, 768, 12, 64},  {3000, 1280, 7, 64}, {4100, 1024, 3, 64}, {4100, 512, 11, 64}};
  for (Format f : {Format::Nf4, Format::Int4, Format::Int4h}) {
    for (const auto& s : shapes) checkOne(f, s.out, s.in, s.rows, s.block, seed++);
  }
}

// --- timings ---

double graphMicros(int copies, const std::function<void(int)>& enqueue) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cudaOrDie(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal), "begin capture");
  for (int i = 0; i < copies; i++) enqueue(i);
  cudaOrDie(cudaStreamEndCapture(stream(), &graph), "end capture");
  cudaOrDie(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  for (int i = 0; i < 3; i++) cudaGraphLaunch(exec, stream());
  waitOrDie("graph warm-up");
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> samples;
  for (int s = 0; s < 9; s++) {
    cudaEventRecord(a, stream());
    for (int r = 0; r < 20; r++) cudaGraphLaunch(exec, stream());
    cudaEventRecord(b, stream());
    waitOrDie("graph replays");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    samples.push_back(1000.0 * ms / (20.0 * copies));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

__global__ void copyKernel(const uint4* src, uint4* dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] = __ldg(src + i);
}

// A plain 16-byte grid-stride copy of 1 GiB (what the benchmarks call copy bandwidth), read + written bytes.
double copyGBs() {
  const size_t bytes = size_t(1) << 30;
  void *src, *dst;
  cudaOrDie(cudaMalloc(&src, bytes), "cudaMalloc copy");
  cudaOrDie(cudaMalloc(&dst, bytes), "cudaMalloc copy");
  cudaMemsetAsync(src, 1, bytes, stream());
  const double us = graphMicros(1, [&](int) {
    copyKernel<<<smCount() * 8, 256, 0, stream()>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), int64_t(bytes / 16));
  });
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * double(bytes) / (us * 1e-6) / 1e9;
}

// GEMV4_ONLY=a,b: time only the configurations whose name contains one of these (the first, the addon's, always).
bool selected(const Config& c) {
  const char* only = std::getenv("GEMV4_ONLY");
  if (only == nullptr || *only == 0 || &c == &kConfigs[0]) return true;
  const std::string list = std::string(only) + ",", name = c.name();
  for (size_t start = 0, end; (end = list.find(',', start)) != std::string::npos; start = end + 1) {
    if (end > start && name.find(list.substr(start, end - start)) != std::string::npos) return true;
  }
  return false;
}

void timeShape(Format f, int64_t out, int64_t in, const std::vector<int>& rowsList, double copy) {
  Weight first = makeWeight(f, out, in, 5);
  const int copies = int(std::min(32.0, std::ceil(150e6 / first.bytes())));
  std::vector<Weight> ws{first};
  for (int i = 1; i < copies; i++) ws.push_back(makeWeight(f, out, in, 5 + i));
  const std::vector<uint16_t> x = randomActivations(16, in, 3);
  Bf16 *dx, *dy;
  uint32_t* sink;
  cudaOrDie(cudaMalloc(&dx, x.size() * 2), "cudaMalloc x");
  cudaOrDie(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice), "copy x");
  cudaOrDie(cudaMalloc(&dy, size_t(16 * out * 2)), "cudaMalloc y");
  cudaOrDie(cudaMalloc(&sink, 1 << 16), "cudaMalloc sink");
  const double bytes = first.bytes();
  const double readUs = graphMicros(copies, [&](int i) {
    const WeightWords v = wordsOf(ws[size_t(i)]);
    readOnlyKernel<false><<<smCount() * 8, 256, 0, stream()>>>(v.codes, v.nCodes, v.scales, v.nScales, v.offsets, v.nOffsets, sink);
  });
  std::printf("%-5s %6lldx%-6lld %5.2f MB  read-only ceiling %7.2f us = %6.0f GB/s = %5.1f %% of copy\n", formatName(f),
              (long long)out, (long long)in, bytes / 1e6, readUs, bytes / (readUs * 1e-6) / 1e9,
              100.0 * bytes / (readUs * 1e-6) / 1e9 / copy);
  // Dependent launches of the read-only kernel, `perSM` blocks an SM; wait: each waits for the one before.
  auto dependentReadUs = [&](int perSM, bool wait) {
    return graphMicros(copies, [&](int i) {
      const WeightWords v = wordsOf(ws[size_t(i)]);
      launchDependentOrDie("read-only launch", wait ? readOnlyKernel<true, true> : readOnlyKernel<true, false>, unsigned(smCount() * perSM), 256, 0,
                           v.codes, v.nCodes, v.scales, v.nScales, v.offsets, v.nOffsets, sink);
    });
  };
  for (const auto& [perSM, wait, what] : {std::tuple{8, false, "dependent launches"}, std::tuple{2, false, "dependent launches, 2 blocks an SM"},
                                          std::tuple{8, true, "dependent launches waiting for the one before"}}) {
    const double us = dependentReadUs(perSM, wait);
    std::printf("      read-only ceiling, %-45s %7.2f us = %6.0f GB/s = %5.1f %% of copy\n", what, us, bytes / (us * 1e-6) / 1e9,
                100.0 * bytes / (us * 1e-6) / 1e9 / copy);
  }
  // Staged in shared memory before the wait: `perSM` blocks an SM, each staging up to `kb` KB of its share.
  auto stagedReadUs = [&](int perSM, int kb, bool early, bool bulk) {
    const int blocks = smCount() * perSM;
    const int64_t words = int64_t(bytes / 16), share = (words + blocks - 1) / blocks;
    const int64_t staged = std::min<int64_t>(share, int64_t(kb) * 1024 / 16);
    const auto kernel = bulk ? (early ? stagedReadKernel<true, true> : stagedReadKernel<false, true>)
                             : (early ? stagedReadKernel<true> : stagedReadKernel<false>);
    cudaOrDie(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(staged * 16)), "staged smem");
    const double us = graphMicros(copies, [&](int i) {
      const WeightWords v = wordsOf(ws[size_t(i)]);
      launchDependentOrDie("staged read-only launch", kernel, unsigned(blocks), 512, size_t(staged * 16), v.codes, v.nCodes, v.scales, v.nScales,
                           v.offsets, v.nOffsets, staged, sink);
    });
    std::printf("      read-only, staged %3lld of %3lld KB a block before the wait%s, %d a SM, trigger %-6s %7.2f us = %6.0f GB/s = %5.1f %% of copy\n",
                (long long)(staged * 16 / 1024), (long long)(share * 16 / 1024), bulk ? " (bulk copies)" : "", perSM, early ? "first" : "after", us,
                bytes / (us * 1e-6) / 1e9, 100.0 * bytes / (us * 1e-6) / 1e9 / copy);
  };
  for (const auto& [perSM, kb] : {std::pair{1, 100}, std::pair{2, 36}, std::pair{2, 50}, std::pair{3, 36}}) {
    for (bool early : {false, true}) {
      for (bool bulk : {false, true}) stagedReadUs(perSM, kb, early, bulk);
    }
  }
  std::fflush(stdout);
  for (int rows : rowsList) {
    double best = 1e30;
    const Config* bestConfig = &kConfigs[0];
    for (const Config& c : kConfigs) {
      if (!c.fits(first) || !selected(c)) continue;
      const double us = graphMicros(copies, [&](int i) { launch(c, ws[size_t(i)], dx, rows, dy); });
      const double gbs = bytes / (us * 1e-6) / 1e9;
      std::printf("    M=%-2d %-20s %7.2f us %6.0f GB/s %5.1f %% of copy %5.1f %% of read-only\n", rows, c.name().c_str(), us, gbs,
                  100.0 * gbs / copy, 100.0 * readUs / us);
      if (us < best) best = us, bestConfig = &c;
    }
    std::printf("  best M=%-2d %s %.2f us (%.1f %% of copy)\n", rows, bestConfig->name().c_str(), best,
                100.0 * bytes / (best * 1e-6) / 1e9 / copy);
    // The same calls on one weight copy, which stays in L2: what the kernel costs without DRAM.
    for (const Config* c : {&kConfigs[0], bestConfig}) {
      const double hotUs = graphMicros(copies, [&](int) { launch(*c, ws[0], dx, rows, dy); });
      std::printf("  L2-resident M=%-2d %s %.2f us\n", rows, c->name().c_str(), hotUs);
    }
    std::fflush(stdout);
  }
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(sink);
  for (Weight& w : ws) release(w);
}

void runTimings() {
  const double copy = copyGBs();
  std::printf("\n== Timings (graph replays, weights rotated over >= 150 MB) ==\ndevice-to-device copy 1 GiB: %.0f GB/s (read + write)\n",
              copy);
  const std::vector<int> rows = {1, 4, 16};
  const char* formats = std::getenv("GEMV4_FORMATS");  // e.g. nf4,int4h: only these formats
  for (Format f : {Format::Nf4, Format::Int4, Format::Int4h}) {
    if (formats != nullptr && *formats != 0 && (std::string(",") + formats + ",").find(std::string(",") + formatName(f) + ",") == std::string::npos) continue;
    timeShape(f, 4096, 4096, rows, copy);
    timeShape(f, 11008, 4096, rows, copy);
    timeShape(f, 4096, 11008, rows, copy);
  }
}

// For a profiler (`dev/gemv4 profile`): one launch of every configuration at M = 1 and M = 16,
// NF4 then INT4, on 4096 x 4096 then 11008 x 4096.
void runProfile() {
  blora::probeDevice();
  const std::vector<uint16_t> x = randomActivations(16, 4096, 3);
  Bf16 *dx, *dy;
  cudaOrDie(cudaMalloc(&dx, x.size() * 2), "cudaMalloc x");
  cudaOrDie(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice), "copy x");
  cudaOrDie(cudaMalloc(&dy, 16 * 11008 * 2), "cudaMalloc y");
  int launches = 0;
  for (Format f : {Format::Nf4, Format::Int4, Format::Int4h}) {
    for (int64_t out : {4096, 11008}) {
      Weight w = makeWeight(f, out, 4096, 5);
      for (int rows : {1, 16}) {
        for (const Config& c : kConfigs) {
          if (!c.fits(w)) continue;
          // The launch's index, for the profiler's --launch-skip.
          std::printf("launch %d: %s %lldx4096 M=%d %s\n", launches++, formatName(f), (long long)out, rows, c.name().c_str());
          launch(c, w, dx, rows, dy);
        }
      }
      waitOrDie("profile");
      release(w);
    }
  }
}

}  // namespace gemv_dev

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "profile") {
    gemv_dev::runProfile();
    return 0;
  }
  const std::string mode = blora::dev::harnessMode(argc, argv);
  if (mode.empty()) return 2;
  if (mode != "time") gemv_dev::runChecks();
  if (mode != "check") gemv_dev::runTimings();
  std::printf("\n%d failed checks\n", blora::dev::failures);
  return blora::dev::failures == 0 ? 0 : 1;
}
