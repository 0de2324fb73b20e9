// Gradient-norm clipping.
import { abs, add, cast, keep, max, maximum, mul, pow, sqrt, square, sum, tidy, type Tensor } from '@blora/tensor';
import { assignInPlace } from '../inplace.js';
import { noGrad } from '../grad-mode.js';

/** Options of `clipGradNorm`. */
export interface ClipOptions {
  /** Which norm: 2 (default), any p >= 1, or Infinity (the largest magnitude). */
  normType?: number;
  /** Throw when the total norm is NaN or infinite instead of returning it (default false). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients of `params` in place so that their total norm (the norm of all
 * gradients concatenated) is at most `maxNorm`, and returns the total norm measured before
 * clipping. Gradients are only scaled when the norm exceeds `maxNorm`, by
 * maxNorm / (norm + 1e-6) as PyTorch does. A NaN or infinite norm leaves the gradients
 * untouched (scaling would turn them all into NaN); check the returned norm and skip the step.
 * The norm is accumulated in float32 (float64 for float64 gradients). Parameters without a
 * gradient are skipped.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, options: ClipOptions = {}): number {
  const p = options.normType ?? 2;
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  if (!(p >= 1)) throw new RangeError(`clipGradNorm: normType must be >= 1 or Infinity, got ${p}`);
  const grads = params.map((t) => t.grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return 0;
  const total = noGrad(() => tidy(() => {
    // One device-side reduction per gradient and a single read-back for the total.
    const parts = grads.map((g) => {
      const x = g.dtype === 'float64' || g.dtype === 'float32' ? g : cast(g, 'float32');
      if (p === Infinity) return cast(max(abs(x)), 'float64');
      return cast(p === 2 ? sum(square(x)) : sum(pow(abs(x), p)), 'float64');
    });
    let acc = parts[0]!;
    for (let i = 1; i < parts.length; i++) acc = p === Infinity ? maximum(acc, parts[i]!) : add(acc, parts[i]!);
    return p === Infinity ? acc.item() : p === 2 ? sqrt(acc).item() : acc.item() ** (1 / p);
  }));
  if (!Number.isFinite(total) && options.errorIfNonfinite) {
    throw new Error(`clipGradNorm: the total gradient norm is ${total}`);
  }
  const coef = maxNorm / (total + 1e-6);
  if (Number.isFinite(total) && coef < 1) {
    noGrad(() => {
      for (const t of params) {
        const g = t.grad;
        if (!g) continue;
        // Gradients from backward own dense memory and are scaled in place; others are replaced.
        if (g.isContiguous && g.offset === 0) tidy(() => assignInPlace(g, mul(g, coef)));
        else {
          t.grad = keep(mul(g, coef));
          g.dispose();
        }
      }
    });
  }
  return total;
}

