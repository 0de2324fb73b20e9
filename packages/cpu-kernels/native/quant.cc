// Products with quantized weights. Two strategies:
//   - few activation rows (decoding dominates): each task decodes one weight row (or a slice
//     of columns of every row) and applies it to all activation rows at once, so every code is
//     decoded exactly once. NF4 / FP4 and integer rows in whole vectors are decoded in registers
//     (nf4_dot, nf4_axpy, int_dot, int_axpy); anything else goes through an L1-resident buffer;
//   - more rows: the packed GEMM, whose B panels are filled by decoding the weight slice they
//     cover straight into the packed layout (the dense weight never exists in full).
#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "aligned_buffer.h"
#include "gemm.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Activation rows up to which the weight is streamed once instead of packed for the GEMM.
constexpr int64_t kSmallRows = 8;
// Weight elements below which a small product runs on one thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// Output floats per column block of a small transposed product (they stay in L1 while every
// weight row is added in).
constexpr int64_t kColumnBlockFloats = 4096;

thread_local AlignedBuffer t_row;    // one decoded weight row, or a slice of one
thread_local AlignedBuffer t_panel;  // decoded weight rows waiting to be packed

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

/**
 * y = x W^T for at most kSmallRows rows of an integer weight, decoded in registers by int_dot.
 * Each weight row reads the float32 scales and offsets of its row of blocks (float16 ones are
 * converted once per row of blocks into a per-thread buffer).
 */
bool small_matmul_int(const KernelTable& kt, int threads, int64_t tasks, const QuantWeight& w, const float* x,
                      int64_t rows, int64_t ldx, float* y) {
  const int64_t out = w.out, in = w.in, grid_cols = in / w.block_cols;
  const int bits = w.format == QuantFormat::Int4 ? 4 : 8;
  std::atomic<bool> ok{true};
  parallel_for(tasks, threads, [&](int64_t t, int) {
    float* converted = w.half ? t_row.reserve(2 * grid_cols) : nullptr;
    if (w.half && !converted) {
      ok.store(false);
      return;
    }
    float dots[kSmallRows];
    int64_t block_row = -1;
    const float *scales = nullptr, *offsets = nullptr;
    for (int64_t r = t * out / tasks, end = (t + 1) * out / tasks; r < end; ++r) {
      if (r / w.block_rows != block_row) {
        block_row = r / w.block_rows;
        block_params(w, block_row * grid_cols, grid_cols, converted, &scales, &offsets);
      }
      kt.int_dot(bits, w.codes, r * in, in, scales, offsets, w.block_cols, x, ldx, rows, dots);
      for (int64_t i = 0; i < rows; ++i) y[i * out + r] = dots[i];
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
  if (fused_four_bit(kt, w, false)) {
    parallel_for(tasks, threads, [&](int64_t t, int) {
      float dots[kSmallRows];
      for (int64_t r = t * out / tasks, end = (t + 1) * out / tasks; r < end; ++r) {
        kt.nf4_dot(w.codes, r * in, in, w.absmax, w.blocksize, w.table, x, ldx, rows, dots);
        for (int64_t i = 0; i < rows; ++i) y[i * out + r] = dots[i];
      }
    });
    return true;
  }
  if (fused_int(kt, w, false)) return small_matmul_int(kt, threads, tasks, w, x, rows, ldx, y);
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
                      int64_t rows, int64_t ldx, float* y) {
  const int64_t n = transposed ? w.in : w.out, k = transposed ? w.out : w.in;
  if (rows == 0 || n == 0) return true;
  if (k == 0) {
    std::memset(y, 0, sizeof(float) * rows * n);
    return true;
  }
  if (rows <= kSmallRows) {
    return transposed ? small_matmul_t(kt, threads, w, x, rows, ldx, y) : small_matmul(kt, threads, w, x, rows, ldx, y);
  }
  std::atomic<bool> ok{true};
  const QuantPanels panels{&w, transposed, &ok};
  if (!gemm_f32_source(kt, threads, rows, n, k, x, ldx, 1, {QuantPanels::pack, &panels}, y)) return false;
  return ok.load();
}

}  // namespace blora
