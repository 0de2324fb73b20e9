// The base of every layer: named parameters, buffers and submodules, train/eval mode, and
// state dicts for saving and loading.
import { formatShape, type Tensor } from '@blora/tensor';
import { assignInPlace } from '../inplace.js';

/** Parameters and buffers by dotted name (`layers.0.weight`), as saved in checkpoints. */
export type StateDict = Record<string, Tensor>;

/** What `loadStateDict` did not match (only ever non-empty when `strict` is false). */
export interface LoadResult {
  /** Names the module has but the state dict lacks. */
  missing: string[];
  /** Names in the state dict the module does not have. */
  unexpected: string[];
}

const NAME = /^[A-Za-z0-9_]+$/;

/**
 * A layer or a model. Subclasses register their tensors and children in the constructor
 * with `registerParameter`, `registerBuffer` and `registerModule`; names become the keys of
 * the state dict (dotted by nesting). Parameters require grad; buffers do not.
 */
export class Module {
  /** Training mode (true) or evaluation mode (false); see `train` / `eval`. */
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly modules = new Map<string, Module>();

  /** Adds a trainable tensor under `name` and marks it as requiring grad. Returns it. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.claim(name, 'parameter');
    t.requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  /** Adds a non-trainable tensor that belongs to the state (saved and loaded). Returns it. */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.claim(name, 'buffer');
    this.buffers.set(name, t);
    return t;
  }

  /** Adds a child module under `name`. Returns it. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.claim(name, 'module');
    if (!(m instanceof Module)) throw new TypeError(`registerModule: '${name}' is not a Module`);
    this.modules.set(name, m);
    return m;
  }

  /**
   * Swaps the child registered as `name` for `m`, keeping its name and position. Fields of
   * this module (and entries of array fields) that held the old child are pointed at `m`
   * as well, so forward code that calls children through fields uses the replacement.
   * Returns the old child.
   */
  replaceModule(name: string, m: Module): Module {
    const old = this.modules.get(name);
    if (!old) throw new Error(`${this.constructor.name}.replaceModule: no child module named '${name}'`);
    if (!(m instanceof Module)) throw new TypeError(`${this.constructor.name}.replaceModule: '${name}' replacement is not a Module`);
    this.modules.set(name, m);
    const fields = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value === old) fields[key] = m;
      else if (Array.isArray(value)) value.forEach((v, i) => { if (v === old) value[i] = m; });
    }
    return old;
  }

  private claim(name: string, kind: string): void {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new Error(`${this.constructor.name}: invalid ${kind} name '${String(name)}' (use letters, digits and _)`);
    }
    if (this.params.has(name) || this.buffers.has(name) || this.modules.has(name)) {
      throw new Error(`${this.constructor.name}: the name '${name}' is already registered`);
    }
  }

  /** Direct children, by name. */
  namedChildren(): [string, Module][] {
    return [...this.modules];
  }

  /** This module ('' ) and every descendant, by dotted name, parents first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this.modules) out.push(...m.namedModules(join(prefix, name)));
    return out;
  }

  /** Every parameter of this module and its descendants, by dotted name. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.params) out.push([join(prefix, name), t]);
    for (const [name, m] of this.modules) out.push(...m.namedParameters(join(prefix, name)));
    return out;
  }

  /** Every parameter, in `namedParameters` order (the order optimizers and their state use). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every buffer of this module and its descendants, by dotted name. */
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.buffers) out.push([join(prefix, name), t]);
    for (const [name, m] of this.modules) out.push(...m.namedBuffers(join(prefix, name)));
    return out;
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.numel, 0);
  }

  /** Sets training mode on this module and every descendant. Returns `this`. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off): `train(false)`. Returns `this`. */
  eval(): this {
    return this.train(false);
  }

  /** Freezes (false) or unfreezes (true) every parameter. Returns `this`. */
  setRequiresGrad(flag: boolean): this {
    for (const t of this.parameters()) t.requiresGrad = flag;
    return this;
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  /**
   * Parameters and buffers by dotted name. The tensors are the module's own (not copies):
   * save them before changing the model further.
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [name, t] of this.namedParameters()) out[name] = t;
    for (const [name, t] of this.namedBuffers()) out[name] = t;
    return out;
  }

  /**
   * Copies values from `state` into the module's parameters and buffers, in place (anything
   * holding them, such as an optimizer, keeps working). Values are converted to each
   * tensor's dtype and device. Shapes must match exactly. With `strict` (the default), the
   * names must match exactly too; otherwise unmatched names are returned. Nothing is
   * changed when an error is thrown.
   */
  loadStateDict(state: StateDict | ReadonlyMap<string, Tensor>, options: { strict?: boolean } = {}): LoadResult {
    const strict = options.strict ?? true;
    const incoming: Map<string, Tensor> = state instanceof Map ? new Map(state as ReadonlyMap<string, Tensor>) : new Map(Object.entries(state as StateDict));
    const own = new Map(Object.entries(this.stateDict()));
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    const problems: string[] = [];
    for (const [name, dst] of own) {
      const src = incoming.get(name);
      if (!src) continue;
      if ((src as { isTensor?: boolean } | null)?.isTensor !== true) {
        problems.push(`'${name}' is not a tensor`);
      } else if (src.isDisposed) {
        problems.push(`'${name}' was disposed`);
      } else if (src.rank !== dst.rank || src.shape.some((d, i) => d !== dst.shape[i])) {
        problems.push(`shape mismatch for '${name}': state dict has ${formatShape(src.shape)}, the module has ${formatShape(dst.shape)}`);
      }
    }
    if (strict && missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (problems.length) {
      throw new Error(`loadStateDict (${this.constructor.name}): ${problems.join('; ')}`);
    }
    for (const [name, dst] of own) {
      const src = incoming.get(name);
      if (src) assignInPlace(dst, src);
    }
    return { missing, unexpected };
  }

  /** Disposes every parameter (and its gradient) and buffer of this module and its descendants. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}
