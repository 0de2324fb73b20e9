// Portable inner loops (plain C++; the compiler vectorises what it can for the baseline ISA).
#include <algorithm>
#include <cmath>

#include "kernel_util.h"
#include "kernels.h"

namespace blora {

namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;

void gemm_micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p, a += kMr, b += kNr)
    for (int i = 0; i < kMr; ++i)
      for (int j = 0; j < kNr; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNr; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.0f) + acc[i][j];
}

void gemv_rows(int64_t rows, int64_t k, const float* m, int64_t ldm, const float* x, float* y) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = m + i * ldm;
    float s[4] = {0, 0, 0, 0};
    int64_t p = 0;
    for (; p + 4 <= k; p += 4)
      for (int l = 0; l < 4; ++l) s[l] += row[p + l] * x[p + l];
    for (; p < k; ++p) s[0] += row[p] * x[p];
    y[i] = (s[0] + s[1]) + (s[2] + s[3]);
  }
}

void gemv_cols(int64_t rows, int64_t k, const float* m, int64_t ldk, const float* x, float* y) {
  for (int64_t i = 0; i < rows; ++i) y[i] = 0.0f;
  for (int64_t p = 0; p < k; ++p) {
    const float* col = m + p * ldk;
    const float xp = x[p];
    for (int64_t i = 0; i < rows; ++i) y[i] += col[i] * xp;
  }
}

template <typename Op>
void binary_loop(Op op, const float* x, int64_t xs, const float* y, int64_t ys, float* out, int64_t n) {
  if (xs == 1 && ys == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = op(x[i], y[i]);
  } else if (xs == 1) {
    const float v = y[0];
    for (int64_t i = 0; i < n; ++i) out[i] = op(x[i], v);
  } else if (ys == 1) {
    const float v = x[0];
    for (int64_t i = 0; i < n; ++i) out[i] = op(v, y[i]);
  } else {
    const float v = op(x[0], y[0]);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
}

void binary(BinaryOp op, const float* x, int64_t xs, const float* y, int64_t ys, float* out, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return binary_loop([](float a, float b) { return a + b; }, x, xs, y, ys, out, n);
    case BinaryOp::Sub: return binary_loop([](float a, float b) { return a - b; }, x, xs, y, ys, out, n);
    case BinaryOp::Mul: return binary_loop([](float a, float b) { return a * b; }, x, xs, y, ys, out, n);
    case BinaryOp::Div: return binary_loop([](float a, float b) { return a / b; }, x, xs, y, ys, out, n);
  }
}

void softmax_rows(const float* src, float* dst, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; ++r, src += n, dst += n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; ++j) m = src[j] > m || src[j] != src[j] ? src[j] : m;
    // A double sum keeps -log(1 + small) of the largest element accurate.
    double s = 0.0;
    if (log) {
      for (int64_t j = 0; j < n; ++j) s += std::exp(src[j] - m);
      const float ls = static_cast<float>(std::log(s));
      for (int64_t j = 0; j < n; ++j) dst[j] = (src[j] - m) - ls;
    } else {
      for (int64_t j = 0; j < n; ++j) s += (dst[j] = std::exp(src[j] - m));
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t j = 0; j < n; ++j) dst[j] *= inv;
    }
  }
}

void avg_pool(const float* src, float* dst, int64_t outputs, int64_t k) {
  for (int64_t o = 0; o < outputs; ++o, src += k) {
    // Summed in double so that the mean of k equal values is that value.
    double s = 0.0;
    for (int64_t j = 0; j < k; ++j) s += src[j];
    dst[o] = static_cast<float>(s / static_cast<double>(k));
  }
}

void exp_loop(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = std::exp(src[i]);
}

// In double, rounded once, like the TypeScript kernels: e^x is only taken of non-positive arguments.
void activation(ActivationOp op, const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = src[i];
    const double e = std::exp(-std::fabs(x));
    const double s = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    if (op == ActivationOp::Sigmoid) dst[i] = static_cast<float>(s);
    else dst[i] = x == -HUGE_VAL ? -0.0f : static_cast<float>(x * s);
  }
}

void decode_nf4(const uint8_t* packed, int64_t start, int64_t count, const float* absmax, int64_t blocksize,
                const float* table, float* dst) {
  const int64_t end = start + count;
  for (int64_t i = start, block = start / blocksize; i < end; ++block) {
    const int64_t block_end = std::min((block + 1) * blocksize, end);
    const float scale = absmax[block];
    for (; i < block_end; ++i) *dst++ = table[nibble(packed, i)] * scale;
  }
}

void decode_int(int bits, const uint8_t* codes, int64_t start, int64_t count, float scale, float offset, float* dst) {
  // scale * q is exact in double, so this rounds like the reference: the sum to double, then to float.
  const double s = scale, o = offset;
  const int64_t end = start + count;
  if (bits == 8) {
    for (int64_t i = start; i < end; ++i) *dst++ = static_cast<float>(s * codes[i] + o);
  } else {
    for (int64_t i = start; i < end; ++i) *dst++ = static_cast<float>(s * nibble(codes, i) + o);
  }
}

void axpy_rows(int64_t rows, int64_t n, const float* alpha, const float* x, float* m, int64_t ldm) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = m + r * ldm;
    const float a = alpha[r];
    for (int64_t j = 0; j < n; ++j) row[j] += a * x[j];
  }
}

// ---- int8 activations (Int8Rows in chunks of 32; see quant_q8.h) ----

constexpr int64_t kQ8Chunk = 32;

/** Position within its chunk of the value at byte p: the even-indexed values first, then the odd ones. */
inline int64_t q8_value_at(int64_t p) { return p < kQ8Chunk / 2 ? 2 * p : 2 * (p - kQ8Chunk / 2) + 1; }

/**
 * The dot products of a weight row with int8 rows: for each lane of each chunk, the integer
 * sum of its eight products times (the weight scale of its values) * (lane scale), summed in
 * float32 as the vector loops do. code(c) and scale_of(c) give the integer value and the
 * weight scale of element c.
 */
template <typename Code, typename ScaleOf>
void q8_dots(int64_t n, const Int8Rows& x, int64_t rows, const Code& code, const ScaleOf& scale_of, float* dots) {
  for (int64_t i = 0; i < rows; ++i) {
    const int8_t* q = x.q + i * x.in;
    const float* lane_scales = x.lane_scales + i * (x.in / 8);
    float acc = 0.0f;
    for (int64_t c0 = 0; c0 < n; c0 += kQ8Chunk) {
      // One lane: bytes 4L .. 4L + 3 of both halves, values 8L .. 8L + 7 of the chunk.
      for (int64_t lane = 0; lane < kQ8Chunk / 8; ++lane) {
        int32_t s = 0;
        for (int64_t p = 4 * lane; p < 4 * lane + 4; ++p) {
          for (int64_t half = 0; half < kQ8Chunk; half += kQ8Chunk / 2) {
            s += code(c0 + q8_value_at(half + p)) * q[c0 + half + p];
          }
        }
        acc += static_cast<float>(s) * (scale_of(c0 + 8 * lane) * lane_scales[c0 / 8 + lane]);
      }
    }
    dots[i] = acc;
  }
}

void int4_dot_q8(const uint8_t* codes, int64_t start, int64_t n, const float* scales, const float* offsets,
                 int64_t block, const Int8Rows& x, int64_t rows, float* dots) {
  q8_dots(n, x, rows, [&](int64_t c) { return nibble(codes, start + c); },
          [&](int64_t c) { return scales[c / block]; }, dots);
  for (int64_t i = 0; i < rows; ++i) {
    const float* sums = x.block_sums + i * (x.in / block);
    for (int64_t b = 0; b < n / block; ++b) dots[i] += offsets[b] * sums[b];
  }
}

void nf4_dot_q8(const uint8_t* packed, int64_t start, int64_t n, const float* absmax, int64_t blocksize,
                const int8_t* levels, const Int8Rows& x, int64_t rows, float* dots) {
  q8_dots(n, x, rows, [&](int64_t c) { return static_cast<int32_t>(levels[nibble(packed, start + c)]); },
          [&](int64_t c) { return absmax[(start + c) / blocksize]; }, dots);
}

}  // namespace

const KernelTable kScalarKernels = {
    "scalar", kMr, kNr, /*mc=*/64, /*kc=*/256,
    gemm_micro, /*pack_a_rows=*/nullptr, /*pack_b_cols=*/nullptr, gemv_rows, gemv_cols, binary, softmax_rows, avg_pool, exp_loop, activation,
    decode_nf4, decode_int, axpy_rows, /*nf4_dot=*/nullptr, /*nf4_axpy=*/nullptr, /*int_dot=*/nullptr, /*int_axpy=*/nullptr,
    /*nf4_dot_split=*/nullptr, /*int4_dot_split=*/nullptr, kQ8Chunk, int4_dot_q8, nf4_dot_q8,
    /*quantize_q8_row=*/nullptr, /*q8_tile=*/0, /*int4_tile_q8=*/nullptr, /*nf4_tile_q8=*/nullptr,
};

}  // namespace blora
