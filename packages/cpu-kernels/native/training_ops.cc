#include "training_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "aligned_buffer.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Elements below which a call stays on the calling thread.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;

thread_local AlignedBuffer t_row;  // one row of exponentials

/** Parts of `rows` rows worth splitting over `threads` for `elements` elements of work. */
int64_t parts_for(int threads, int64_t rows, int64_t elements) {
  if (elements < kParallelMinElements || threads <= 1) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(rows, 4 * threads));
}

/** Row range [*begin, *end) of part t of `parts`. */
void part_range(int64_t rows, int64_t parts, int64_t t, int64_t* begin, int64_t* end) {
  *begin = t * rows / parts;
  *end = (t + 1) * rows / parts;
}

}  // namespace

void rms_norm_f32(int threads, const float* x, int64_t ldx, const float* w, double offset, double eps, int64_t rows,
                  int64_t d, float* y, float* rstd) {
  std::vector<double> gain(d);
  for (int64_t i = 0; i < d; ++i) gain[i] = offset + w[i];
  const int64_t parts = parts_for(threads, rows, rows * d);
  parallel_for(parts, threads, [&](int64_t t, int) {
    int64_t r0, r1;
    part_range(rows, parts, t, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ldx;
      float* yr = y + r * d;
      double sum_squares = 0.0;
      for (int64_t i = 0; i < d; ++i) sum_squares += static_cast<double>(xr[i]) * xr[i];
      const double inv = 1.0 / std::sqrt((d > 0 ? sum_squares / d : 0.0) + eps);
      rstd[r] = static_cast<float>(inv);
      for (int64_t i = 0; i < d; ++i) yr[i] = static_cast<float>(xr[i] * inv * gain[i]);
    }
  });
}

bool rms_norm_backward_f32(int threads, const float* dy, int64_t lddy, const float* x, int64_t ldx, const float* w,
                           double offset, const float* rstd, int64_t rows, int64_t d, float* dx, float* dw) {
  std::vector<double> gain(d);
  for (int64_t i = 0; i < d; ++i) gain[i] = offset + w[i];
  // Each part sums its rows' weight gradient into its own slice; the slices are added in part order.
  const int64_t parts = parts_for(threads, rows, rows * d);
  std::unique_ptr<double[]> partial(new (std::nothrow) double[parts * d]());
  if (!partial) return false;
  parallel_for(parts, threads, [&](int64_t t, int) {
    int64_t r0, r1;
    part_range(rows, parts, t, &r0, &r1);
    double* acc = partial.get() + t * d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* dyr = dy + r * lddy;
      const float* xr = x + r * ldx;
      float* dxr = dx + r * d;
      const double inv = rstd[r];
      double dot = 0.0;
      for (int64_t i = 0; i < d; ++i) dot += dyr[i] * gain[i] * xr[i];
      const double coef = inv * inv * inv * dot / d;
      for (int64_t i = 0; i < d; ++i) {
        dxr[i] = static_cast<float>(inv * gain[i] * dyr[i] - xr[i] * coef);
        acc[i] += static_cast<double>(dyr[i]) * xr[i] * inv;
      }
    }
  });
  for (int64_t i = 0; i < d; ++i) {
    double s = 0.0;
    for (int64_t t = 0; t < parts; ++t) s += partial[t * d + i];
    dw[i] = static_cast<float>(s);
  }
  return true;
}

bool cross_entropy_f32(const KernelTable& kt, int threads, const float* logits, int64_t ld, const int32_t* targets,
                       int64_t rows, int64_t v, int64_t ignore, float* lse, double* total) {
  const int64_t parts = parts_for(threads, rows, rows * v);
  std::vector<double> totals(parts, 0.0);
  std::atomic<bool> ok{true};
  parallel_for(parts, threads, [&](int64_t t, int) {
    float* e = t_row.reserve(v);
    if (!e) {
      ok.store(false);
      return;
    }
    int64_t r0, r1;
    part_range(rows, parts, t, &r0, &r1);
    double part_total = 0.0;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = logits + r * ld;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < v; ++j) max = row[j] > max ? row[j] : max;
      for (int64_t j = 0; j < v; ++j) e[j] = row[j] - max;
      kt.exp(e, e, v);
      // Four running sums: one chain of dependent double additions would take ~4 cycles a value.
      double sums[4] = {0.0, 0.0, 0.0, 0.0};
      int64_t j = 0;
      for (; j + 4 <= v; j += 4) {
        for (int k = 0; k < 4; ++k) sums[k] += e[j + k];
      }
      for (; j < v; ++j) sums[0] += e[j];
      const double sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
      // A row of -inf logits has lse -inf (not NaN).
      const double row_lse = max == -std::numeric_limits<float>::infinity() ? max : max + std::log(sum);
      lse[r] = static_cast<float>(row_lse);
      if (targets[r] != ignore) part_total += row_lse - row[targets[r]];
    }
    totals[t] = part_total;
  });
  *total = 0.0;
  for (double part : totals) *total += part;
  return ok.load();
}

void cross_entropy_backward_f32(const KernelTable& kt, int threads, const float* logits, int64_t ld,
                                const int32_t* targets, const float* lse, int64_t rows, int64_t v, int64_t ignore,
                                double scale, float* dlogits) {
  const int64_t parts = parts_for(threads, rows, rows * v);
  const float s = static_cast<float>(scale);
  parallel_for(parts, threads, [&](int64_t t, int) {
    int64_t r0, r1;
    part_range(rows, parts, t, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
      float* out = dlogits + r * v;
      if (targets[r] == ignore) {
        std::memset(out, 0, sizeof(float) * v);
        continue;
      }
      const float* row = logits + r * ld;
      const float row_lse = lse[r];
      for (int64_t j = 0; j < v; ++j) out[j] = row[j] - row_lse;
      kt.exp(out, out, v);
      for (int64_t j = 0; j < v; ++j) out[j] *= s;
      out[targets[r]] -= s;
    }
  });
}

void adamw_f32(int threads, float* p, const float* g, float* m, float* v, int64_t n, const AdamwConstants& c) {
  const int64_t parts = parts_for(threads, n, n) > 1 ? threads : 1;
  parallel_for(parts, threads, [&](int64_t t, int) {
    const int64_t i0 = t * n / parts, i1 = (t + 1) * n / parts;
    for (int64_t i = i0; i < i1; ++i) {
      const double gi = g[i];
      // The moments are rounded to float32 when stored, and used as stored.
      m[i] = static_cast<float>(c.beta1 * m[i] + (1.0 - c.beta1) * gi);
      v[i] = static_cast<float>(c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi);
      const double update = c.step_size * m[i] / (std::sqrt(static_cast<double>(v[i])) / c.sqrt_correction2 + c.eps);
      p[i] = static_cast<float>(p[i] * c.decay - update);
    }
  });
}

}  // namespace blora
