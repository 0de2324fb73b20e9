// The GEMV harness's weights (dev/gemv4.cu): seeded random NF4 / INT4 codes and scales on host and
// device, the value the dequantize kernels give each element (the float64 checks' reference), and
// the same weight rearranged on the host into the decode tile layout, an independent check of the
// addon's tile builders.
#pragma once

#include <cstring>
#include <vector>

namespace gemv_dev {

using namespace blora;
using dev::cudaOrDie;

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

// The weight's codes, scales and offsets as 16-byte words (the read-only kernels' operands).
struct WeightWords {
  const uint4 *codes, *scales, *offsets;
  int64_t nCodes, nScales, nOffsets;
};

inline WeightWords wordsOf(const Weight& w) {
  return {reinterpret_cast<const uint4*>(w.dCodes), reinterpret_cast<const uint4*>(w.dScales), reinterpret_cast<const uint4*>(w.dOffsets),
          int64_t(w.codes.size() / 16), int64_t(w.scales.size() * w.scaleBytes()) / 16, int64_t(w.offsets.size() * w.scaleBytes()) / 16};
}

}  // namespace gemv_dev
