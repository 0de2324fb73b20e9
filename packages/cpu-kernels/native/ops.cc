#include "ops.h"

#include <algorithm>
#include <cstring>

#include "thread_pool.h"

namespace blora {

namespace {

// Elements below which a memory-bound loop stays on one thread: waking a worker costs
// microseconds, and on a machine shared with other work a descheduled worker can hold a small
// op up for far longer than the op takes alone.
constexpr int64_t kParallelMinElements = int64_t{1} << 18;
// Tasks per thread when parallel: several, so a slow thread holds up little.
constexpr int64_t kTasksPerThread = 4;

/** Splits [0, n) into `parts` ranges with boundaries on multiples of `align`; returns range `t`. */
void split_range(int64_t n, int64_t parts, int64_t t, int64_t align, int64_t* begin, int64_t* end) {
  const int64_t units = (n + align - 1) / align;
  *begin = std::min(n, t * units / parts * align);
  *end = std::min(n, (t + 1) * units / parts * align);
}

/** Threads worth using for `elements` of memory-bound work. */
int threads_for(int threads, int64_t elements) { return elements >= kParallelMinElements ? threads : 1; }

/** Tasks to split `units` into for `threads` threads. */
int64_t tasks_for(int threads, int64_t units) { return std::max<int64_t>(1, std::min<int64_t>(units, kTasksPerThread * threads)); }

}  // namespace

void binary_f32(const KernelTable& kt, int threads, BinaryOp op, const float* x, int64_t xs, const float* y,
                int64_t ys, float* out, int64_t n) {
  threads = threads_for(threads, n);
  const int64_t tasks = threads > 1 ? tasks_for(threads, n / 16) : 1;
  parallel_for(tasks, threads, [&](int64_t t, int) {
    int64_t b, e;
    split_range(n, tasks, t, 16, &b, &e);
    if (e > b) kt.binary(op, x + b * xs, xs, y + b * ys, ys, out + b, e - b);
  });
}

void activation_f32(const KernelTable& kt, int threads, ActivationOp op, const float* src, float* dst, int64_t n) {
  // exp makes this compute-bound: worth a second thread sooner than a memory-bound loop.
  threads = n >= kParallelMinElements / 4 ? threads : 1;
  const int64_t tasks = threads > 1 ? tasks_for(threads, n / 16) : 1;
  parallel_for(tasks, threads, [&](int64_t t, int) {
    int64_t b, e;
    split_range(n, tasks, t, 16, &b, &e);
    if (e > b) kt.activation(op, src + b, dst + b, e - b);
  });
}

void softmax_f32(const KernelTable& kt, int threads, const float* src, float* dst, int64_t rows, int64_t n, bool log) {
  threads = threads_for(threads, rows * n);
  const int64_t parts = std::min<int64_t>(rows, 4 * threads);
  parallel_for(parts, threads, [&](int64_t t, int) {
    int64_t b, e;
    split_range(rows, parts, t, 1, &b, &e);
    if (e > b) kt.softmax_rows(src + b * n, dst + b * n, e - b, n, log);
  });
}

void avg_pool_f32(const KernelTable& kt, int threads, const float* src, float* dst, int64_t outputs, int64_t k) {
  threads = threads_for(threads, outputs * k);
  const int64_t tasks = threads > 1 ? tasks_for(threads, outputs / 16) : 1;
  parallel_for(tasks, threads, [&](int64_t t, int) {
    int64_t b, e;
    split_range(outputs, tasks, t, 16, &b, &e);
    if (e > b) kt.avg_pool(src + b * k, dst + b, e - b, k);
  });
}

void repeat_interleave_f32(int threads, const float* src, float* dst, int64_t blocks, int64_t inner, int64_t repeats) {
  threads = threads_for(threads, blocks * inner * repeats);
  const int64_t tasks = threads > 1 ? tasks_for(threads, blocks / 16) : 1;
  parallel_for(tasks, threads, [&](int64_t t, int) {
    int64_t b0, b1;
    split_range(blocks, tasks, t, 16, &b0, &b1);
    float* d = dst + b0 * inner * repeats;
    if (inner == 1 && repeats == 2) {
      for (int64_t b = b0; b < b1; ++b, d += 2) d[0] = d[1] = src[b];
      return;
    }
    if (inner == 1) {
      for (int64_t b = b0; b < b1; ++b, d += repeats) std::fill(d, d + repeats, src[b]);
      return;
    }
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t r = 0; r < repeats; ++r, d += inner) std::memcpy(d, src + b * inner, sizeof(float) * inner);
    }
  });
}

}  // namespace blora
