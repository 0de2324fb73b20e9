// The weight layouts the tensor-core 4-bit GEMV (quant_gemv_tc.cuh) reads, one source each. A
// source gives each lane its two weight rows of a set of 16 (pair<G>(rowSet, g, t, out): rows
// g and g + 8), which return the lane's codes of a group (codes<G>) and the scales of a turn of
// consecutive groups (scales<G, N>), so the kernel never sees the layout:
// - FourBitGroups: NF4 / FP4 as bitsandbytes stores it (float32 absmax per block);
// - FourBitTiles: NF4 / FP4 in the decode tile layout (@blora/quant's decode-tiles.ts), where a
//   warp's code load is 512 contiguous bytes;
// - IntGroups: 4-bit integer codes with alpha / beta per block (float16 or float32);
// - IntTiles: the same in the decode tile layout (blocks of 1 x 64).
#pragma once

#include <cstring>
#include <type_traits>

#include "common.h"
#include "quant.cuh"

namespace blora {

// The value as computed here, kept in a register: the compiler may not recompute it inside a loop
// from the kernel's parameters (which it otherwise does for a lane's row pointers, at several
// instructions a load).
template <typename V>
__device__ __forceinline__ const V* computedOnce(const V* p) {
  asm volatile("" : "+l"(p));
  return p;
}
__device__ __forceinline__ uint32_t computedOnce(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

// N consecutive scales in one load (p aligned to their size: 4, 8 or 16 bytes).
template <typename S, int N>
__device__ __forceinline__ void loadScales(const S* p, S (&out)[N]) {
  constexpr int kBytes = int(sizeof(S)) * N;
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "a scale vector is 4, 8 or 16 bytes");
  using V = std::conditional_t<kBytes == 16, uint4, std::conditional_t<kBytes == 8, uint2, unsigned>>;
  const V v = __ldg(reinterpret_cast<const V*>(p));
  memcpy(out, &v, kBytes);
}

// Whether a turn's N consecutive groups of G columns can read their N scales (per array) in one
// load: one block a group, rows of whole turns, arrays aligned to the load.
inline bool scaleVectorsAligned(const void* scales, size_t scaleBytes, int blockShift, int64_t blocksPerRow, int G, int n) {
  return (int64_t(1) << blockShift) == G && blocksPerRow % n == 0 && reinterpret_cast<uintptr_t>(scales) % (scaleBytes * n) == 0;
}

// The G / 8 code bytes of a lane's row in one group (G = 32: one word; G = 64: two).
template <int G>
__device__ __forceinline__ uint2 loadGroupCodes(const uint8_t* p) {
  if constexpr (G == 64) return __ldg(reinterpret_cast<const uint2*>(p));
  else return make_uint2(__ldg(reinterpret_cast<const unsigned*>(p)), 0u);
}

// A lane's two weight rows of a row set (g and g + 8) in a source with a view per row (Row).
template <typename Source>
struct RowPair {
  typename Source::Row a, b;
  // The lane's codes of `group` in rows g (ca) and g + 8 (cb).
  template <int G>
  __device__ __forceinline__ void codes(int group, uint2& ca, uint2& cb) const {
    ca = loadGroupCodes<G>(a.template codesOf<G>(group));
    cb = loadGroupCodes<G>(b.template codesOf<G>(group));
  }
  // The scales of groups first .. first + N - 1 in rows g (sa) and g + 8 (sb).
  template <int G, int N>
  __device__ __forceinline__ void scales(int first, int groups, typename Source::Scales (&sa)[N], typename Source::Scales (&sb)[N]) const {
    a.template scalesOf<G, N>(first, groups, sa);
    b.template scalesOf<G, N>(first, groups, sb);
  }
};

// The codes of a lane's view of one weight row (a source's Row) from the lane's column on, in groups of G.
struct RowCodes {
  const uint8_t* codes;  // at the lane's column of group 0
  template <int G>
  __device__ __forceinline__ const uint8_t* codesOf(int group) const { return codes + group * (G / 2); }
};

// Rows g and g + 8 of a row set from the lane's column `col` on (past the weight: its last row,
// whose sums are never written).
template <typename Source>
__device__ __forceinline__ RowPair<Source> rowPairOf(const Source& w, int64_t rowSet, int g, uint32_t col, int64_t outFeatures) {
  return {w.row(min(16 * rowSet + g, outFeatures - 1), col), w.row(min(16 * rowSet + g + 8, outFeatures - 1), col)};
}

// NF4 / FP4 codes with one float32 absmax per block of 2^blockShift elements (>= the group;
// blocks run over the flattened weight, so one may start inside a row).
struct FourBitGroups {
  const uint8_t* packed;
  const float* absmax;
  int64_t in;
  int blockShift;
  bool vectorScales = false;  // set by the launcher where scaleVectorsFit
  static constexpr bool kOffsets = false;
  static constexpr bool kAheadAboveEightRows = false;  // see launchGemvGroups
  struct Scales {
    float alpha;
    __device__ __forceinline__ float a() const { return alpha; }
    __device__ __forceinline__ float b() const { return 0.f; }
  };
  bool scaleVectorsFit(int G, int n) const { return scaleVectorsAligned(absmax, 4, blockShift, in >> blockShift, G, n); }
  // A lane's view of one weight row: its codes from column `col` (even) on, in groups of G.
  struct Row : RowCodes {
    const float* absmax;  // of the block the row starts in
    uint32_t offset;      // the lane's column of group 0 from the start of that block
    int shift;
    bool vector;
    // The scales of groups first .. first + N - 1 (past the row's last group: the last group's).
    template <int G, int N>
    __device__ __forceinline__ void scalesOf(int first, int groups, Scales (&s)[N]) const {
      if (vector) {
        float a[N];
        loadScales(absmax + ((offset + uint32_t(first) * G) >> shift), a);
#pragma unroll
        for (int u = 0; u < N; u++) s[u] = {a[u]};
      } else {
#pragma unroll
        for (int u = 0; u < N; u++) s[u] = {__ldg(absmax + ((offset + uint32_t(min(first + u, groups - 1)) * G) >> shift))};
      }
    }
  };
  template <int G>
  __device__ __forceinline__ RowPair<FourBitGroups> pair(int64_t rowSet, int g, int t, int64_t outFeatures) const {
    return rowPairOf(*this, rowSet, g, (G / 4) * t, outFeatures);
  }
  __device__ __forceinline__ Row row(int64_t r, uint32_t col) const {
    const int64_t start = r * in;  // even: in is
    const uint32_t phase = uint32_t(start) & ((1u << blockShift) - 1u);
    return {{computedOnce(packed + (start >> 1) + (col >> 1))}, computedOnce(absmax + (start >> blockShift)), computedOnce(phase + col),
            blockShift, vectorScales};
  }
};

// A lane's codes of `group` in the decode tile layout (lane: its 16 bytes of group 0): rows g (ca)
// and g + 8 (cb), one 16-byte load.
template <int G>
__device__ __forceinline__ void loadTileCodes(const uint8_t* lane, int group, uint2& ca, uint2& cb) {
  static_assert(G == 64, "the tile layout has groups of 64");
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(lane + int64_t(group) * 512));
  ca = make_uint2(v.x, v.y);
  cb = make_uint2(v.z, v.w);
}

// NF4 / FP4 in the decode tile layout (blocks of 64, rows of whole quads of groups: in % 256 == 0),
// made so that every load of this kernel is contiguous across the warp. Codes: for row set s and
// group q (64 columns), 512 bytes; lane l = 4 g + t's 16 at 16 l: its 8 code bytes of row
// 16 s + g (columns 16 t .. 16 t + 15 of the group), then those of row 16 s + g + 8. Absmax: for
// row set s and quad k of groups, 64 floats [g][row g, row g + 8][4 groups]. Rows past the weight
// are zeros. (launchFourBitDecodeTiles builds it from the bitsandbytes layout.)
struct FourBitTiles {
  const uint8_t* tiles;
  const float* scales;
  int64_t in;
  bool vectorScales = true;
  static constexpr bool kOffsets = false;
  // Loading a turn ahead (8 warps x 2 groups) and the activations a group ahead is 3-11 % faster
  // from 9 to 16 rows (dev/gemv4).
  static constexpr bool kAheadAboveEightRows = true;
  using Scales = FourBitGroups::Scales;
  bool scaleVectorsFit(int, int) const { return true; }
  struct Pair {
    const uint8_t* lane;  // the lane's 16 bytes of group 0
    const float* absmax;  // row g's absmax of quad 0
    template <int G>
    __device__ __forceinline__ void codes(int group, uint2& ca, uint2& cb) const {
      loadTileCodes<G>(lane, group, ca, cb);
    }
    template <int G, int N>
    __device__ __forceinline__ void scales(int first, int, Scales (&sa)[N], Scales (&sb)[N]) const {
      const float* p = absmax + (first >> 2) * 64 + (first & 3);
      float a[N], b[N];
      loadScales(p, a);
      loadScales(p + 4, b);
#pragma unroll
      for (int u = 0; u < N; u++) sa[u] = {a[u]}, sb[u] = {b[u]};
    }
  };
  template <int G>
  __device__ __forceinline__ Pair pair(int64_t rowSet, int g, int t, int64_t) const {
    const int64_t groups = in / 64;
    return {computedOnce(tiles + rowSet * groups * 512 + (4 * g + t) * 16), computedOnce(scales + rowSet * groups * 16 + g * 8)};
  }
};

// Integer codes in the decode tile layout (@blora/quant's int4DecodeTiles: blocks of 1 x 64, rows
// of whole quads of groups): the codes as FourBitTiles', the alphas and the betas each laid out as
// its absmax, in the weight's scale dtype (a lane's 4 alphas of a turn, for each of its two rows,
// one 8-byte (float16) or 16-byte (float32) load).
template <typename Scale>
struct IntTiles {
  const uint8_t* tiles;
  const Scale* alphas;
  const Scale* betas;
  int64_t in;
  bool vectorScales = true;
  static constexpr bool kOffsets = true;
  static constexpr bool kAheadAboveEightRows = true;  // as FourBitTiles (3-9 % faster at 16 rows, dev/gemv4)
  struct Scales {
    Scale alpha, beta;
    __device__ __forceinline__ float a() const { return scaleValue(alpha); }
    __device__ __forceinline__ float b() const { return scaleValue(beta); }
  };
  bool scaleVectorsFit(int, int) const { return true; }
  struct Pair {
    const uint8_t* lane;  // the lane's 16 bytes of group 0
    const Scale* alpha;   // row g's alpha of quad 0
    const Scale* beta;
    template <int G>
    __device__ __forceinline__ void codes(int group, uint2& ca, uint2& cb) const {
      loadTileCodes<G>(lane, group, ca, cb);
    }
    template <int G, int N>
    __device__ __forceinline__ void scales(int first, int, Scales (&sa)[N], Scales (&sb)[N]) const {
      const int64_t at = int64_t(first >> 2) * 64 + (first & 3);
      Scale a0[N], a1[N], b0[N], b1[N];
      loadScales(alpha + at, a0);
      loadScales(alpha + at + 4, a1);
      loadScales(beta + at, b0);
      loadScales(beta + at + 4, b1);
#pragma unroll
      for (int u = 0; u < N; u++) sa[u] = {a0[u], b0[u]}, sb[u] = {a1[u], b1[u]};
    }
  };
  template <int G>
  __device__ __forceinline__ Pair pair(int64_t rowSet, int g, int t, int64_t) const {
    const int64_t groups = in / 64;
    return {computedOnce(tiles + rowSet * groups * 512 + (4 * g + t) * 16), computedOnce(alphas + rowSet * groups * 16 + g * 8),
            computedOnce(betas + rowSet * groups * 16 + g * 8)};
  }
};

// Integer codes (4-bit, high nibble first) with alpha / beta per block of blockRows x 2^colShift
// (>= the group). Scales stay as stored until used, so their loads are not waited for early.
template <typename Scale>
struct IntGroups {
  const uint8_t* packed;
  const Scale* alphas;
  const Scale* betas;
  int64_t in, blockRows, gridCols;
  int colShift;
  bool vectorScales = false;  // set by the launcher where scaleVectorsFit
  static constexpr bool kOffsets = true;
  static constexpr bool kAheadAboveEightRows = false;  // see launchGemvGroups
  struct Scales {
    Scale alpha, beta;
    __device__ __forceinline__ float a() const { return scaleValue(alpha); }
    __device__ __forceinline__ float b() const { return scaleValue(beta); }
  };
  bool scaleVectorsFit(int G, int n) const {
    return scaleVectorsAligned(alphas, sizeof(Scale), colShift, gridCols, G, n) && scaleVectorsAligned(betas, sizeof(Scale), colShift, gridCols, G, n);
  }
  struct Row : RowCodes {
    const Scale* alphas;  // of the row's block row
    const Scale* betas;
    uint32_t col;
    int shift;
    bool vector;
    // The scales of groups first .. first + N - 1 (past the row's last group: the last group's).
    template <int G, int N>
    __device__ __forceinline__ void scalesOf(int first, int groups, Scales (&s)[N]) const {
      if (vector) {
        Scale a[N], b[N];
        const uint32_t block = (col + uint32_t(first) * G) >> shift;
        loadScales(alphas + block, a);
        loadScales(betas + block, b);
#pragma unroll
        for (int u = 0; u < N; u++) s[u] = {a[u], b[u]};
      } else {
#pragma unroll
        for (int u = 0; u < N; u++) {
          const uint32_t block = (col + uint32_t(min(first + u, groups - 1)) * G) >> shift;
          s[u] = {alphas[block], betas[block]};
        }
      }
    }
  };
  template <int G>
  __device__ __forceinline__ RowPair<IntGroups> pair(int64_t rowSet, int g, int t, int64_t outFeatures) const {
    return rowPairOf(*this, rowSet, g, (G / 4) * t, outFeatures);
  }
  __device__ __forceinline__ Row row(int64_t r, uint32_t col) const {
    const int64_t first = (blockRows == 1 ? r : r / blockRows) * gridCols;
    return {{computedOnce(packed + ((r * in) >> 1) + (col >> 1))}, computedOnce(alphas + first), computedOnce(betas + first), col,
            colShift, vectorScales};
  }
};

}  // namespace blora
