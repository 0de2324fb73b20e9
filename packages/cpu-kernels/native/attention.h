// Fused scaled dot-product attention on float32 (forward and backward), with grouped-query
// heads, an end-aligned causal mask and a sliding window. One query row at a time: its score
// row is a matrix-vector product with the keys it may see, so memory stays linear in the
// sequence lengths; the backward recomputes the probabilities from the saved log-sum-exp.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace blora {

/** A [batch, heads, rows, cols] operand: element (b, h, t, c) at data[b * sb + h * sh + t * st + c]. */
struct HeadMajor {
  float* data;
  int64_t sb, sh, st;

  float* row(int64_t b, int64_t h, int64_t t) const { return data + b * sb + h * sh + t * st; }
};

/** Sizes and options of one attention call (q [B, H, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv]). */
struct AttentionShape {
  int64_t batch, heads, queries, depth, kv_heads, keys, value_depth;
  float scale;
  bool causal;
  int64_t window;  // 0: no sliding window

  /** Keys [lo, hi) that query t may attend (empty when hi <= lo). */
  void key_range(int64_t t, int64_t* lo, int64_t* hi) const {
    const int64_t last = t + keys - queries;  // the key aligned with this query
    *hi = causal ? (last + 1 < keys ? last + 1 : keys) : keys;
    *lo = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
  }
};

/**
 * o = softmax(scale q k^T + mask) v and lse = the log-sum-exp of each masked score row
 * (lse: data[b * sb + h * sh + t * st]). A query that sees no key gets zeros and lse -inf.
 * Returns false when scratch memory could not be allocated.
 */
bool attention_f32(const KernelTable& kt, int threads, const AttentionShape& s, const HeadMajor& q, const HeadMajor& k,
                   const HeadMajor& v, const HeadMajor& o, const HeadMajor& lse);

/**
 * Gradients dq, dk, dv of attention_f32 from dO, the inputs and the saved o and lse.
 * Returns false when scratch memory could not be allocated.
 */
bool attention_backward_f32(const KernelTable& kt, int threads, const AttentionShape& s, const HeadMajor& dout,
                            const HeadMajor& q, const HeadMajor& k, const HeadMajor& v, const HeadMajor& o,
                            const HeadMajor& lse, const HeadMajor& dq, const HeadMajor& dk, const HeadMajor& dv);

}  // namespace blora
