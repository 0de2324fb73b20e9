// 4-bit weights in the decode tile layout (FourBitTiles and IntTiles in quant_gemv_tc.cuh): built
// once from the stored layout, then read by the tensor-core GEMV with every code load of a warp one
// run of 512 contiguous bytes. For decoding (a few activation rows a product); the weight must have
// blocks of 64 columns (INT4: one row a block) and rows of a multiple of 256 columns.
#include "kernels.h"
#include "launch.cuh"
#include "quant.cuh"
#include "quant_gemv_tc.cuh"

namespace blora {

namespace {

// Checks the layout's shape and its tensors: uint8 codes, and each statistic (absmax, or scales
// and offsets) of `statDType`, dense with their sizes.
void requireTileTensors(const char* op, int64_t outFeatures, int64_t inFeatures, const TensorArg& tiles,
                        std::initializer_list<std::pair<const TensorArg*, const char*>> stats, DType statDType) {
  const int64_t sets = (outFeatures + 15) / 16, groups = inFeatures / 64;
  auto dense = [&](const TensorArg& t, DType dtype, int64_t numel, const char* role) {
    requireDType(op, t, dtype, role);
    requireContiguous(op, t, role);
    if (t.numel() != numel) fail(std::string(op) + ": " + role + " " + t.describe() + " must have " + std::to_string(numel) + " elements");
  };
  dense(tiles, DType::UInt8, sets * groups * 512, "tiles");
  for (const auto& [t, role] : stats) dense(*t, statDType, sets * groups * 16, role);
}

// fits: the weight's blocks are the layout's (`needs` says which; `has` what the weight has).
void requireTileShape(const char* op, int64_t outFeatures, int64_t inFeatures, bool fits, const char* needs, const std::string& has) {
  if (outFeatures <= 0 || inFeatures <= 0 || inFeatures % 256 != 0 || !fits) {
    fail(std::string(op) + ": the decode tile layout needs " + needs + " and inFeatures a positive multiple of 256, got [" +
         std::to_string(outFeatures) + ", " + std::to_string(inFeatures) + "] " + has);
  }
}

void requireTileInputs(const char* op, const TensorArg& tiles, const TensorArg& tileAbsmax, const FourBitLayout& layout) {
  requireTileShape(op, layout.outFeatures, layout.inFeatures, layout.blocksize == 64, "blocks of 64",
                   "blocksize " + std::to_string(layout.blocksize));
  requireTileTensors(op, layout.outFeatures, layout.inFeatures, tiles, {{&tileAbsmax, "tile absmax"}}, DType::Float32);
}

void requireIntTileInputs(const char* op, const TensorArg& tiles, const TensorArg& tileScales, const TensorArg& tileOffsets,
                          const IntLayout& layout) {
  requireTileShape(op, layout.outFeatures, layout.inFeatures, layout.bits == 4 && layout.blockRows == 1 && layout.blockCols == 64,
                   "4-bit codes in blocks of 1 x 64",
                   "in " + std::to_string(layout.bits) + "-bit blocks of " + std::to_string(layout.blockRows) + " x " +
                       std::to_string(layout.blockCols));
  if (tileScales.dtype != DType::Float16 && tileScales.dtype != DType::Float32) {
    fail(std::string(op) + ": tile scales must be float16 or float32, got " + tileScales.describe());
  }
  requireTileTensors(op, layout.outFeatures, layout.inFeatures, tiles, {{&tileScales, "tile scales"}, {&tileOffsets, "tile offsets"}},
                     tileScales.dtype);
}

// One thread per 8-byte piece of codes (set, group, lane, half), then one per statistic (absmax,
// or alpha and beta: `second` may be null).
template <typename S>
__global__ void decodeTilesKernel(const uint8_t* packed, const S* first, const S* second, uint8_t* tiles, S* tileFirst, S* tileSecond,
                                  int64_t out, int64_t in) {
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
    const int64_t at = row * groups + 4 * quad + u;
    tileFirst[j] = row < out ? first[at] : S(0.f);
    if (second) tileSecond[j] = row < out ? second[at] : S(0.f);
  }
}

// Runs `body(tag)` with the GEMV's activation type (bfloat16 / float16; anything else is refused).
template <typename Body>
void withHalfActivations(const char* op, const TensorArg& x, const TensorArg& out, int64_t inFeatures, int64_t outFeatures, Body body) {
  if (x.dtype != DType::BFloat16 && x.dtype != DType::Float16) {
    fail(std::string(op) + ": the decode tile product on cuda takes bfloat16 or float16 activations, got " + x.describe());
  }
  requireDType(op, out, x.dtype, "output");
  requireContiguous(op, out, "output");
  if (x.rank != 2 || x.shape[1] != inFeatures || x.strides[1] != 1 || (x.shape[0] > 1 && x.strides[0] % 8 != 0) ||
      reinterpret_cast<uintptr_t>(x.first()) % 16 != 0 || out.numel() != x.shape[0] * outFeatures) {
    fail(std::string(op) + ": expected x [M, " + std::to_string(inFeatures) + "] with dense 16-byte aligned rows and an output of M x " +
         std::to_string(outFeatures) + ", got " + x.describe() + " and " + out.describe());
  }
  if (x.dtype == DType::BFloat16) body(TypeTag<__nv_bfloat16>{});
  else body(TypeTag<__half>{});
}

// The GEMV on a tile source, 16 activation rows a launch (the kernel's most).
// `add`: the epilogue term for all of x's rows (EpilogueAddend).
template <typename T, typename Source>
void launchTilesGemv(const char* op, const TensorArg& x, const Source& w, const float* table, const TensorArg& out, int64_t outFeatures,
                     int64_t inFeatures, bool settled, const EpilogueAddend& add) {
  const GemvOverlap overlap = settled ? GemvOverlap::kSettled : GemvOverlap::kLaunch;
  for (int64_t m = 0; m < x.shape[0]; m += 16) {
    EpilogueAddend rowsAdd = add;
    if (add.values) rowsAdd.values += m * add.stride;
    const GemvArgs<T> args{reinterpret_cast<const T*>(x.first()) + m * x.strides[0], x.strides[0], int(std::min<int64_t>(16, x.shape[0] - m)),
                           table, reinterpret_cast<T*>(out.first()) + m * outFeatures, outFeatures, inFeatures, overlap, rowsAdd};
    const cudaError_t err = launchGemvGroups<T, Source, 64>(args, w, stream());
    if (err != cudaSuccess) fail(std::string(op) + ": launch: " + cudaGetErrorString(err));
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
  decodeTilesKernel<float><<<elementwiseBlocks(pieces), kElementwiseThreads, 0, stream()>>>(
      reinterpret_cast<const uint8_t*>(packed.first()), reinterpret_cast<const float*>(absmax.first()), nullptr,
      reinterpret_cast<uint8_t*>(tiles.first()), reinterpret_cast<float*>(tileAbsmax.first()), nullptr, layout.outFeatures,
      layout.inFeatures);
  checkLaunch(op);
}

void launchIntDecodeTiles(const TensorArg& codes, const TensorArg& scales, const TensorArg& offsets, const TensorArg& tiles,
                          const TensorArg& tileScales, const TensorArg& tileOffsets, const IntLayout& layout) {
  const char* op = "int4DecodeTiles";
  requireIntTileInputs(op, tiles, tileScales, tileOffsets, layout);
  const int64_t n = layout.outFeatures * layout.inFeatures;
  requireDType(op, codes, DType::UInt8, "codes");
  requireContiguous(op, codes, "codes");
  for (const auto& [t, role] : {std::pair<const TensorArg*, const char*>{&scales, "scales"}, {&offsets, "offsets"}}) {
    requireDType(op, *t, tileScales.dtype, role);
    requireContiguous(op, *t, role);
    if (t->numel() != n / 64) fail(std::string(op) + ": " + role + " " + t->describe() + " must have " + std::to_string(n / 64) + " elements");
  }
  if (codes.numel() != n / 2) fail(std::string(op) + ": codes " + codes.describe() + " must have " + std::to_string(n / 2) + " elements");
  const int64_t pieces = tiles.numel() / 8;
  auto run = [&](auto tag) {
    using S = typename decltype(tag)::type;
    decodeTilesKernel<S><<<elementwiseBlocks(pieces), kElementwiseThreads, 0, stream()>>>(
        reinterpret_cast<const uint8_t*>(codes.first()), reinterpret_cast<const S*>(scales.first()), reinterpret_cast<const S*>(offsets.first()),
        reinterpret_cast<uint8_t*>(tiles.first()), reinterpret_cast<S*>(tileScales.first()), reinterpret_cast<S*>(tileOffsets.first()),
        layout.outFeatures, layout.inFeatures);
  };
  if (tileScales.dtype == DType::Float16) run(TypeTag<__half>{});
  else run(TypeTag<float>{});
  checkLaunch(op);
}

bool launchFourBitTilesGemv(const TensorArg& x, const TensorArg& tiles, const TensorArg& tileAbsmax, const TensorArg& table,
                            const TensorArg& out, const FourBitLayout& layout, bool settled, const GemmAddend& addend) {
  const char* op = "nf4MatmulTiles";
  requireTileInputs(op, tiles, tileAbsmax, layout);
  requireDType(op, table, DType::Float32, "code table");
  requireContiguous(op, table, "code table");
  if (table.numel() != 16) fail(std::string(op) + ": code table " + table.describe() + " must have 16 elements");
  EpilogueAddend add;
  const bool addable = epilogueAddend(addend, x.shape[0], layout.outFeatures, add);
  withHalfActivations(op, x, out, layout.inFeatures, layout.outFeatures, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const FourBitTiles w{reinterpret_cast<const uint8_t*>(tiles.first()), reinterpret_cast<const float*>(tileAbsmax.first()), layout.inFeatures};
    launchTilesGemv<T>(op, x, w, reinterpret_cast<const float*>(table.first()), out, layout.outFeatures, layout.inFeatures, settled, add);
  });
  checkLaunch(op);
  return addable;
}

bool launchIntTilesGemv(const TensorArg& x, const TensorArg& tiles, const TensorArg& tileScales, const TensorArg& tileOffsets,
                        const TensorArg& out, const IntLayout& layout, bool settled, const GemmAddend& addend) {
  const char* op = "int4MatmulTiles";
  requireIntTileInputs(op, tiles, tileScales, tileOffsets, layout);
  EpilogueAddend add;
  const bool addable = epilogueAddend(addend, x.shape[0], layout.outFeatures, add);
  withHalfActivations(op, x, out, layout.inFeatures, layout.outFeatures, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto run = [&](auto scaleTag) {
      using S = typename decltype(scaleTag)::type;
      const IntTiles<S> w{reinterpret_cast<const uint8_t*>(tiles.first()), reinterpret_cast<const S*>(tileScales.first()),
                          reinterpret_cast<const S*>(tileOffsets.first()), layout.inFeatures};
      launchTilesGemv<T>(op, x, w, nullptr, out, layout.outFeatures, layout.inFeatures, settled, add);
    };
    if (tileScales.dtype == DType::Float16) run(TypeTag<__half>{});
    else run(TypeTag<float>{});
  });
  checkLaunch(op);
  return addable;
}

}  // namespace blora
