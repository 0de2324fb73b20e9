// AdamW with decoupled weight decay and fp32 moments, updated by the fused `adamwStep` kernel.
import { adamwStep, zeros, keep, type DType, type Tensor } from '@blora/tensor';
import { assignInPlace } from '../inplace.js';
import { noGrad } from '../grad-mode.js';
import { Optimizer, type ParamGroup, type ParamsInput } from './optimizer.js';

/** Hyperparameters of AdamW (PyTorch's defaults). */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Moment decay rates (default [0.9, 0.999]). */
  betas: readonly [number, number];
  /** Denominator term (default 1e-8). */
  eps: number;
  /** Decoupled weight decay (default 0.01). */
  weightDecay: number;
}

/** AdamW's hyperparameters as stored per group (the betas split, so each is a plain number). */
/** AdamW hyperparameters of one parameter group. */
export type AdamWHyper = { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };

/** The moments' dtype: float32 (fp32 states) for every parameter dtype except float64. */
function momentDType(param: Tensor): DType {
  return param.dtype === 'float64' ? 'float64' : 'float32';
}

/**
 * AdamW (Loshchilov & Hutter): Adam with bias-corrected moments and weight decay applied
 * directly to the parameters rather than through the gradient. Moments are kept in float32
 * whatever the parameter dtype (float64 for float64 parameters). Each update runs the
 * in-place `adamwStep` kernel of the parameter's device.
 */
export class AdamW extends Optimizer<AdamWHyper> {
  constructor(params: ParamsInput<AdamWOptions>, options: Partial<AdamWOptions> = {}) {
    const defaults = { lr: 1e-3, betas: [0.9, 0.999] as const, eps: 1e-8, weightDecay: 0.01, ...options };
    const flatten = (g: Partial<AdamWOptions>) => {
      const { betas, ...rest } = g;
      return betas ? { ...rest, beta1: betas[0], beta2: betas[1] } : rest;
    };
    const groups = (params as readonly unknown[]).every((p) => (p as { isTensor?: boolean }).isTensor === true)
      ? (params as readonly Tensor[])
      : (params as readonly (Partial<AdamWOptions> & { params: readonly Tensor[] })[]).map((g) => ({ ...flatten(g), params: g.params }));
    const { betas, ...base } = defaults;
    super('AdamW', groups, { ...base, beta1: betas[0], beta2: betas[1] });
  }

  protected validate(g: ParamGroup<AdamWHyper>, i: number): void {
    const bad = (what: string, v: unknown) => new RangeError(`AdamW: group ${i}: invalid ${what} ${String(v)}`);
    if (!(g.lr >= 0)) throw bad('lr', g.lr);
    if (!(g.beta1 >= 0 && g.beta1 < 1)) throw bad('beta1', g.beta1);
    if (!(g.beta2 >= 0 && g.beta2 < 1)) throw bad('beta2', g.beta2);
    if (!(g.eps > 0)) throw bad('eps', g.eps);
    if (!(g.weightDecay >= 0)) throw bad('weightDecay', g.weightDecay);
  }

  protected hyperparameterNames(): readonly string[] {
    return ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'];
  }

  protected stateTensorNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected importStateTensor(param: Tensor, _name: string, saved: Tensor): Tensor {
    const t = zeros(param.shape, { dtype: momentDType(param), device: param.device });
    assignInPlace(t, saved);
    return t;
  }

  /** Applies one update to every parameter with a gradient. */
  step(): void {
    noGrad(() => {
      for (const [p, g, group] of this.withGrads()) {
        let s = this.state.get(p);
        if (!s) {
          const opts = { dtype: momentDType(p), device: p.device };
          s = { step: 0, tensors: { exp_avg: keep(zeros(p.shape, opts)), exp_avg_sq: keep(zeros(p.shape, opts)) } };
          this.state.set(p, s);
        }
        s.step += 1;
        adamwStep(p, g, s.tensors.exp_avg!, s.tensors.exp_avg_sq!, {
          lr: group.lr, beta1: group.beta1, beta2: group.beta2, eps: group.eps, weightDecay: group.weightDecay, step: s.step,
        });
      }
    });
  }
}
