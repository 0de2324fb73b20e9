#include "layout_ops.h"

#include <algorithm>
#include <cstring>

#include "thread_pool.h"

namespace blora {

namespace {

// Elements below which these memory-bound loops stay on the calling thread: waking a worker
// costs microseconds, and on a machine shared with other work a descheduled worker can hold
// a small op up for much longer than it would take alone.
constexpr int64_t kParallelMinElements = int64_t{1} << 18;
// Tasks per thread when parallel (several, so threads finish close together).
constexpr int64_t kTasksPerThread = 4;

int64_t tasks_for(int threads, int64_t units, int64_t elements) {
  if (threads <= 1 || elements < kParallelMinElements) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(units, kTasksPerThread * threads));
}

/** Copies rows [r0, r1) of the copy seen as rows of the last dim (dims before it in row-major order). */
void copy_rows(const float* src, int rank, const int64_t* sizes, const int64_t* strides, float* dst, int64_t r0,
               int64_t r1) {
  const int64_t n = sizes[rank - 1], s = strides[rank - 1];
  int64_t idx[kMaxCopyRank] = {};
  int64_t offset = 0;
  for (int64_t rest = r0, d = rank - 2; d >= 0; --d) {
    idx[d] = rest % sizes[d];
    rest /= sizes[d];
    offset += idx[d] * strides[d];
  }
  float* out = dst + r0 * n;
  for (int64_t r = r0; r < r1; ++r, out += n) {
    const float* in = src + offset;
    if (s == 1) {
      std::memcpy(out, in, sizeof(float) * n);
    } else {
      for (int64_t j = 0; j < n; ++j) out[j] = in[j * s];
    }
    for (int d = rank - 2; d >= 0; --d) {
      offset += strides[d];
      if (++idx[d] < sizes[d]) break;
      offset -= strides[d] * sizes[d];
      idx[d] = 0;
    }
  }
}

/** The pair (lo, hi) rotated: lo c - hi s and hi c + lo s in double, rounded once. */
inline void rotate(const float* in, int64_t half, const float* c, const float* s, double sign, float* out) {
  for (int64_t i = 0; i < half; ++i) {
    const double lo = in[i], hi = in[i + half], cv = c[i], sv = sign * s[i];
    out[i] = static_cast<float>(lo * cv - hi * sv);
    out[i + half] = static_cast<float>(hi * cv + lo * sv);
  }
}

}  // namespace

void copy_strided_f32(int threads, const float* src, int rank, const int64_t* sizes, const int64_t* strides,
                      float* dst) {
  int64_t numel = 1;
  for (int d = 0; d < rank; ++d) numel *= sizes[d];
  if (numel == 0) return;
  if (rank == 0) {
    dst[0] = src[0];
    return;
  }
  const int64_t rows = numel / sizes[rank - 1];
  const int64_t tasks = tasks_for(threads, rows, numel);
  parallel_for(tasks, threads, [&](int64_t t, int) {
    copy_rows(src, rank, sizes, strides, dst, t * rows / tasks, (t + 1) * rows / tasks);
  });
}

void rope_f32(int threads, const RopeInput& x, int64_t batch, int64_t heads, int64_t t, int64_t dh, const float* cos,
              const float* sin, bool inverse, float* out) {
  const int64_t rows = batch * heads * t, half = dh / 2;
  const double sign = inverse ? -1.0 : 1.0;
  const int64_t tasks = tasks_for(threads, rows, rows * dh);
  parallel_for(tasks, threads, [&](int64_t task, int) {
    for (int64_t r = task * rows / tasks, end = (task + 1) * rows / tasks; r < end; ++r) {
      const int64_t p = r % t, bh = r / t;
      const float* in = x.data + (bh / heads) * x.sb + (bh % heads) * x.sh + p * x.st;
      rotate(in, half, cos + p * half, sin + p * half, sign, out + r * dh);
    }
  });
}

void sum_f32(int threads, const float* x, int64_t outer, int64_t reduced, int64_t inner, double divisor, float* out) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return;
  if (inner == 1) {
    // Row sums: one accumulator per output, the row read in order.
    const int64_t tasks = tasks_for(threads, outer, outer * reduced);
    parallel_for(tasks, threads, [&](int64_t t, int) {
      for (int64_t o = t * outer / tasks, end = (t + 1) * outer / tasks; o < end; ++o) {
        const float* row = x + o * reduced;
        double s = 0.0;
        for (int64_t r = 0; r < reduced; ++r) s += row[r];
        out[o] = static_cast<float>(s / divisor);
      }
    });
    return;
  }
  // Column sums: a run of neighbouring accumulators (kept in L1) per task, rows added in order.
  constexpr int64_t kRun = 512;
  const int64_t runs_per_row = (inner + kRun - 1) / kRun;
  const int64_t units = outer * runs_per_row;
  const int64_t tasks = tasks_for(threads, units, outer * reduced * inner);
  parallel_for(tasks, threads, [&](int64_t t, int) {
    double acc[kRun];
    for (int64_t u = t * units / tasks, end = (t + 1) * units / tasks; u < end; ++u) {
      const int64_t o = u / runs_per_row, j0 = (u % runs_per_row) * kRun, n = std::min(kRun, inner - j0);
      const float* base = x + o * reduced * inner + j0;
      for (int64_t j = 0; j < n; ++j) acc[j] = 0.0;
      for (int64_t r = 0; r < reduced; ++r) {
        const float* row = base + r * inner;
        for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
      }
      float* dst = out + o * inner + j0;
      for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(acc[j] / divisor);
    }
  });
}

}  // namespace blora
