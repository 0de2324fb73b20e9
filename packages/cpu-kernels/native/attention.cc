// Attention forward and backward, one query row at a time (see attention.h). Every step of a
// row is one of the table's vector loops: the score row is a matrix-vector product with the
// visible keys, the output a product of the probabilities with the visible values, and the
// backward's key and value gradients rank-1 updates of the visible rows.
#include "attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "aligned_buffer.h"
#include "thread_pool.h"

namespace blora {

namespace {

// Multiply-adds below which a call runs on one thread.
constexpr int64_t kParallelMinWork = int64_t{1} << 16;
// Query rows per forward task (tasks are claimed dynamically, so causal rows of unequal cost balance).
constexpr int64_t kRowsPerTask = 16;

thread_local AlignedBuffer t_probs;  // one row of scores / probabilities
thread_local AlignedBuffer t_grads;  // one row of score gradients

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/** Forward of query rows [t0, t1) of head (b, h); `p` holds at least `keys` floats. */
void forward_rows(const KernelTable& kt, const AttentionShape& s, const HeadMajor& q, const HeadMajor& k,
                  const HeadMajor& v, const HeadMajor& o, const HeadMajor& lse, int64_t b, int64_t h, int64_t t0,
                  int64_t t1, float* p) {
  const int64_t kv_head = h / (s.heads / s.kv_heads);
  const float* keys = k.row(b, kv_head, 0);
  const float* values = v.row(b, kv_head, 0);
  for (int64_t t = t0; t < t1; ++t) {
    float* out = o.row(b, h, t);
    int64_t lo, hi;
    s.key_range(t, &lo, &hi);
    const int64_t n = hi - lo;
    if (n <= 0) {
      std::memset(out, 0, sizeof(float) * s.value_depth);
      *lse.row(b, h, t) = -std::numeric_limits<float>::infinity();
      continue;
    }
    kt.gemv_rows(n, s.depth, keys + lo * k.st, k.st, q.row(b, h, t), p);
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      p[j] *= s.scale;
      if (p[j] > max) max = p[j];
    }
    for (int64_t j = 0; j < n; ++j) p[j] -= max;
    kt.exp(p, p, n);
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += p[j];
    kt.gemv_cols(s.value_depth, n, values + lo * v.st, v.st, p, out);
    const float total = static_cast<float>(sum);
    for (int64_t c = 0; c < s.value_depth; ++c) out[c] /= total;
    *lse.row(b, h, t) = static_cast<float>(max + std::log(sum));
  }
}

/**
 * Backward of every query head that shares key/value head (b, kv_head): writes their dq rows
 * and the whole dk, dv of that key/value head. `p` and `g` hold at least `keys` floats.
 */
void backward_group(const KernelTable& kt, const AttentionShape& s, const HeadMajor& dout, const HeadMajor& q,
                    const HeadMajor& k, const HeadMajor& v, const HeadMajor& o, const HeadMajor& lse,
                    const HeadMajor& dq, const HeadMajor& dk, const HeadMajor& dv, int64_t b, int64_t kv_head, float* p,
                    float* g) {
  const int64_t group = s.heads / s.kv_heads;
  const float* keys = k.row(b, kv_head, 0);
  const float* values = v.row(b, kv_head, 0);
  float* dkeys = dk.row(b, kv_head, 0);
  float* dvalues = dv.row(b, kv_head, 0);
  for (int64_t j = 0; j < s.keys; ++j) {
    std::memset(dkeys + j * dk.st, 0, sizeof(float) * s.depth);
    std::memset(dvalues + j * dv.st, 0, sizeof(float) * s.value_depth);
  }
  for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
    for (int64_t t = 0; t < s.queries; ++t) {
      float* dq_row = dq.row(b, h, t);
      int64_t lo, hi;
      s.key_range(t, &lo, &hi);
      const int64_t n = hi - lo;
      if (n <= 0) {
        std::memset(dq_row, 0, sizeof(float) * s.depth);
        continue;
      }
      const float* q_row = q.row(b, h, t);
      const float* dout_row = dout.row(b, h, t);
      const float row_lse = *lse.row(b, h, t);
      float delta;  // dO_t . o_t
      kt.gemv_rows(1, s.value_depth, dout_row, 0, o.row(b, h, t), &delta);
      // p_j = exp(scale q . k_j - lse): the forward's probabilities.
      kt.gemv_rows(n, s.depth, keys + lo * k.st, k.st, q_row, p);
      for (int64_t j = 0; j < n; ++j) p[j] = p[j] * s.scale - row_lse;
      kt.exp(p, p, n);
      // g_j = dS_j = p_j (dO_t . v_j - delta) scale.
      kt.gemv_rows(n, s.value_depth, values + lo * v.st, v.st, dout_row, g);
      for (int64_t j = 0; j < n; ++j) g[j] = p[j] * (g[j] - delta) * s.scale;
      kt.axpy_rows(n, s.value_depth, p, dout_row, dvalues + lo * dv.st, dv.st);
      if (s.depth > 0) kt.gemv_cols(s.depth, n, keys + lo * k.st, k.st, g, dq_row);
      kt.axpy_rows(n, s.depth, g, q_row, dkeys + lo * dk.st, dk.st);
    }
  }
}

}  // namespace

bool attention_f32(const KernelTable& kt, int threads, const AttentionShape& s, const HeadMajor& q, const HeadMajor& k,
                   const HeadMajor& v, const HeadMajor& o, const HeadMajor& lse) {
  const int64_t heads = s.batch * s.heads;
  if (heads == 0 || s.queries == 0) return true;
  if (heads * s.queries * s.keys * (s.depth + s.value_depth) < kParallelMinWork) threads = 1;
  const int64_t chunks = ceil_div(s.queries, kRowsPerTask);
  std::atomic<bool> ok{true};
  parallel_for(heads * chunks, threads, [&](int64_t task, int) {
    float* p = t_probs.reserve(s.keys);
    if (!p) {
      ok.store(false);
      return;
    }
    const int64_t head = task / chunks, chunk = task % chunks;
    const int64_t t0 = chunk * kRowsPerTask, t1 = std::min(s.queries, t0 + kRowsPerTask);
    forward_rows(kt, s, q, k, v, o, lse, head / s.heads, head % s.heads, t0, t1, p);
  });
  return ok.load();
}

bool attention_backward_f32(const KernelTable& kt, int threads, const AttentionShape& s, const HeadMajor& dout,
                            const HeadMajor& q, const HeadMajor& k, const HeadMajor& v, const HeadMajor& o,
                            const HeadMajor& lse, const HeadMajor& dq, const HeadMajor& dk, const HeadMajor& dv) {
  const int64_t groups = s.batch * s.kv_heads;
  if (groups == 0) return true;
  if (s.batch * s.heads * s.queries * s.keys * 2 * (s.depth + s.value_depth) < kParallelMinWork) threads = 1;
  std::atomic<bool> ok{true};
  // One task per key/value head: it alone writes that head's dk and dv, so no two tasks collide.
  parallel_for(groups, threads, [&](int64_t task, int) {
    float* p = t_probs.reserve(s.keys);
    float* g = t_grads.reserve(s.keys);
    if (!p || !g) {
      ok.store(false);
      return;
    }
    backward_group(kt, s, dout, q, k, v, o, lse, dq, dk, dv, task / s.kv_heads, task % s.kv_heads, p, g);
  });
  return ok.load();
}

}  // namespace blora
