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
// GB/s counts the bytes of codes + scales (+ offsets) once per call.
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

namespace gemv_dev {

using namespace blora;
using dev::cudaOrDie;
using dev::failures;
using dev::waitOrDie;

// --- host data ---

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
float uniform(uint64_t& s) { return float(splitmix(s) >> 40) / float(1 << 24); }  // [0, 1)

float bf16Round(float v) {  // round to nearest even, as __float2bfloat16_rn
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&v, &u, 4);
  return v;
}
uint16_t bf16Bits(float v) {
  v = bf16Round(v);
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return uint16_t(u >> 16);
}

// The NF4 code values (the standard normal quantiles of the format, to float32 precision).
const float kNf4[16] = {-1.0f, -0.6961928f, -0.5250731f, -0.3949175f, -0.2844414f, -0.1848449f, -0.0910500f, 0.0f,
                        0.0795803f, 0.1609302f, 0.2461123f, 0.3379152f, 0.4407098f, 0.5626170f, 0.7229568f, 1.0f};

// Int4h: float16 alpha / beta (as the addon's INT4 weights usually carry); Int4: float32.
enum class Format { Nf4, Int4, Int4h };
const char* formatName(Format f) { return f == Format::Nf4 ? "nf4" : f == Format::Int4 ? "int4" : "int4h"; }

float halfRound(float v) { return __half2float(__float2half_rn(v)); }

// One quantized weight [out, in] (blocks of `block` = 32 or 64 along the input dim) on host and device.
struct Weight {
  Format format;
  int64_t out, in;
  int block;
  std::vector<uint8_t> codes;               // out * in / 2, high nibble first
  std::vector<float> scales, offsets;       // absmax (NF4) or alpha / beta (INT4), per block
  uint8_t* dCodes = nullptr;
  void *dScales = nullptr, *dOffsets = nullptr;
  float* dTable = nullptr;
  uint8_t* dTiles = nullptr;  // the same weight in the decode tile layout (FourBitTiles / IntTiles), where it fits
  void *dTileScales = nullptr, *dTileOffsets = nullptr;
  size_t scaleBytes() const { return format == Format::Int4h ? 2 : 4; }
  double bytes() const { return double(codes.size()) + double(scaleBytes()) * double(scales.size() + offsets.size()); }
  // The weight the dequantize kernels build, as float32.
  float value(int64_t r, int64_t c) const {
    const int64_t i = r * in + c;
    const uint32_t q = (i & 1) ? (codes[i >> 1] & 15u) : (codes[i >> 1] >> 4);
    const int64_t b = i / block;
    if (format == Format::Nf4) return kNf4[q] * scales[b];
    return float(double(scales[b]) * double(q) + double(offsets[b]));
  }
};

void makeTiles(Weight& w);

Weight makeWeight(Format f, int64_t out, int64_t in, uint64_t seed, int block = 64) {
  Weight w{f, out, in, block};
  w.codes.resize(size_t(out * in / 2));
  for (auto& b : w.codes) b = uint8_t(splitmix(seed));
  const int64_t blocks = out * in / block;
  w.scales.resize(size_t(blocks));
  const bool half = f == Format::Int4h;
  for (auto& s : w.scales) s = 0.02f + 0.05f * uniform(seed);
  if (f != Format::Nf4) {
    w.offsets.resize(size_t(blocks));
    for (auto& o : w.offsets) o = -8.f * 0.04f * uniform(seed);
  }
  if (half) {
    for (auto& s : w.scales) s = halfRound(s);
    for (auto& o : w.offsets) o = halfRound(o);
  }
  // The scales as the device holds them (float32 or float16).
  auto upload = [&](const std::vector<float>& v, void** d) {
    std::vector<__half> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = __float2half_rn(v[i]);
    cudaOrDie(cudaMalloc(d, v.size() * w.scaleBytes()), "cudaMalloc scales");
    cudaOrDie(cudaMemcpy(*d, half ? static_cast<const void*>(h.data()) : static_cast<const void*>(v.data()), v.size() * w.scaleBytes(),
                         cudaMemcpyHostToDevice),
              "copy scales");
  };
  cudaOrDie(cudaMalloc(&w.dCodes, w.codes.size()), "cudaMalloc codes");
  cudaOrDie(cudaMemcpy(w.dCodes, w.codes.data(), w.codes.size(), cudaMemcpyHostToDevice), "copy codes");
  upload(w.scales, &w.dScales);
  if (f != Format::Nf4) {
    upload(w.offsets, &w.dOffsets);
  } else {
    cudaOrDie(cudaMalloc(&w.dTable, 64), "cudaMalloc table");
    cudaOrDie(cudaMemcpy(w.dTable, kNf4, 64, cudaMemcpyHostToDevice), "copy table");
  }
  if (block == 64 && in % 256 == 0) makeTiles(w);
  return w;
}

// The weight (blocks of 64, rows of whole quads of groups) rearranged into the decode tile layout:
// codes, and absmax (NF4) or alpha and beta (INT4) in the device's scale dtype.
void makeTiles(Weight& w) {
  const int64_t sets = (w.out + 15) / 16, groups = w.in / 64;
  std::vector<uint8_t> tiles(size_t(sets * groups * 512), 0);
  std::vector<float> scales(size_t(sets * groups * 16), 0.f), offsets(scales.size(), 0.f);
  for (int64_t s = 0; s < sets; s++) {
    for (int64_t q = 0; q < groups; q++) {
      for (int lane = 0; lane < 32; lane++) {
        for (int half = 0; half < 2; half++) {
          const int64_t row = 16 * s + lane / 4 + 8 * half;
          if (row >= w.out) continue;
          std::memcpy(&tiles[size_t((s * groups + q) * 512 + 16 * lane + 8 * half)], &w.codes[size_t(row * w.in / 2 + 32 * q + 8 * (lane % 4))], 8);
          if (lane % 4 != 0) continue;
          const size_t at = size_t((s * groups / 4 + q / 4) * 64 + (lane / 4) * 8 + 4 * half + q % 4);
          scales[at] = w.scales[size_t(row * groups + q)];
          if (w.format != Format::Nf4) offsets[at] = w.offsets[size_t(row * groups + q)];
        }
      }
    }
  }
  cudaOrDie(cudaMalloc(&w.dTiles, tiles.size()), "cudaMalloc tiles");
  cudaOrDie(cudaMemcpy(w.dTiles, tiles.data(), tiles.size(), cudaMemcpyHostToDevice), "copy tiles");
  auto upload = [&](const std::vector<float>& v, void** d) {
    std::vector<__half> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = __float2half_rn(v[i]);
    const bool half = w.scaleBytes() == 2;
    cudaOrDie(cudaMalloc(d, v.size() * w.scaleBytes()), "cudaMalloc tile scales");
    cudaOrDie(cudaMemcpy(*d, half ? static_cast<const void*>(h.data()) : static_cast<const void*>(v.data()), v.size() * w.scaleBytes(),
                         cudaMemcpyHostToDevice),
              "copy tile scales");
  };
  upload(scales, &w.dTileScales);
  if (w.format != Format::Nf4) upload(offsets, &w.dTileOffsets);
}

void release(Weight& w) {
  cudaFree(w.dTiles);
  cudaFree(w.dTileScales);
  cudaFree(w.dTileOffsets);
  cudaFree(w.dCodes);
  cudaFree(w.dScales);
  cudaFree(w.dOffsets);
  cudaFree(w.dTable);
}

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

// The ceiling: read every 16-byte word of codes, scales and offsets (c; none for NF4) once, fold
// them, write one word per block.
// Trigger: lets the next launch (a programmatic dependent launch) start at once, as the GEMV
// launches of the addon do, so that the launch gap and ramp overlap this one's tail. Wait: first
// waits for the kernel before to complete (nothing is read earlier), as every GEMV does before it
// computes.
template <bool Trigger = false, bool Wait = false>
__global__ void readOnlyKernel(const uint4* a, int64_t na, const uint4* b, int64_t nb, const uint4* c, int64_t nc, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (Wait) asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if constexpr (Trigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < na; i += stride) {
    const uint4 v = __ldg(a + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nb; i += stride) {
    const uint4 v = __ldg(b + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nc; i += stride) {
    const uint4 v = __ldg(c + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
}

// A bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) into shared memory,
// completing on the mbarrier at `bar` (sm_90).
__device__ __forceinline__ void bulkCopyToShared(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
#endif
}

// Makes the mbarrier at `bar` expect `bytes` of copies from one arrival (this thread's, now).
__device__ __forceinline__ void stagingBarrierExpect(uint32_t bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}

// Waits until the copies of stagingBarrierExpect have landed (after a __syncthreads that makes the
// barrier's initialization visible).
__device__ __forceinline__ void stagingBarrierWait(uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  for (uint32_t done = 0; !done;) {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar)
                 : "memory");
  }
#endif
}

// The read-only ceiling for a GEMV that holds its weight on chip before waiting: each block copies
// the first `staged` 16-byte words of its share of the bytes (a, b and c split evenly between the
// blocks, in that order) into shared memory with cp.async before it waits for the kernel before,
// reads the rest of its share after the wait, then folds what it staged. EarlyTrigger: lets the
// next launch start before the wait (so its blocks can stage while this one waits and folds);
// otherwise only after it. Only for bytes no kernel in flight writes.
// Bulk: thread 0 stages with bulk copies (the copy engine, one to three a block) instead.
template <bool EarlyTrigger, bool Bulk = false>
__global__ void stagedReadKernel(const uint4* a, int64_t na, const uint4* b, int64_t nb, const uint4* c, int64_t nc, int64_t staged,
                                 uint32_t* sink) {
  extern __shared__ uint4 stage[];
  __shared__ __align__(8) uint64_t bar;
  const int64_t n = na + nb + nc, blocks = gridDim.x;
  const int64_t begin = n * blockIdx.x / blocks, end = n * (blockIdx.x + 1) / blocks;
  const int64_t stagedEnd = min(end, begin + staged);
  auto word = [&](int64_t i) { return i < na ? a + i : i < na + nb ? b + (i - na) : c + (i - na - nb); };
  const uint32_t barAt = smemAddress(&bar);
  if constexpr (Bulk) {
    if (threadIdx.x == 0) {
      stagingBarrierExpect(barAt, uint32_t((stagedEnd - begin) * 16));
      // The staged words, cut where they pass from a to b and from b to c.
      for (int64_t i = begin; i < stagedEnd;) {
        const int64_t limit = i < na ? na : i < na + nb ? na + nb : n;
        const int64_t count = min(stagedEnd, limit) - i;
        bulkCopyToShared(smemAddress(stage + (i - begin)), word(i), uint32_t(count * 16), barAt);
        i += count;
      }
    }
  } else {
    for (int64_t i = begin + threadIdx.x; i < stagedEnd; i += blockDim.x) cpAsync16(smemAddress(stage + (i - begin)), word(i), 16);
    cpAsyncCommit();
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (EarlyTrigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if constexpr (!EarlyTrigger) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  for (int64_t i = stagedEnd + threadIdx.x; i < end; i += blockDim.x) {
    const uint4 v = __ldg(word(i));
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if constexpr (Bulk) {
    __syncthreads();  // the barrier's initialization
    stagingBarrierWait(barAt);
  }
  cpAsyncWaitAll();  // each thread folds the words it staged itself
  for (int64_t i = begin + threadIdx.x; i < stagedEnd; i += blockDim.x) {
    const uint4 v = stage[i - begin];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
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
    const Weight& w = ws[size_t(i)];
    const int64_t nScales = int64_t(w.scales.size() * w.scaleBytes()) / 16, nOffsets = int64_t(w.offsets.size() * w.scaleBytes()) / 16;
    readOnlyKernel<false><<<smCount() * 8, 256, 0, stream()>>>(reinterpret_cast<const uint4*>(w.dCodes), int64_t(w.codes.size() / 16),
                                                       reinterpret_cast<const uint4*>(w.dScales), nScales,
                                                       reinterpret_cast<const uint4*>(w.dOffsets), nOffsets, sink);
  });
  std::printf("%-5s %6lldx%-6lld %5.2f MB  read-only ceiling %7.2f us = %6.0f GB/s = %5.1f %% of copy\n", formatName(f),
              (long long)out, (long long)in, bytes / 1e6, readUs, bytes / (readUs * 1e-6) / 1e9,
              100.0 * bytes / (readUs * 1e-6) / 1e9 / copy);
  // Dependent launches of the read-only kernel, `perSM` blocks an SM; wait: each waits for the one before.
  auto dependentReadUs = [&](int perSM, bool wait) {
    return graphMicros(copies, [&](int i) {
      const Weight& w = ws[size_t(i)];
      cudaLaunchConfig_t config = {};
      config.gridDim = dim3(unsigned(smCount() * perSM));
      config.blockDim = dim3(256);
      config.stream = stream();
      cudaLaunchAttribute overlap = {};
      overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      overlap.val.programmaticStreamSerializationAllowed = 1;
      config.attrs = &overlap;
      config.numAttrs = 1;
      cudaOrDie(cudaLaunchKernelEx(&config, wait ? readOnlyKernel<true, true> : readOnlyKernel<true, false>,
                                   reinterpret_cast<const uint4*>(w.dCodes), int64_t(w.codes.size() / 16),
                                   reinterpret_cast<const uint4*>(w.dScales), int64_t(w.scales.size() * w.scaleBytes()) / 16,
                                   reinterpret_cast<const uint4*>(w.dOffsets), int64_t(w.offsets.size() * w.scaleBytes()) / 16, sink),
                "read-only launch");
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
      const Weight& w = ws[size_t(i)];
      cudaLaunchConfig_t config = {};
      config.gridDim = dim3(unsigned(blocks));
      config.blockDim = dim3(512);
      config.dynamicSmemBytes = size_t(staged * 16);
      config.stream = stream();
      cudaLaunchAttribute overlap = {};
      overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      overlap.val.programmaticStreamSerializationAllowed = 1;
      config.attrs = &overlap;
      config.numAttrs = 1;
      cudaOrDie(cudaLaunchKernelEx(&config, kernel, reinterpret_cast<const uint4*>(w.dCodes), int64_t(w.codes.size() / 16),
                                   reinterpret_cast<const uint4*>(w.dScales), int64_t(w.scales.size() * w.scaleBytes()) / 16,
                                   reinterpret_cast<const uint4*>(w.dOffsets), int64_t(w.offsets.size() * w.scaleBytes()) / 16, staged, sink),
                "staged read-only launch");
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
