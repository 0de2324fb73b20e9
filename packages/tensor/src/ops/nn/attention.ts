// Scaled dot-product attention with grouped-query heads, an end-aligned causal mask and a
// sliding window, fused so that the [T, S] probability matrix is never stored: the forward
// keeps the per-row log-sum-exp and the backward recomputes probabilities from it.
import { execute } from '../../dispatch.js';
import type { Tensor } from '../../tensor.js';
import { assertDTypeIs, assertFiniteNumber, assertFloatTensor, assertShapeIs, statsDTypeOf } from './common.js';

/** Options of `attention`. */
export interface AttentionOptions {
  /** Query t sees only keys s <= t + S - T (the mask is aligned to the end, as with a KV cache). Default false. */
  causal?: boolean;
  /** Sliding window (Mistral): query t sees only keys s > t + S - T - window. Default none (null). */
  window?: number | null;
  /** Multiplies q . k; default 1 / sqrt(D). */
  scale?: number;
  /**
   * An int32 tensor of one element on q's device: only the first `keyLength` keys and values take
   * part, and the mask aligns to them (S becomes keyLength). Read when the kernel runs, so a
   * captured decode step (`captureGraph`) serves every length of the buffers k and v hold. Values
   * beyond S are clamped to S. Forward only: q, k and v must not require a gradient.
   */
  keyLength?: Tensor;
}

/** Attrs recorded by the attention ops. */
interface AttentionAttrs {
  causal: boolean;
  window: number | null;
  scale: number;
}

function checkOptions(op: string, options: AttentionOptions, d: number): AttentionAttrs {
  const causal = options.causal ?? false;
  if (typeof causal !== 'boolean') throw new TypeError(`${op}: causal must be a boolean, got ${String(causal)}`);
  const window = options.window ?? null;
  if (window !== null && (!Number.isInteger(window) || window < 1)) {
    throw new RangeError(`${op}: window must be a positive integer or null, got ${String(window)}`);
  }
  const scale = options.scale ?? (d > 0 ? 1 / Math.sqrt(d) : 1);
  assertFiniteNumber(op, 'scale', scale);
  return { causal, window, scale };
}

/** Checks q, k, v; returns [B, H, T, D, Hkv, S, Dv]. */
function checkQkv(op: string, q: Tensor, k: Tensor, v: Tensor): number[] {
  assertFloatTensor(op, 'q', q);
  assertFloatTensor(op, 'k', k);
  assertFloatTensor(op, 'v', v);
  for (const [role, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.rank !== 4) throw new RangeError(`${op}: ${role} must have rank 4, got ${t.describe()} (q [B, H, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv])`);
  }
  assertDTypeIs(op, 'k', k, q.dtype);
  assertDTypeIs(op, 'v', v, q.dtype);
  const [b, h, t, d] = q.shape as [number, number, number, number];
  const [, hkv, s] = k.shape as [number, number, number, number];
  const dv = v.shape[3]!;
  if (k.shape[0] !== b || k.shape[3] !== d) {
    throw new RangeError(`${op}: k must have shape [${b}, Hkv, S, ${d}] to match q ${q.describe()}, got ${k.describe()}`);
  }
  if (v.shape[0] !== b || v.shape[1] !== hkv || v.shape[2] !== s) {
    throw new RangeError(`${op}: v must have shape [${b}, ${hkv}, ${s}, Dv] to match k ${k.describe()}, got ${v.describe()}`);
  }
  if (hkv < 1 || h % hkv !== 0) {
    throw new RangeError(`${op}: the number of query heads (${h}) must be a multiple of the number of key/value heads (${hkv})`);
  }
  return [b, h, t, d, hkv, s, dv];
}

/**
 * Softmax attention `o = softmax(scale * q k^T + mask) v` for `q` `[B, H, T, D]`,
 * `k` `[B, Hkv, S, D]`, `v` `[B, Hkv, S, Dv]` (one float dtype, any strides). Grouped-query:
 * `H` must be a multiple of `Hkv` and query head h uses key/value head `floor(h / (H / Hkv))`.
 * With `causal`, query t sees keys `s <= t + S - T`; with `window`, keys `s > t + S - T - window`.
 * A query that sees no key gets a zero output.
 *
 * Op name `attention`, inputs `[q, k, v]` (and `keyLength` when given), attrs `{causal, window, scale}`, outputs
 * `[o [B, H, T, Dv], lse [B, H, T]]` (`lse` of dtype `statsDTypeOf(q.dtype)`, -Infinity for
 * queries that see no key). Returns `o`.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const op = 'attention';
  const [b, h, t, d, , , dv] = checkQkv(op, q, k, v) as [number, number, number, number, number, number, number];
  const attrs = checkOptions(op, options, d);
  const inputs = [q, k, v];
  const length = options.keyLength;
  if (length !== undefined) {
    if ((length as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`${op}: keyLength must be a tensor, got ${String(length)}`);
    length.assertAlive(op);
    if (length.dtype !== 'int32' || length.numel !== 1 || length.device !== q.device) {
      throw new TypeError(`${op}: keyLength must be an int32 tensor of one element on ${q.device}, got ${length.describe()}`);
    }
    if (q.requiresGrad || k.requiresGrad || v.requiresGrad) throw new Error(`${op}: keyLength is for inference; q, k and v must not require a gradient`);
    inputs.push(length);
  }
  const [o] = execute(op, inputs, [
    { shape: [b, h, t, dv], dtype: q.dtype },
    { shape: [b, h, t], dtype: statsDTypeOf(q.dtype) },
  ], { ...attrs });
  return o!;
}

/**
 * Gradients of `attention` from the output gradient `dO` and the saved `o` and `lse`
 * (probabilities are recomputed, not stored). Op name `attentionBackward`, inputs
 * `[dO, q, k, v, o, lse]`, attrs `{causal, window, scale}` (pass the forward's options),
 * outputs `[dq, dk, dv]` with the shapes and dtype of `q`, `k`, `v`.
 */
export function attentionBackward(
  dO: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, options: AttentionOptions = {},
): [Tensor, Tensor, Tensor] {
  const op = 'attentionBackward';
  const [b, h, t, d, , , dv] = checkQkv(op, q, k, v) as [number, number, number, number, number, number, number];
  const attrs = checkOptions(op, options, d);
  for (const [role, x] of [['dO', dO], ['o', o]] as const) {
    assertFloatTensor(op, role, x);
    assertDTypeIs(op, role, x, q.dtype);
    assertShapeIs(op, role, x, [b, h, t, dv]);
  }
  assertFloatTensor(op, 'lse', lse);
  assertDTypeIs(op, 'lse', lse, statsDTypeOf(q.dtype));
  assertShapeIs(op, 'lse', lse, [b, h, t]);
  const [dq, dk, dvOut] = execute(op, [dO, q, k, v, o, lse], [
    { shape: q.shape, dtype: q.dtype },
    { shape: k.shape, dtype: k.dtype },
    { shape: v.shape, dtype: v.dtype },
  ], { ...attrs });
  return [dq!, dk!, dvOut!];
}
