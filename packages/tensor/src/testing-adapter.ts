/**
 * Float64 references of the fused adapter products (`poolLinear`, `repeatLinear`), written as
 * plain loops over the tensors' logical values, for the tests of every backend.
 *
 * @module
 */
import { Tensor } from './tensor.js';

/** Rows of a `[..., c]` shape. */
function rowCount(shape: readonly number[]): number {
  return shape.slice(0, -1).reduce((p, d) => p * d, 1);
}

/** poolLinear: out[m, n] = Σ_k ((1/λ) Σ_e x[m, kλ+e]) · w[n, k], for x [..., kλ] and w [n, k]. */
export function poolLinearReference(x: Tensor, w: Tensor, lambda: number): Float64Array {
  const xv = x.toFloat64Array();
  const wv = w.toFloat64Array();
  const [n, k] = w.shape as [number, number];
  const m = rowCount(x.shape);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let c = 0; c < k; c++) {
        let run = 0;
        for (let e = 0; e < lambda; e++) run += xv[i * k * lambda + c * lambda + e]!;
        acc += (run / lambda) * wv[j * k + c]!;
      }
      out[i * n + j] = acc;
    }
  }
  return out;
}

/**
 * repeatLinear: out[m, jλ+e] = base[m, jλ+e] + s · Σ_r h[m, r] · w[j, r], for h [..., r] and
 * w [n/λ, r]; a missing base counts as zeros.
 */
export function repeatLinearReference(h: Tensor, w: Tensor, lambda: number, scale = 1, base?: Tensor): Float64Array {
  const hv = h.toFloat64Array();
  const wv = w.toFloat64Array();
  const bv = base?.toFloat64Array();
  const [nr, r] = w.shape as [number, number];
  const m = rowCount(h.shape);
  const out = new Float64Array(m * nr * lambda);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < nr; j++) {
      let acc = 0;
      for (let c = 0; c < r; c++) acc += hv[i * r + c]! * wv[j * r + c]!;
      for (let e = 0; e < lambda; e++) {
        const p = i * nr * lambda + j * lambda + e;
        out[p] = (bv ? bv[p]! : 0) + scale * acc;
      }
    }
  }
  return out;
}
