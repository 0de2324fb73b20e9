// Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay.
import { add, clone, keep, mul, sub, tidy, zeros, type Tensor } from '@blora/tensor';
import { assignInPlace } from '../inplace.js';
import { noGrad } from '../grad-mode.js';
import { Optimizer, type ParamGroup, type ParamsInput } from './optimizer.js';

/** Hyperparameters of SGD (PyTorch's semantics and defaults). */
export interface SGDOptions {
  /** Learning rate (required). */
  lr: number;
  /** Momentum factor (default 0: plain SGD). */
  momentum: number;
  /** Dampening of the gradient added to the momentum buffer (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov: boolean;
}

/** SGD hyperparameters of one parameter group (nesterov as 0/1). */
export type SGDHyper = { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: number };

/**
 * SGD as PyTorch defines it: d = g + weightDecay * p; with momentum, buf = d at the first
 * step, then buf = momentum * buf + (1 - dampening) * d, and d = buf (or d + momentum * buf
 * with Nesterov); finally p -= lr * d.
 */
export class SGD extends Optimizer<SGDHyper> {
  constructor(params: ParamsInput<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    const toHyper = (o: Partial<SGDOptions>) => {
      const { nesterov, ...rest } = o;
      return nesterov === undefined ? rest : { ...rest, nesterov: nesterov ? 1 : 0 };
    };
    const defaults: SGDHyper = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: 0, ...toHyper(options) } as SGDHyper;
    const groups = (params as readonly unknown[]).every((p) => (p as { isTensor?: boolean }).isTensor === true)
      ? (params as readonly Tensor[])
      : (params as readonly (Partial<SGDOptions> & { params: readonly Tensor[] })[]).map((g) => ({ ...toHyper(g), params: g.params }));
    super('SGD', groups as ParamsInput<SGDHyper>, defaults);
  }

  protected validate(g: ParamGroup<SGDHyper>, i: number): void {
    const bad = (what: string, v: unknown) => new RangeError(`SGD: group ${i}: invalid ${what} ${String(v)}`);
    if (!(g.lr >= 0)) throw bad('lr', g.lr);
    if (!(g.momentum >= 0)) throw bad('momentum', g.momentum);
    if (!(g.dampening >= 0 && g.dampening <= 1)) throw bad('dampening', g.dampening);
    if (!(g.weightDecay >= 0)) throw bad('weightDecay', g.weightDecay);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new RangeError(`SGD: group ${i}: Nesterov momentum needs momentum > 0 and dampening 0`);
    }
  }

  protected hyperparameterNames(): readonly string[] {
    return ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov'];
  }

  protected stateTensorNames(group: ParamGroup<SGDHyper>): string[] {
    return group.momentum > 0 ? ['momentum_buffer'] : [];
  }

  protected importStateTensor(param: Tensor, _name: string, saved: Tensor): Tensor {
    const t = zeros(param.shape, { dtype: param.dtype, device: param.device });
    assignInPlace(t, saved);
    return t;
  }

  /** Applies one update to every parameter with a gradient. */
  step(): void {
    noGrad(() => {
      for (const [p, g, group] of this.withGrads()) {
        tidy(() => {
          let d = group.weightDecay ? add(g, mul(p, group.weightDecay)) : g;
          let s = this.state.get(p);
          if (!s) this.state.set(p, (s = { step: 0, tensors: {} }));
          s.step += 1;
          if (group.momentum > 0) {
            const old = s.tensors.momentum_buffer;
            const buf = old ? add(mul(old, group.momentum), mul(d, 1 - group.dampening)) : clone(d);
            s.tensors.momentum_buffer = keep(buf);
            old?.dispose();
            d = group.nesterov ? add(d, mul(buf, group.momentum)) : buf;
          }
          assignInPlace(p, sub(p, mul(d, group.lr)));
        });
      }
    });
  }
}
