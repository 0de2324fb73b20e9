// What optimizers share: parameter groups with their own hyperparameters, per-parameter
// state, zeroing gradients, and a state dict made of tensors and numbers only (so it can be
// written as safetensors + JSON and restored for an exact resume).
import { clone, formatShape, keep, type Tensor } from '@blora/tensor';
import { noGrad } from '../grad-mode.js';

/** A set of parameters sharing hyperparameters `H` (`lr`, ...). */
export type ParamGroup<H> = H & { params: Tensor[] };

/** Parameters: a flat list (one group with the default hyperparameters) or groups overriding some of them. */
export type ParamsInput<H> = readonly Tensor[] | readonly (Partial<H> & { params: readonly Tensor[] })[];

/**
 * An optimizer's complete state. `tensors` holds per-parameter state named
 * `<index>.<name>` (index in parameter order over all groups), `scalars` the step counts
 * (`<index>.step`), group hyperparameters (`group.<g>.<name>`) and the parameter count
 * (`params`). Both hold only tensors and numbers: write `tensors` with writeSafetensors and
 * `scalars` as JSON.
 */
export interface OptimizerStateDict {
  tensors: Record<string, Tensor>;
  scalars: Record<string, number>;
}

/** Per-parameter state: a step count and named tensors. */
export interface ParamState {
  step: number;
  tensors: Record<string, Tensor>;
}

/** Base class of the optimizers: groups, per-parameter state, zeroGrad and state dicts. */
export abstract class Optimizer<H extends { lr: number }> {
  /** The parameter groups; change `lr` (or other hyperparameters) here between steps. */
  readonly paramGroups: ParamGroup<H>[];
  /** State by parameter, created at its first update. */
  protected readonly state = new Map<Tensor, ParamState>();

  protected constructor(private readonly name: string, params: ParamsInput<H>, defaults: H) {
    if (!Array.isArray(params) || params.length === 0) throw new Error(`${name}: needs a non-empty list of parameters or groups`);
    const grouped = (params as readonly unknown[]).every((p) => (p as { isTensor?: boolean }).isTensor === true)
      ? [{ params: params as readonly Tensor[] }]
      : (params as readonly (Partial<H> & { params: readonly Tensor[] })[]);
    const seen = new Set<Tensor>();
    this.paramGroups = grouped.map((g, gi) => {
      if (!g || !Array.isArray(g.params)) throw new TypeError(`${name}: group ${gi} has no params array`);
      for (const p of g.params) {
        if ((p as { isTensor?: boolean } | null)?.isTensor !== true) throw new TypeError(`${name}: group ${gi} holds a non-tensor parameter`);
        if (seen.has(p)) throw new Error(`${name}: parameter ${p.describe()} appears twice`);
        seen.add(p);
      }
      const group = { ...defaults, ...g, params: [...g.params] } as ParamGroup<H>;
      this.validate(group, gi);
      return group;
    });
  }

  /** Throws when a group's hyperparameters are out of range. */
  protected abstract validate(group: ParamGroup<H>, index: number): void;

  /** Updates every parameter that has a gradient. */
  abstract step(): void;

  /** Names of the numeric hyperparameters saved per group. */
  protected abstract hyperparameterNames(): readonly string[];

  /** Every parameter, in group order (the indices of the state dict). */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Parameters and groups that have a gradient to apply. */
  protected *withGrads(): IterableIterator<[Tensor, Tensor, ParamGroup<H>]> {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        if (!p.grad) continue;
        p.assertAlive(`${this.name}.step`);
        if (p.grad.rank !== p.rank || p.grad.shape.some((d, i) => d !== p.shape[i])) {
          throw new Error(`${this.name}.step: gradient ${p.grad.describe()} does not match parameter ${p.describe()}`);
        }
        yield [p, p.grad, group];
      }
    }
  }

  /** A snapshot of the state: copies of every state tensor plus step counts and hyperparameters. */
  stateDict(): OptimizerStateDict {
    const tensors: Record<string, Tensor> = {};
    const scalars: Record<string, number> = { params: this.params().length };
    noGrad(() => {
      this.params().forEach((p, i) => {
        const s = this.state.get(p);
        if (!s) return;
        scalars[`${i}.step`] = s.step;
        for (const [k, t] of Object.entries(s.tensors)) tensors[`${i}.${k}`] = keep(clone(t));
      });
    });
    this.paramGroups.forEach((g, gi) => {
      for (const h of this.hyperparameterNames()) scalars[`group.${gi}.${h}`] = (g as Record<string, unknown>)[h] as number;
    });
    return { tensors, scalars };
  }

  /**
   * Restores a snapshot from `stateDict` (taken from an optimizer over parameters of the same
   * shapes in the same order). The tensors are copied, so the snapshot stays usable.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const params = this.params();
    const groupOf = new Map<Tensor, ParamGroup<H>>();
    for (const g of this.paramGroups) for (const p of g.params) groupOf.set(p, g);
    const where = `${this.name}.loadStateDict`;
    if (!sd || typeof sd !== 'object' || !sd.tensors || !sd.scalars) throw new TypeError(`${where}: expected { tensors, scalars }`);
    if (sd.scalars.params !== params.length) {
      throw new Error(`${where}: the state is for ${sd.scalars.params} parameters, this optimizer has ${params.length}`);
    }
    const next = new Map<Tensor, ParamState>();
    const known = new Set<string>();
    params.forEach((p, i) => {
      const step = sd.scalars[`${i}.step`];
      if (step === undefined) return;
      if (!Number.isInteger(step) || step < 0) throw new Error(`${where}: invalid step ${step} for parameter ${i}`);
      const tensors: Record<string, Tensor> = {};
      for (const name of this.stateTensorNames(groupOf.get(p)!)) {
        const key = `${i}.${name}`;
        const t = sd.tensors[key];
        if (!t) throw new Error(`${where}: missing tensor '${key}'`);
        if (t.rank !== p.rank || t.shape.some((d, k) => d !== p.shape[k])) {
          throw new Error(`${where}: '${key}' has shape ${formatShape(t.shape)}, parameter ${i} has ${formatShape(p.shape)}`);
        }
        known.add(key);
        tensors[name] = t;
      }
      next.set(p, { step, tensors });
    });
    const extra = Object.keys(sd.tensors).filter((k) => !known.has(k));
    if (extra.length) throw new Error(`${where}: unexpected tensors ${extra.join(', ')}`);
    const hyper = this.hyperparameterNames();
    this.paramGroups.forEach((_, gi) => {
      for (const h of hyper) {
        if (typeof sd.scalars[`group.${gi}.${h}`] !== 'number') throw new Error(`${where}: missing group.${gi}.${h}`);
      }
    });
    // Everything checked: replace the state with copies in the parameters' devices and state dtypes.
    this.disposeState();
    noGrad(() => {
      for (const [p, s] of next) {
        const tensors: Record<string, Tensor> = {};
        for (const [k, t] of Object.entries(s.tensors)) tensors[k] = keep(this.importStateTensor(p, k, t));
        this.state.set(p, { step: s.step, tensors });
      }
    });
    this.paramGroups.forEach((g, gi) => {
      for (const h of hyper) (g as Record<string, unknown>)[h] = sd.scalars[`group.${gi}.${h}`];
    });
  }

  /** Names of the state tensors a parameter of `group` has once updated. */
  protected abstract stateTensorNames(group: ParamGroup<H>): string[];

  /** A fresh copy of a saved state tensor, on `param`'s device and in the state dtype. */
  protected abstract importStateTensor(param: Tensor, name: string, saved: Tensor): Tensor;

  private disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
  }

  /** Frees the optimizer's state tensors (parameters are left alone). */
  dispose(): void {
    this.disposeState();
  }
}
