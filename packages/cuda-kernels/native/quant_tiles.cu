// NF4 / FP4 weights in the decode tile layout (FourBitTiles in quant_gemv_tc.cuh): built once
// from the bitsandbytes layout, then read by the tensor-core GEMV with every code load of a warp
// one run of 512 contiguous bytes. For decoding (a few activation rows a product); the weight
// must have blocks of 64 and rows of a multiple of 256 columns.
#include "kernels.h"
#include "launch.cuh"
#include "quant.cuh"
#include "quant_gemv_tc.cuh"

namespace blora {

namespace {

void requireTileInputs(const char* op, const TensorArg& tiles, const TensorArg& tileAbsmax, const FourBitLayout& layout) {
  if (layout.outFeatures <= 0 || layout.blocksize != 64 || layout.inFeatures <= 0 || layout.inFeatures % 256 != 0) {
    fail(std::string(op) + ": the decode tile layout needs blocks of 64 and inFeatures a positive multiple of 256, got [" +
         std::to_string(layout.outFeatures) + ", " + std::to_string(layout.inFeatures) + "] blocksize " + std::to_string(layout.blocksize));
  }
  const int64_t sets = (layout.outFeatures + 15) / 16, groups = layout.inFeatures / 64;
  auto dense = [&](const TensorArg& t, DType dtype, int64_t numel, const char* role) {
    requireDType(op, t, dtype, role);
    requireContiguous(op, t, role);
    if (t.numel() != numel) fail(std::string(op) + ": " + role + " " + t.describe() + " must have " + std::to_string(numel) + " elements");
  };
  dense(tiles, DType::UInt8, sets * groups * 512, "tiles");
  dense(tileAbsmax, DType::Float32, sets * groups * 16, "tile absmax");
}

// One thread per 8-byte piece of codes (set, group, lane, half), then one per absmax.
__global__ void decodeTilesKernel(const uint8_t* packed, const float* absmax, uint8_t* tiles, float* tileAbsmax, int64_t out,
                                  int64_t in) {
  const int64_t groups = in / 64, sets = (out + 15) / 16;
  BLORA_GRID_STRIDE_LOOP(i, sets * groups * 64) {
    const int half = int(i & 1), lane = int((i >> 1) & 31);
    const int64_t setGroup = i >> 6, set = setGroup / groups, group = setGroup % groups;
    const int64_t row = 16 * set + lane / 4 + 8 * half;
    const uint8_t* src = packed + row * (in / 2) + 32 * group + 8 * (lane % 4);
#pragma unroll
    for (int b = 0; b < 8; b++) tiles[8 * i + b] = row < out ? src[b] : uint8_t(0);
  }
  BLORA_GRID_STRIDE_LOOP(j, sets * groups * 16) {
    const int u = int(j & 3), half = int((j >> 2) & 1), g = int((j >> 3) & 7);
    const int64_t setQuad = j >> 6, set = setQuad / (groups / 4), quad = setQuad % (groups / 4);
    const int64_t row = 16 * set + g + 8 * half;
    tileAbsmax[j] = row < out ? absmax[row * groups + 4 * quad + u] : 0.f;
  }
}

}  // namespace

void launchFourBitDecodeTiles(const TensorArg& packed, const TensorArg& absmax, const TensorArg& tiles, const TensorArg& tileAbsmax,
                              const FourBitLayout& layout) {
  const char* op = "nf4DecodeTiles";
  requireTileInputs(op, tiles, tileAbsmax, layout);
  const int64_t n = layout.outFeatures * layout.inFeatures;
  requireDType(op, packed, DType::UInt8, "packed codes");
  requireContiguous(op, packed, "packed codes");
  requireDType(op, absmax, DType::Float32, "absmax");
  requireContiguous(op, absmax, "absmax");
  if (packed.numel() != n / 2 || absmax.numel() != n / 64) {
    fail(std::string(op) + ": packed codes " + packed.describe() + " and absmax " + absmax.describe() + " do not hold a weight [" +
         std::to_string(layout.outFeatures) + ", " + std::to_string(layout.inFeatures) + "] with blocks of 64");
  }
  const int64_t pieces = tiles.numel() / 8;
  decodeTilesKernel<<<elementwiseBlocks(pieces), kElementwiseThreads, 0, stream()>>>(
      reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()), reinterpret_cast<uint8_t*>(tiles.first()),
      reinterpret_cast<float*>(tileAbsmax.first()), layout.outFeatures, layout.inFeatures);
  checkLaunch(op);
}

void launchFourBitTilesGemv(const TensorArg& x, const TensorArg& tiles, const TensorArg& tileAbsmax, const TensorArg& table,
                            const TensorArg& out, const FourBitLayout& layout, bool settled) {
  const char* op = "nf4MatmulTiles";
  requireTileInputs(op, tiles, tileAbsmax, layout);
  requireDType(op, table, DType::Float32, "code table");
  requireContiguous(op, table, "code table");
  if (table.numel() != 16) fail(std::string(op) + ": code table " + table.describe() + " must have 16 elements");
  if (x.dtype != DType::BFloat16 && x.dtype != DType::Float16) {
    fail(std::string(op) + ": the decode tile product on cuda takes bfloat16 or float16 activations, got " + x.describe());
  }
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  if (x.rank != 2 || x.shape[1] != layout.inFeatures || x.strides[1] != 1 || (x.shape[0] > 1 && x.strides[0] % 8 != 0) ||
      reinterpret_cast<uintptr_t>(x.first()) % 16 != 0 || out.numel() != x.shape[0] * layout.outFeatures) {
    fail(std::string(op) + ": expected x [M, " + std::to_string(layout.inFeatures) +
         "] with dense 16-byte aligned rows and an output of M x " + std::to_string(layout.outFeatures) + ", got " + x.describe() +
         " and " + out.describe());
  }
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const FourBitTiles w{reinterpret_cast<const uint8_t*>(tiles.first()), reinterpret_cast<const float*>(tileAbsmax.first()), layout.inFeatures};
    const GemvOverlap overlap = settled && x.shape[0] <= kSettledGemvMaxRows ? GemvOverlap::kSettled : GemvOverlap::kLaunch;
    // 16 activation rows a launch (the kernel's most).
    for (int64_t m = 0; m < x.shape[0]; m += 16) {
      const GemvArgs<T> args{reinterpret_cast<const T*>(x.first()) + m * x.strides[0], x.strides[0], int(std::min<int64_t>(16, x.shape[0] - m)),
                             reinterpret_cast<const float*>(table.first()), reinterpret_cast<T*>(out.first()) + m * layout.outFeatures,
                             layout.outFeatures, layout.inFeatures, overlap};
      const cudaError_t err = launchGemvGroups<T, FourBitTiles, 64>(args, w, stream());
      if (err != cudaSuccess) fail(std::string(op) + ": launch: " + cudaGetErrorString(err));
    }
  };
  if (x.dtype == DType::BFloat16) run(TypeTag<__nv_bfloat16>{});
  else run(TypeTag<__half>{});
  checkLaunch(op);
}

}  // namespace blora
