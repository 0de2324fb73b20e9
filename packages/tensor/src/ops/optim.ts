// Fused optimizer updates. These change their tensors in place, which no other op does.
import { runKernel } from '../dispatch.js';
import { isFloatDType } from '../dtype.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** Hyperparameters of one AdamW update (attrs of the `adamwStep` kernel). */
export interface AdamWStepAttrs {
  /** Learning rate (>= 0). */
  lr: number;
  /** Decay of the first moment, in [0, 1). */
  beta1: number;
  /** Decay of the second moment, in [0, 1). */
  beta2: number;
  /** Added to the denominator (> 0). */
  eps: number;
  /** Decoupled weight decay (>= 0): the parameter shrinks by lr * weightDecay * param. */
  weightDecay: number;
  /** 1-based count of updates including this one, for the bias correction. */
  step: number;
}

/**
 * One AdamW update (Loshchilov & Hutter, decoupled weight decay; bias-corrected moments),
 * applied in place to `param`, `m` (first moment) and `v` (second moment):
 *
 *     param *= 1 - lr * weightDecay
 *     m = beta1 * m + (1 - beta1) * grad
 *     v = beta2 * v + (1 - beta2) * grad^2
 *     param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 *
 * Arithmetic is float64 per element; `m` and `v` are float32 or float64 (fp32 moments for
 * half-precision parameters). `param`, `m` and `v` must be contiguous; `grad` may be any view.
 *
 * Kernel `adamwStep`: inputs `[param, grad, m, v]`, no outputs, attrs `AdamWStepAttrs`. It
 * is looked up and called directly rather than through `execute`: `execute` allocates new
 * outputs and announces the op to the autograd tape, whereas this update must overwrite the
 * existing tensors (everything holding them sees the new values) and is never differentiated.
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, attrs: AdamWStepAttrs): void {
  const named: [string, Tensor][] = [['param', param], ['grad', grad], ['m', m], ['v', v]];
  for (const [role, t] of named) {
    if ((t as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`adamwStep: ${role} must be a tensor, got ${String(t)}`);
    t.assertAlive(`adamwStep (${role})`);
    if (t.device !== param.device) throw new Error(`adamwStep: ${role} is on ${t.device} but param is on ${param.device}`);
    if (t.rank !== param.rank || t.shape.some((d, i) => d !== param.shape[i])) {
      throw new RangeError(`adamwStep: ${role} has shape ${formatShape(t.shape)}, param has ${formatShape(param.shape)}`);
    }
    if (!isFloatDType(t.dtype)) throw new TypeError(`adamwStep: ${role} must be a floating-point tensor, got ${t.describe()}`);
  }
  for (const [role, t] of [['m', m], ['v', v]] as const) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new TypeError(`adamwStep: ${role} must be float32 or float64, got ${t.describe()}`);
  }
  for (const [role, t] of [['param', param], ['m', m], ['v', v]] as const) {
    if (!t.isContiguous) throw new Error(`adamwStep: ${role} ${t.describe()} must be contiguous (it is updated in place)`);
  }
  if (m.storage === v.storage || m.storage === param.storage || v.storage === param.storage) {
    throw new Error('adamwStep: param, m and v must not share memory');
  }
  const { lr, beta1, beta2, eps, weightDecay, step } = attrs;
  const check = (name: string, value: number, ok: boolean, expected: string) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok) throw new RangeError(`adamwStep: ${name} must be ${expected}, got ${String(value)}`);
  };
  check('lr', lr, lr >= 0, 'a finite number >= 0');
  check('beta1', beta1, beta1 >= 0 && beta1 < 1, 'in [0, 1)');
  check('beta2', beta2, beta2 >= 0 && beta2 < 1, 'in [0, 1)');
  check('eps', eps, eps > 0, 'a finite number > 0');
  check('weightDecay', weightDecay, weightDecay >= 0, 'a finite number >= 0');
  check('step', step, Number.isInteger(step) && step >= 1, 'an integer >= 1');
  runKernel('adamwStep', param.device, [param, grad, m, v], [], { lr, beta1, beta2, eps, weightDecay, step });
}
