// Int8 activations: quantizing the activation rows, and the product loop over weight rows.
#include "quant_q8.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>

#include "aligned_buffer.h"
#include "thread_pool.h"

namespace blora {

namespace {

constexpr int64_t kMaxRows = 8;       // activation rows of the row-at-a-time loops
constexpr int64_t kMaxTileRows = 32;  // activation rows of the tile loops
constexpr int64_t kMaxTile = 4;       // the largest KernelTable::q8_tile
constexpr int64_t kQBlock = 32;  // activation values per int8 scale
constexpr int64_t kMaxChunk = 256;
// Weight elements below which a product runs on one thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// Bytes of the quantized activation rows per column tile: in L1 for the row-at-a-time loops,
// in L2 for the tile loops (which read them once per group of weight rows).
constexpr int64_t kTileBytes = int64_t{24} * 1024;
constexpr int64_t kTileBytesL2 = int64_t{192} * 1024;

// Buffers of the quantized rows (the caller's thread fills them; every thread reads them).
thread_local AlignedBuffer t_q, t_lane_scales, t_lane_bias, t_sums;
thread_local AlignedBuffer t_params;  // per thread: float32 copies of float16 block parameters

constexpr float kMaxFloat = 3.40282347e38f;

/** True when the table's tile loops can run (their tile fits the drivers' buffers). */
bool has_tile_loops(const KernelTable& kt) { return kt.q8_tile > 0 && kt.q8_tile <= kMaxTile; }

/**
 * v rounded to the nearest integer, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves no
 * fraction bits, so the addition itself rounds (in the default rounding mode).
 */
inline float round_to_even(float v) {
  const float shift = 12582912.0f;  // IEEE arithmetic: the compiler may not fold (v + s) - s into v
  return (v + shift) - shift;
}

/**
 * Quantizes one row of `in` values into q (split order), its per-lane scales and biases and,
 * when sum_block > 0, the sums of the rounded values (scale * q) per sum_block values. Those
 * are what the weight offsets multiply, so that the offsets see the same activations as the
 * scales and the rounding error is that of the weight itself (sum of W times the rounding of
 * x) rather than of its codes alone (which are not centred). False on a non-finite value.
 */
bool quantize_row(const float* x, int64_t in, int64_t chunk, int64_t sum_block, int8_t* q, float* lane_scales,
                  int32_t* lane_bias, float* sums) {
  float scale[kMaxChunk / kQBlock] = {};  // scales of the blocks of the chunk
  int8_t values[kMaxChunk];               // the chunk in natural order
  double running = 0.0;                   // sum of the current weight block so far
  for (int64_t c0 = 0; c0 < in; c0 += chunk) {
    for (int64_t b = 0; b < chunk / kQBlock; ++b) {
      const float* xb = x + c0 + b * kQBlock;
      // Plain comparisons, no library calls: this runs once per activation value.
      float amax = 0.0f;
      bool finite = true;
      for (int64_t j = 0; j < kQBlock; ++j) {
        const float a = std::fabs(xb[j]);
        finite &= a <= kMaxFloat;  // false for NaN and infinities
        amax = a > amax ? a : amax;
      }
      if (!finite) return false;
      scale[b] = amax / 127.0f;
      const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t qsum = 0;
      for (int64_t j = 0; j < kQBlock; ++j) {
        // |x * inverse| <= 127 (times 1 + 2^-23 at most, which still rounds to 127).
        const int8_t v = static_cast<int8_t>(round_to_even(xb[j] * inverse));
        values[b * kQBlock + j] = v;
        qsum += v;
      }
      if (sum_block > 0) {
        running += static_cast<double>(scale[b]) * qsum;
        const int64_t end = c0 + (b + 1) * kQBlock;
        if (end % sum_block == 0) {
          sums[end / sum_block - 1] = static_cast<float>(running);
          running = 0.0;
        }
      }
    }
    int8_t* qc = q + c0;
    for (int64_t p = 0; p < chunk / 2; ++p) {
      qc[p] = values[2 * p];
      qc[chunk / 2 + p] = values[2 * p + 1];
    }
    // Lane L holds values 8L .. 8L + 7 of the chunk.
    for (int64_t lane = 0; lane < chunk / 8; ++lane) {
      lane_scales[c0 / 8 + lane] = scale[8 * lane / kQBlock];
      int32_t s = 0;
      for (int64_t j = 8 * lane; j < 8 * lane + 8; ++j) s += values[j];
      lane_bias[c0 / 8 + lane] = -128 * s;
    }
  }
  return true;
}

/** Quantizes `rows` rows of x; false (nothing usable) on a non-finite value or without memory. */
bool quantize_rows(const KernelTable& kt, const float* x, int64_t rows, int64_t ldx, int64_t in, int64_t chunk,
                   int64_t sum_block, Int8Rows* out) {
  const int64_t n = rows * in;
  // AlignedBuffer holds floats: size the byte buffer in floats.
  int8_t* q = reinterpret_cast<int8_t*>(t_q.reserve((n + 3) / 4));
  float* lane_scales = t_lane_scales.reserve(n / 8);
  int32_t* lane_bias = reinterpret_cast<int32_t*>(t_lane_bias.reserve(n / 8));
  float* sums = sum_block > 0 ? t_sums.reserve(rows * (in / sum_block)) : nullptr;
  if (!q || !lane_scales || !lane_bias || (sum_block > 0 && !sums)) return false;
  const auto quantize = kt.quantize_q8_row ? kt.quantize_q8_row : quantize_row;
  for (int64_t i = 0; i < rows; ++i) {
    float* row_sums = sums ? sums + i * (in / sum_block) : nullptr;
    if (!quantize(x + i * ldx, in, chunk, sum_block, q + i * in, lane_scales + i * (in / 8), lane_bias + i * (in / 8),
                  row_sums)) {
      return false;
    }
  }
  *out = {q, lane_scales, lane_bias, sums, in};
  return true;
}

}  // namespace

bool int8_levels(const float* table, int8_t levels[16], float* level_scale) {
  float tmax = 0.0f;
  for (int c = 0; c < 16; ++c) {
    if (!std::isfinite(table[c])) return false;
    tmax = std::fmax(tmax, std::fabs(table[c]));
  }
  for (int c = 0; c < 16; ++c) {
    levels[c] = static_cast<int8_t>(tmax > 0.0f ? std::nearbyint(127.0f * (table[c] / tmax)) : 0.0f);
  }
  *level_scale = tmax / 127.0f;
  return true;
}

int64_t q8_max_rows(const KernelTable& kt) { return has_tile_loops(kt) ? kMaxTileRows : kMaxRows; }

namespace {

/** What every int8-activation loop needs: the rounded rows and, for NF4 / FP4, the table's levels. */
struct Q8Product {
  const QuantWeight& w;
  bool int4;
  int64_t block;  // weight values per scale along a row
  Int8Rows x;
  int8_t levels[16];
  float level_scale;
};

/** Column tiles start on chunk and block boundaries and span `per_value` tile bytes per activation value. */
int64_t tile_width(const Q8Product& p, int64_t chunk, int64_t tile_bytes, int64_t per_value) {
  const int64_t align = std::lcm(chunk, p.int4 ? p.block : kQBlock);
  return std::min(p.w.in, std::max(align, tile_bytes / per_value / align * align));
}

/** The tile's part of every row of x (row strides stay x.in). */
Int8Rows tile_rows(const Q8Product& p, int64_t c0) {
  const Int8Rows& x = p.x;
  return {x.q + c0, x.lane_scales + c0 / 8, x.lane_bias + c0 / 8, p.int4 ? x.block_sums + c0 / p.block : nullptr,
          x.in};
}

/** y (rows x out) with the row-at-a-time loops (int4_dot_q8 / nf4_dot_q8), at most kMaxRows rows. */
bool rows_loop(const KernelTable& kt, int threads, const Q8Product& p, int64_t rows, float* y) {
  const QuantWeight& w = p.w;
  const int64_t out = w.out, in = w.in, block = p.block;
  const int64_t tasks = threads > 1 ? std::min<int64_t>(out, int64_t{8} * threads) : 1;
  // About 2 bytes per activation value (q, its lane's scale and bias) of every row stay in L1
  // while the task's weight rows meet them.
  const int64_t width = tile_width(p, kt.q8_chunk, kTileBytes, 2 * rows);
  const int64_t grid_cols = p.int4 ? in / block : 0;
  std::atomic<bool> ok{true};
  parallel_for(tasks, threads, [&](int64_t t, int) {
    float* converted = p.int4 && w.half ? t_params.reserve(2 * (width / block)) : nullptr;
    if (p.int4 && w.half && !converted) {
      ok.store(false);
      return;
    }
    float dots[kMaxRows];
    const int64_t r0 = t * out / tasks, r1 = (t + 1) * out / tasks;
    for (int64_t c0 = 0; c0 < in; c0 += width) {
      const int64_t n = std::min(width, in - c0);
      const Int8Rows tile = tile_rows(p, c0);
      int64_t block_row = -1;
      const float *scales = nullptr, *offsets = nullptr;
      for (int64_t r = r0; r < r1; ++r) {
        if (!p.int4) {
          kt.nf4_dot_q8(w.codes, r * in + c0, n, w.absmax, w.blocksize, p.levels, tile, rows, dots);
          for (int64_t i = 0; i < rows; ++i) dots[i] *= p.level_scale;
        } else {
          if (r / w.block_rows != block_row) {
            block_row = r / w.block_rows;
            block_params(w, block_row * grid_cols + c0 / block, n / block, converted, &scales, &offsets);
          }
          kt.int4_dot_q8(w.codes, r * in + c0, n, scales, offsets, block, tile, rows, dots);
        }
        for (int64_t i = 0; i < rows; ++i) y[i * out + r] = c0 == 0 ? dots[i] : y[i * out + r] + dots[i];
      }
    }
  });
  // Only an allocation can fail once the loops run; then the float32 path recomputes everything.
  return ok.load();
}

/**
 * y (rows x out) with the tile loops (int4_tile_q8 / nf4_tile_q8), at most kMaxTileRows rows:
 * a small-M GEMM. Each task owns a range of weight rows; per column tile, each group of up to
 * q8_tile weight rows is decoded against every group of activation rows while its code bytes
 * sit in L1, so the weight is streamed once whatever the number of rows.
 */
bool tile_loop(const KernelTable& kt, int threads, const Q8Product& p, int64_t rows, float* y) {
  const QuantWeight& w = p.w;
  const int64_t out = w.out, in = w.in, block = p.block, step = kt.q8_tile;
  const int64_t tasks = threads > 1 ? std::min<int64_t>((out + step - 1) / step, int64_t{8} * threads) : 1;
  // The activation rows of a tile are read once per group of weight rows: from L1 when few, from
  // L2 otherwise (about 2 bytes per value: q, its lane's scale and bias).
  const int64_t width = tile_width(p, kt.q8_chunk, kTileBytesL2, 2 * rows);
  const int64_t grid_cols = p.int4 ? in / block : 0;
  std::atomic<bool> ok{true};
  parallel_for(tasks, threads, [&](int64_t t, int) {
    const int64_t count = width / block;
    float* converted = p.int4 && w.half ? t_params.reserve(2 * count * kMaxTile) : nullptr;
    if (p.int4 && w.half && !converted) {
      ok.store(false);
      return;
    }
    float dots[kMaxTile * kMaxTile];
    const float *scales[kMaxTile] = {}, *offsets[kMaxTile] = {};
    // Tasks start on multiples of the tile's weight rows (whole groups, except the last).
    const int64_t groups = (out + step - 1) / step;
    const int64_t r0 = std::min(out, t * groups / tasks * step), r1 = std::min(out, (t + 1) * groups / tasks * step);
    for (int64_t c0 = 0; c0 < in; c0 += width) {
      const int64_t n = std::min(width, in - c0);
      const Int8Rows tile = tile_rows(p, c0);
      for (int64_t r = r0; r < r1; r += step) {
        const int64_t wrows = std::min(step, r1 - r);
        if (p.int4) {
          for (int64_t j = 0; j < wrows; ++j) {
            block_params(w, (r + j) / w.block_rows * grid_cols + c0 / block, n / block,
                         converted ? converted + 2 * count * j : nullptr, &scales[j], &offsets[j]);
          }
        }
        for (int64_t i0 = 0; i0 < rows; i0 += step) {
          const int64_t xrows = std::min(step, rows - i0);
          const Int8Rows group{tile.q + i0 * in, tile.lane_scales + i0 * (in / 8), tile.lane_bias + i0 * (in / 8),
                               p.int4 ? tile.block_sums + i0 * (in / block) : nullptr, in};
          if (p.int4) {
            kt.int4_tile_q8(w.codes, r * in + c0, in, n, scales, offsets, block, group, wrows, xrows, dots);
          } else {
            kt.nf4_tile_q8(w.codes, r * in + c0, in, n, w.absmax, w.blocksize, p.levels, group, wrows, xrows, dots);
          }
          const float factor = p.int4 ? 1.0f : p.level_scale;
          for (int64_t i = 0; i < xrows; ++i) {
            float* yi = y + (i0 + i) * out + r;
            for (int64_t j = 0; j < wrows; ++j) {
              const float d = dots[i * wrows + j] * factor;
              yi[j] = c0 == 0 ? d : yi[j] + d;
            }
          }
        }
      }
    }
  });
  return ok.load();
}

}  // namespace

bool quant_matmul_q8(const KernelTable& kt, int threads, const QuantWeight& w, const float* x, int64_t rows,
                     int64_t ldx, float* y) {
  const int64_t chunk = kt.q8_chunk, out = w.out, in = w.in;
  if (rows < 1 || rows > q8_max_rows(kt) || chunk == 0 || chunk > kMaxChunk || chunk % kQBlock != 0 ||
      in % chunk != 0 || out == 0) {
    return false;
  }
  const bool tiles = has_tile_loops(kt);
  const bool int4 = w.format == QuantFormat::Int4 && (tiles ? kt.int4_tile_q8 != nullptr : kt.int4_dot_q8 != nullptr) &&
                    w.block_cols % kQBlock == 0;
  const bool four_bit = w.format == QuantFormat::FourBit &&
                        (tiles ? kt.nf4_tile_q8 != nullptr : kt.nf4_dot_q8 != nullptr) && w.blocksize % kQBlock == 0;
  if (!int4 && !four_bit) return false;
  Q8Product p{w, int4, int4 ? w.block_cols : w.blocksize, {}, {}, 1.0f};
  if (four_bit && !int8_levels(w.table, p.levels, &p.level_scale)) return false;
  if (!quantize_rows(kt, x, rows, ldx, in, chunk, int4 ? w.block_cols : 0, &p.x)) return false;
  if (out * in < kParallelMinElements) threads = 1;
  return tiles ? tile_loop(kt, threads, p, rows, y) : rows_loop(kt, threads, p, rows, y);
}

}  // namespace blora
