// Checks gradients computed by the tape against central finite differences in float64.
import { dispose, tensor, type Tensor } from '@blora/tensor';
import { backwardMany } from './engine.js';
import { noGrad } from './grad-mode.js';

/** Options of `gradcheck`. */
export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance (default 1e-3). */
  rtol?: number;
  /** Seed of the random projection of the outputs (default 1). */
  seed?: number;
  /** Throw when a gradient is off (default true); otherwise only report it. */
  raise?: boolean;
}

/** What `gradcheck` found. */
export interface GradcheckResult {
  /** True when every checked gradient element is within tolerance. */
  ok: boolean;
  /** Largest |analytic - numeric| over all checked elements. */
  maxAbsError: number;
  /** Number of gradient elements compared. */
  checked: number;
  /** One line per mismatching element (at most 10). */
  failures: string[];
}

/** The function gradcheck differentiates: tensors in, a tensor (or tensors) out. */
export type Fn = (...inputs: Tensor[]) => Tensor | readonly Tensor[];

/**
 * Compares the gradients of `fn` with respect to every input that requires grad against
 * central differences `(f(x + eps) - f(x - eps)) / 2 eps`. Outputs are reduced to a scalar
 * with fixed random weights, so every output element is checked. Inputs that require grad
 * must be float64 CPU tensors without repeated elements (no expand views: expand inside `fn`);
 * they may be non-contiguous. `fn` must be deterministic. Throws on a mismatch unless
 * `raise` is false. The inputs' `.grad` is left as it was.
 */
export function gradcheck(fn: Fn, inputs: readonly Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-3;
  const checkedInputs = inputs.map((t, i) => (t.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (checkedInputs.length === 0) throw new Error('gradcheck: no input requires grad');
  const offsets = new Map<number, Int32Array>();
  for (const i of checkedInputs) offsets.set(i, perturbableOffsets(inputs[i]!, i));

  const run = (): Tensor[] => {
    const out = fn(...inputs);
    return Array.isArray(out) ? [...out] : [out as Tensor];
  };
  // fn may hand back an input unchanged; that one must survive.
  const release = (outs: readonly Tensor[]) => dispose(outs.filter((o) => !inputs.includes(o)));

  // Analytic: backward with fixed random output weights w, i.e. the gradient of sum(w * f).
  const savedGrads = inputs.map((t) => t.grad);
  for (const t of inputs) t.grad = null;
  const outs = run();
  const weights = outs.map((o, k) => randomWeights(o.numel, (options.seed ?? 1) * 7919 + k));
  const analytic = new Map<number, Float64Array>();
  try {
    const roots = outs.filter((o) => o.requiresGrad);
    const grads = outs.map((o, k) => tensor(weights[k]!, { shape: o.shape, dtype: o.dtype, device: o.device }));
    backwardMany(roots, grads.filter((_, k) => outs[k]!.requiresGrad));
    dispose(grads);
    for (const i of checkedInputs) {
      const g = inputs[i]!.grad;
      analytic.set(i, g ? g.toFloat64Array() : new Float64Array(inputs[i]!.numel));
    }
  } finally {
    release(outs);
    inputs.forEach((t, i) => {
      t.grad?.dispose();
      t.grad = savedGrads[i] ?? null;
    });
  }

  // Numeric: perturb one stored element at a time.
  const objective = (): number =>
    noGrad(() => {
      const o = run();
      let total = 0;
      o.forEach((t, k) => {
        const v = t.toFloat64Array();
        const w = weights[k]!;
        for (let j = 0; j < v.length; j++) total += v[j]! * w[j]!;
      });
      release(o);
      return total;
    });

  const failures: string[] = [];
  let maxAbsError = 0;
  let checked = 0;
  let bad = 0;
  for (const i of checkedInputs) {
    const data = inputs[i]!.storage.handle as Float64Array;
    const a = analytic.get(i)!;
    offsets.get(i)!.forEach((off, j) => {
      const orig = data[off]!;
      data[off] = orig + eps;
      const plus = objective();
      data[off] = orig - eps;
      const minus = objective();
      data[off] = orig;
      const numeric = (plus - minus) / (2 * eps);
      const err = Math.abs(a[j]! - numeric);
      checked++;
      if (!(err <= maxAbsError)) maxAbsError = Number.isNaN(err) ? Number.NaN : Math.max(maxAbsError, err);
      if (!(err <= atol + rtol * Math.abs(numeric))) {
        bad++;
        if (failures.length < 10) failures.push(`input ${i} element ${j}: analytic ${a[j]}, numeric ${numeric}`);
      }
    });
  }
  const result: GradcheckResult = { ok: bad === 0, maxAbsError, checked, failures };
  if (!result.ok && options.raise !== false) {
    throw new Error(`gradcheck: ${bad} of ${checked} gradient elements differ from finite differences ` +
      `(atol ${atol}, rtol ${rtol}):\n  ${failures.join('\n  ')}`);
  }
  return result;
}

/** Storage offsets of the elements of input `i`; throws unless they can be perturbed one by one. */
function perturbableOffsets(t: Tensor, i: number): Int32Array {
  t.assertAlive('gradcheck');
  if (t.dtype !== 'float64') throw new TypeError(`gradcheck: input ${i} must be float64 for accurate differences, got ${t.describe()}`);
  if (t.device !== 'cpu') throw new Error(`gradcheck: input ${i} must be on the cpu, got ${t.describe()}`);
  const out = new Int32Array(t.numel);
  const idx = new Array<number>(t.rank).fill(0);
  for (let j = 0; j < out.length; j++) {
    let off = t.offset;
    for (let d = 0; d < t.rank; d++) off += idx[d]! * t.strides[d]!;
    out[j] = off;
    for (let d = t.rank - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  if (new Set(out).size !== out.length) {
    throw new Error(`gradcheck: input ${i} (${t.describe()}) repeats elements (a broadcast view); pass its base and expand inside fn`);
  }
  return out;
}

/** Seeded weights in [0.5, 1.5) with random signs, so no output element is weighted ~0. */
function randomWeights(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296;
    out[j] = (u < 0.5 ? -1 : 1) * (0.5 + 2 * Math.abs(u - 0.5));
  }
  return out;
}
