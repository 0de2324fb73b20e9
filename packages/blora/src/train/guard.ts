// Finding the tensor to blame when a loss or a gradient norm is not finite.
import { cast, isFinite as isFiniteOp, min, tidy, type Tensor } from '@blora/tensor';
import { noGrad } from '@blora/autograd';

/** True when every element of `t` is finite (one device-side reduction, one read-back). */
export function allFinite(t: Tensor): boolean {
  if (t.numel === 0) return true;
  return noGrad(() => tidy(() => min(cast(isFiniteOp(t), 'float32')).item() === 1));
}

/** The name of the first tensor (in list order) holding a NaN or an infinity, or null. */
export function firstNonFinite(named: readonly (readonly [string, Tensor])[]): string | null {
  for (const [name, t] of named) if (!allFinite(t)) return name;
  return null;
}

/** The name of the first parameter whose gradient holds a NaN or an infinity, or null. */
export function firstNonFiniteGradient(named: readonly (readonly [string, Tensor])[]): string | null {
  for (const [name, t] of named) if (t.grad && !allFinite(t.grad)) return name;
  return null;
}

/** A step whose loss or gradient was not finite, with the policy 'stop'. */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';

  constructor(
    message: string,
    /** The step (1-based) that failed. */
    readonly step: number,
    /** The parameter blamed, or null when every parameter was finite. */
    readonly tensorName: string | null,
  ) {
    super(message);
  }
}
