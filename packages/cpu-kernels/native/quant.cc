// Products with quantized weights. Two strategies:
//   - few activation rows (decoding dominates; for y = x W^T up to 32, taken 8 at a time, for
//     y = x W up to 8): each task decodes
//     one weight row (or a slice of columns of every row) and applies it to all activation rows
//     of the group at once, so every code is decoded once per group. NF4 / FP4 and integer rows
//     in whole vectors are decoded in registers
//     (nf4_dot, nf4_axpy, int_dot, int_axpy, or the split-order loops, which read activations
//     reordered once per call); anything else goes through an L1-resident buffer;
//   - more rows: the packed GEMM, whose B panels are filled by decoding the weight slice they
//     cover straight into the packed layout (the dense weight never exists in full).
#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>

#include "aligned_buffer.h"
#include "gemm.h"
#include "quant_q8.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Activation rows the streaming loops take at once (their accumulators fill the registers).
constexpr int64_t kSmallRows = 8;
// Activation rows up to which the weight is streamed (once per group of kSmallRows) instead of
// decoded into the GEMM's panels: decoding and packing a whole weight costs several times
// more than streaming it once more.
constexpr int64_t kStreamRows = 32;
// Weight elements below which a small product runs on one thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// Output floats per column block of a small transposed product (they stay in L1 while every
// weight row is added in).
constexpr int64_t kColumnBlockFloats = 4096;
// Bytes of the activation rows per column tile of a small product (they stay in L1 while every
// weight row meets them).
constexpr int64_t kTileBytes = int64_t{24} * 1024;

thread_local AlignedBuffer t_row;    // one decoded weight row, or a slice of one
thread_local AlignedBuffer t_panel;  // decoded weight rows waiting to be packed
thread_local AlignedBuffer t_split;  // the caller's activation rows in split order

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/** True when 4-bit rows can go through the fused nf4_dot / nf4_axpy loops (runs of whole vectors). */
bool fused_four_bit(const KernelTable& kt, const QuantWeight& w, bool transposed) {
  const bool available = transposed ? kt.nf4_axpy != nullptr : kt.nf4_dot != nullptr;
  return available && w.format == QuantFormat::FourBit && w.in % 8 == 0 && w.blocksize % 8 == 0;
}

/** True when integer rows can go through the fused int_dot / int_axpy loops (runs of whole vectors). */
bool fused_int(const KernelTable& kt, const QuantWeight& w, bool transposed) {
  const bool available = transposed ? kt.int_axpy != nullptr : kt.int_dot != nullptr;
  return available && w.format != QuantFormat::FourBit && w.in % 8 == 0 && w.block_cols % 8 == 0;
}

/** True when the split-order loops of the table apply (4-bit codes, rows and blocks in runs of 32). */
bool split_order(const KernelTable& kt, const QuantWeight& w) {
  if (w.in % 32 != 0) return false;
  if (w.format == QuantFormat::FourBit) return kt.nf4_dot_split && w.blocksize % 32 == 0;
  return w.format == QuantFormat::Int4 && kt.int4_dot_split && w.block_cols % 32 == 0;
}

/**
 * The rows of x reordered per 32 values into the 16 even-indexed, then the 16 odd-indexed
 * ones (a buffer of the calling thread, rows `in` apart); nullptr without memory.
 */
const float* split_rows(const float* x, int64_t rows, int64_t ldx, int64_t in) {
  float* dst = t_split.reserve(rows * in);
  if (!dst) return nullptr;
  for (int64_t i = 0; i < rows; ++i) {
    const float* src = x + i * ldx;
    float* d = dst + i * in;
    for (int64_t c = 0; c < in; c += 32) {
      for (int64_t j = 0; j < 16; ++j) {
        d[c + j] = src[c + 2 * j];
        d[c + 16 + j] = src[c + 2 * j + 1];
      }
    }
  }
  return dst;
}

/**
 * Runs dot(r, c0, n, dots) for every weight row r and column tile [c0, c0 + n) of `width`
 * values (the last one shorter), adding the tiles' dots into y[i * out + r]. Tasks own ranges
 * of weight rows and walk the tiles outermost, so a tile of the activation rows stays in L1
 * while every weight row of the task meets it, and each weight element is read once.
 */
template <typename Dot>
void tiled_rows(int threads, int64_t tasks, int64_t out, int64_t in, int64_t width, int64_t rows, float* y,
                const Dot& dot) {
  parallel_for(tasks, threads, [&](int64_t t, int) {
    float dots[kSmallRows];
    const int64_t r0 = t * out / tasks, r1 = (t + 1) * out / tasks;
    for (int64_t c0 = 0; c0 < in; c0 += width) {
      const int64_t n = std::min(width, in - c0);
      for (int64_t r = r0; r < r1; ++r) {
        dot(r, c0, n, dots);
        for (int64_t i = 0; i < rows; ++i) y[i * out + r] = c0 == 0 ? dots[i] : y[i * out + r] + dots[i];
      }
    }
  });
}

/**
 * Columns per tile: as many as keep `bytes_per_value` bytes of each of the `rows` activation
 * rows within kTileBytes, a multiple of `align`, and all of them for a single short row.
 */
int64_t tile_width(int64_t in, int64_t rows, int64_t bytes_per_value, int64_t align) {
  const int64_t fit = kTileBytes / std::max<int64_t>(1, rows * bytes_per_value);
  return std::min(in, std::max(align, fit / align * align));
}

/**
 * y = x W^T for at most kSmallRows rows of an integer weight, decoded in registers by int_dot
 * (or int4_dot_split when `split`: x is then in split order), in column tiles as tiled_rows
 * does. Each tile of a weight row reads the float32 scales and offsets of its blocks (float16
 * ones are converted per row of blocks and tile into a per-thread buffer).
 */
bool small_matmul_int(const KernelTable& kt, int threads, int64_t tasks, const QuantWeight& w, const float* x,
                      int64_t rows, int64_t ldx, float* y, bool split) {
  const int64_t out = w.out, in = w.in, grid_cols = in / w.block_cols;
  const int bits = w.format == QuantFormat::Int4 ? 4 : 8;
  // Tiles start on block boundaries (the loops begin each slice at a block's first value).
  const int64_t width = tile_width(in, rows, sizeof(float), std::lcm(int64_t{32}, w.block_cols));
  std::atomic<bool> ok{true};
  parallel_for(tasks, threads, [&](int64_t t, int) {
    float* converted = w.half ? t_row.reserve(2 * (width / w.block_cols)) : nullptr;
    if (w.half && !converted) {
      ok.store(false);
      return;
    }
    float dots[kSmallRows];
    const int64_t r0 = t * out / tasks, r1 = (t + 1) * out / tasks;
    for (int64_t c0 = 0; c0 < in; c0 += width) {
      const int64_t n = std::min(width, in - c0);
      int64_t block_row = -1;
      const float *scales = nullptr, *offsets = nullptr;
      for (int64_t r = r0; r < r1; ++r) {
        if (r / w.block_rows != block_row) {
          block_row = r / w.block_rows;
          block_params(w, block_row * grid_cols + c0 / w.block_cols, n / w.block_cols, converted, &scales, &offsets);
        }
        if (split) kt.int4_dot_split(w.codes, r * in + c0, n, scales, offsets, w.block_cols, x + c0, ldx, rows, dots);
        else kt.int_dot(bits, w.codes, r * in + c0, n, scales, offsets, w.block_cols, x + c0, ldx, rows, dots);
        for (int64_t i = 0; i < rows; ++i) y[i * out + r] = c0 == 0 ? dots[i] : y[i * out + r] + dots[i];
      }
    }
  });
  return ok.load();
}

/** y = x W^T for at most kSmallRows rows: tasks own ranges of output features (weight rows). */
bool small_matmul(const KernelTable& kt, int threads, const QuantWeight& w, const float* x, int64_t rows, int64_t ldx,
                  float* y) {
  const int64_t out = w.out, in = w.in;
  if (out * in < kParallelMinElements) threads = 1;
  const int64_t tasks = std::min<int64_t>(out, threads > 1 ? int64_t{8} * threads : 1);
  std::atomic<bool> ok{true};
  const float* split = split_order(kt, w) ? split_rows(x, rows, ldx, in) : nullptr;
  if (split && w.format == QuantFormat::FourBit) {
    tiled_rows(threads, tasks, out, in, tile_width(in, rows, sizeof(float), 32), rows, y,
               [&](int64_t r, int64_t c0, int64_t n, float* dots) {
                 kt.nf4_dot_split(w.codes, r * in + c0, n, w.absmax, w.blocksize, w.table, split + c0, in, rows, dots);
               });
    return true;
  }
  if (split) return small_matmul_int(kt, threads, tasks, w, split, rows, in, y, true);
  if (fused_four_bit(kt, w, false)) {
    tiled_rows(threads, tasks, out, in, tile_width(in, rows, sizeof(float), 32), rows, y,
               [&](int64_t r, int64_t c0, int64_t n, float* dots) {
                 kt.nf4_dot(w.codes, r * in + c0, n, w.absmax, w.blocksize, w.table, x + c0, ldx, rows, dots);
               });
    return true;
  }
  if (fused_int(kt, w, false)) return small_matmul_int(kt, threads, tasks, w, x, rows, ldx, y, false);
  parallel_for(tasks, threads, [&](int64_t t, int) {
    float* row = t_row.reserve(in);
    if (!row) {
      ok.store(false);
      return;
    }
    float dots[kSmallRows];
    for (int64_t r = t * out / tasks, end = (t + 1) * out / tasks; r < end; ++r) {
      decode_weight_row(kt, w, r, 0, in, row);
      kt.gemv_rows(rows, in, x, ldx, row, dots);
      for (int64_t i = 0; i < rows; ++i) y[i * out + r] = dots[i];
    }
  });
  return ok.load();
}

/** y = x W for at most kSmallRows rows: tasks own blocks of input features (weight columns). */
bool small_matmul_t(const KernelTable& kt, int threads, const QuantWeight& w, const float* x, int64_t rows,
                    int64_t ldx, float* y) {
  const int64_t out = w.out, in = w.in;
  if (out * in < kParallelMinElements) threads = 1;
  int64_t width = std::max<int64_t>(64, kColumnBlockFloats / rows / 64 * 64);
  if (threads > 1) width = std::min(width, std::max<int64_t>(64, ceil_div(ceil_div(in, 4 * threads), 64) * 64));
  const int64_t blocks = ceil_div(in, width);
  // width is a multiple of 8, so every slice is too (and starts 8-aligned in its integer block).
  const bool fused = fused_four_bit(kt, w, true);
  const bool fused_integer = fused_int(kt, w, true);
  std::atomic<bool> ok{true};
  parallel_for(blocks, threads, [&](int64_t t, int) {
    const int64_t c0 = t * width, n = std::min(width, in - c0);
    for (int64_t i = 0; i < rows; ++i) std::memset(y + i * in + c0, 0, sizeof(float) * n);
    // Integer blocks b0 .. b0 + nb of a row cover the slice, which starts `phase` into block b0.
    const int64_t b0 = fused_integer ? c0 / w.block_cols : 0;
    const int64_t nb = fused_integer ? ceil_div(c0 + n, w.block_cols) - b0 : 0;
    const int64_t phase = c0 - b0 * w.block_cols;
    const bool buffered = !fused && (!fused_integer || w.half);
    float* row = buffered ? t_row.reserve(fused_integer ? 2 * nb : n) : nullptr;
    if (buffered && !row) {
      ok.store(false);
      return;
    }
    int64_t block_row = -1;
    const float *scales = nullptr, *offsets = nullptr;
    float alpha[kSmallRows];
    for (int64_t r = 0; r < out; ++r) {
      bool any = false;
      for (int64_t i = 0; i < rows; ++i) {
        alpha[i] = x[i * ldx + r];
        any |= alpha[i] != 0.0f;
      }
      if (!any) continue;  // a zero gradient row adds nothing
      if (fused) {
        kt.nf4_axpy(w.codes, r * in + c0, n, w.absmax, w.blocksize, w.table, alpha, rows, y + c0, in);
        continue;
      }
      if (fused_integer) {
        if (r / w.block_rows != block_row) {
          block_row = r / w.block_rows;
          block_params(w, block_row * (in / w.block_cols) + b0, nb, row, &scales, &offsets);
        }
        kt.int_axpy(w.format == QuantFormat::Int4 ? 4 : 8, w.codes, r * in + c0, n, scales, offsets, w.block_cols,
                    phase, alpha, rows, y + c0, in);
        continue;
      }
      decode_weight_row(kt, w, r, c0, n, row);
      kt.axpy_rows(rows, n, alpha, row, y + c0, in);
    }
  });
  return ok.load();
}

/** Fills GEMM panels from a quantized weight: B = W^T (y = x W^T) or B = W (transposed). */
struct QuantPanels {
  const QuantWeight* w;
  bool transposed;
  std::atomic<bool>* ok;

  static void pack(const void* self, const KernelTable& kt, int nr, float* dst, int64_t pc, int64_t kc, int64_t jc,
                   int64_t nc, int64_t s0, int64_t s1) {
    const QuantPanels& qp = *static_cast<const QuantPanels*>(self);
    if (qp.transposed) qp.pack_rows(kt, nr, dst, pc, kc, jc, nc, s0, s1);
    else qp.pack_columns(kt, nr, dst, pc, kc, jc, nc, s0, s1);
  }

  // B(p, j) = W[jc + j, pc + p]: decode nr weight rows, then transpose them into the sliver.
  void pack_columns(const KernelTable& kt, int nr, float* dst, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                    int64_t s0, int64_t s1) const {
    float* rows = t_panel.reserve(nr * kc);
    if (!rows) {
      ok->store(false);
      return;
    }
    for (int64_t s = s0; s < s1; ++s) {
      float* d = dst + s * nr * kc;
      const int64_t width = std::min<int64_t>(nr, nc - s * nr);
      for (int64_t j = 0; j < width; ++j) decode_weight_row(kt, *w, jc + s * nr + j, pc, kc, rows + j * kc);
      if (width == nr && nr == kt.nr && kt.pack_b_cols) {
        kt.pack_b_cols(rows, kc, kc, d);
      } else {
        for (int64_t p = 0; p < kc; ++p)
          for (int j = 0; j < nr; ++j) d[p * nr + j] = j < width ? rows[j * kc + p] : 0.0f;
      }
    }
  }

  // B(p, j) = W[pc + p, jc + j]: decode the slivers' columns of each weight row, then split them.
  void pack_rows(const KernelTable& kt, int nr, float* dst, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                 int64_t s0, int64_t s1) const {
    const int64_t cols = std::min(nc, s1 * nr) - s0 * nr;
    float* row = t_panel.reserve(cols);
    if (!row) {
      ok->store(false);
      return;
    }
    for (int64_t p = 0; p < kc; ++p) {
      decode_weight_row(kt, *w, pc + p, jc + s0 * nr, cols, row);
      for (int64_t s = s0; s < s1; ++s) {
        float* d = dst + s * nr * kc + p * nr;
        const int64_t j0 = (s - s0) * nr;
        const int64_t width = std::min<int64_t>(nr, cols - j0);
        std::memcpy(d, row + j0, sizeof(float) * width);
        for (int64_t j = width; j < nr; ++j) d[j] = 0.0f;
      }
    }
  }
};

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)
                                         : sign | ((exponent + 112) << 23) | (mantissa << 13);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float block_param(const void* params, bool half, int64_t index) {
  return half ? half_to_float(static_cast<const uint16_t*>(params)[index]) : static_cast<const float*>(params)[index];
}

/**
 * Points *scales and *offsets at the float32 parameters of the `count` blocks from row-major
 * index `first`; float16 ones are first converted into `converted` (2 * count floats).
 */
void block_params(const QuantWeight& w, int64_t first, int64_t count, float* converted, const float** scales,
                  const float** offsets) {
  if (!w.half) {
    *scales = static_cast<const float*>(w.scales) + first;
    *offsets = static_cast<const float*>(w.offsets) + first;
    return;
  }
  for (int64_t b = 0; b < count; ++b) {
    converted[b] = block_param(w.scales, true, first + b);
    converted[count + b] = block_param(w.offsets, true, first + b);
  }
  *scales = converted;
  *offsets = converted + count;
}

void decode_weight_row(const KernelTable& kt, const QuantWeight& w, int64_t r, int64_t c0, int64_t count, float* dst) {
  if (w.format == QuantFormat::FourBit) {
    kt.decode_nf4(w.codes, r * w.in + c0, count, w.absmax, w.blocksize, w.table, dst);
    return;
  }
  const int bits = w.format == QuantFormat::Int4 ? 4 : 8;
  const int64_t first_param = (r / w.block_rows) * (w.in / w.block_cols);
  for (int64_t c = c0, end = c0 + count; c < end;) {
    const int64_t block = c / w.block_cols;
    const int64_t stop = std::min((block + 1) * w.block_cols, end);
    kt.decode_int(bits, w.codes, r * w.in + c, stop - c, block_param(w.scales, w.half, first_param + block),
                  block_param(w.offsets, w.half, first_param + block), dst + (c - c0));
    c = stop;
  }
}

bool quant_matmul_f32(const KernelTable& kt, int threads, const QuantWeight& w, bool transposed, const float* x,
                      int64_t rows, int64_t ldx, float* y, bool int8_activations) {
  const int64_t n = transposed ? w.in : w.out, k = transposed ? w.out : w.in;
  if (rows == 0 || n == 0) return true;
  if (k == 0) {
    std::memset(y, 0, sizeof(float) * rows * n);
    return true;
  }
  // y = x W (the input gradient) updates every output column per weight row: past 8 rows the
  // GEMM does that better than streaming the weight again.
  if (transposed && rows <= kSmallRows) return small_matmul_t(kt, threads, w, x, rows, ldx, y);
  if (!transposed && rows <= kStreamRows) {
    // Int8 activations take as many rows at once as their loops do (all of them with tile loops).
    const int64_t group = int8_activations ? std::max(kSmallRows, q8_max_rows(kt)) : kSmallRows;
    for (int64_t r0 = 0; r0 < rows; r0 += group) {
      const int64_t g = std::min(group, rows - r0);
      if (int8_activations && quant_matmul_q8(kt, threads, w, x + r0 * ldx, g, ldx, y + r0 * n)) continue;
      for (int64_t s0 = r0; s0 < r0 + g; s0 += kSmallRows) {
        if (!small_matmul(kt, threads, w, x + s0 * ldx, std::min(kSmallRows, r0 + g - s0), ldx, y + s0 * n)) return false;
      }
    }
    return true;
  }
  std::atomic<bool> ok{true};
  const QuantPanels panels{&w, transposed, &ok};
  if (!gemm_f32_source(kt, threads, rows, n, k, x, ldx, 1, {QuantPanels::pack, &panels}, y)) return false;
  return ok.load();
}

}  // namespace blora
