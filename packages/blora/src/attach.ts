// Putting adapters into a model: select the layers, freeze everything, wrap each selected
// linear layer in an AdaptedLinear (a frozen base plus a trainable adapter), and undo it.
import type { DType, Generator, Tensor } from '@blora/tensor';
import { Linear, type Module } from '@blora/autograd';
import { Adapter, type AdapterOptions } from './adapters/adapter.js';
import { AdaptedLinear } from './adapters/adapted-linear.js';
import { layerHyperparameters, resolveAdapterConfig, type AdapterConfig, type ResolvedAdapterConfig } from './adapters/config.js';
import { LoraAdapter } from './adapters/lora.js';
import { QABLoraAdapter } from './adapters/qablora.js';
import { QBLoraAdapter } from './adapters/qblora.js';
import { DenseBase } from './layers/dense-base.js';
import { FrozenLinear } from './layers/frozen-linear.js';
import { QuantizedBase } from './layers/quantized-base.js';
import { describeTargets, selectTargets, type LinearLike } from './targets.js';

/** Options of `attachAdapters` that are not part of the adapter config (and not saved with it). */
export interface AttachOptions {
  /** Adapter parameter dtype (default float32). */
  dtype?: DType;
  /** Random stream of the initial A values (default: @blora/tensor's default generator). */
  generator?: Generator;
  /** Random stream of the dropout masks. */
  dropoutGenerator?: Generator;
  /** Adapter parameters require grad (default true; false for inference). */
  trainable?: boolean;
}

/** The module at dotted `path` of `model` ('' is the model). */
export function moduleAt(model: Module, path: string): Module {
  if (path === '') return model;
  const found = model.namedModules().find(([name]) => name === path);
  if (!found) throw new Error(`no module named '${path}' in the model`);
  return found[1];
}

/** Replaces the module at `path` of `model` with `replacement` (fields of the parent follow). Returns the old one. */
export function replaceModuleAt(model: Module, path: string, replacement: Module): Module {
  const dot = path.lastIndexOf('.');
  const parent = moduleAt(model, dot < 0 ? '' : path.slice(0, dot));
  return parent.replaceModule(path.slice(dot + 1), replacement);
}

/** The frozen base for a selected layer: a `Linear`'s tensors wrapped (shared), or the layer itself. */
export function frozenBaseOf(layer: LinearLike): FrozenLinear {
  return layer instanceof Linear ? DenseBase.fromLinear(layer) : layer;
}

function deviceOf(base: FrozenLinear): string {
  if (base instanceof DenseBase) return base.weight.device;
  if (base instanceof QuantizedBase) return base.quantized.device;
  return base.bias?.device ?? 'cpu';
}

/** Builds the adapter `config` asks for at layer `name` over `base`. */
export function createAdapter(config: ResolvedAdapterConfig, name: string, base: FrozenLinear, options: AttachOptions = {}): Adapter {
  const { r, alpha } = layerHyperparameters(config, name);
  const adapterOptions: AdapterOptions = {
    r, alpha, dropout: config.dropout, useRslora: config.useRslora, layerName: name,
    dtype: options.dtype ?? 'float32', device: deviceOf(base),
    ...(options.generator ? { generator: options.generator } : {}),
    ...(options.dropoutGenerator ? { dropoutGenerator: options.dropoutGenerator } : {}),
  };
  const { inFeatures, outFeatures } = base;
  const factors = { lambdaIn: config.lambdaIn, lambdaOut: config.lambdaOut };
  switch (config.method) {
    case 'lora': return new LoraAdapter(inFeatures, outFeatures, adapterOptions);
    case 'qblora': return new QBLoraAdapter(inFeatures, outFeatures, factors, adapterOptions);
    case 'qablora': return new QABLoraAdapter(inFeatures, outFeatures, { ...factors, form: config.form }, adapterOptions);
  }
}

/**
 * Adapters attached to a model: the resolved config, the adapted layers by path, and how
 * to undo the attachment.
 */
export class AttachedAdapters {
  private detached = false;

  constructor(
    /** The model (its selected layers are now `AdaptedLinear`). */
    readonly model: Module,
    /** The config with defaults filled in. */
    readonly config: ResolvedAdapterConfig,
    /** target_modules as an adapter_config.json records it. */
    readonly targetModules: readonly string[] | string,
    /** Adapted layers by module path, in model order. */
    readonly layers: ReadonlyMap<string, AdaptedLinear>,
    /** The modules the adapted layers replaced, by path. */
    private readonly originals: ReadonlyMap<string, Module>,
    /** Parameters that required grad before attaching (frozen by it). */
    private readonly frozen: readonly Tensor[],
  ) {}

  /** False once `detach` or a merge has taken the adapters out of the model. */
  get isAttached(): boolean {
    return !this.detached;
  }

  /** The adapters' parameters (every tensor an optimizer should update). */
  trainableParameters(): Tensor[] {
    return [...this.layers.values()].flatMap((l) => l.adapter.parameters());
  }

  /** Sets the adapters trainable or frozen. */
  setTrainable(flag: boolean): void {
    for (const layer of this.layers.values()) layer.adapter.setTrainable(flag);
  }

  /**
   * Takes the adapters out: puts the original modules back and restores which parameters
   * required grad. The adapters' tensors are disposed.
   */
  detach(): void {
    this.assertAttached('detach');
    for (const [path, original] of this.originals) {
      replaceModuleAt(this.model, path, original);
      this.layers.get(path)!.adapter.dispose();
    }
    for (const t of this.frozen) t.requiresGrad = true;
    this.markDetached();
  }

  /** @internal Called by merges, which put merged bases in place of the adapted layers. */
  markDetached(): void {
    this.detached = true;
  }

  /** Throws when the adapters are no longer in the model. */
  assertAttached(what: string): void {
    if (this.detached) throw new Error(`${what}: the adapters were already detached or merged`);
  }
}

/**
 * Attaches adapters to `model` as `config` says: every selected linear layer becomes an
 * `AdaptedLinear` (base frozen, adapter trainable) in place, fields of its parent included;
 * every other parameter of the model is frozen. Default targets: every linear layer except
 * `lm_head`. Throws before changing anything when a target matches nothing, a λ does not divide
 * a layer's sizes, or (QA-BLoRA) the base's quantization blocks do not fit the tiles.
 */
export function attachAdapters(model: Module, config: AdapterConfig = {}, options: AttachOptions = {}): AttachedAdapters {
  const resolved = resolveAdapterConfig(config);
  const selected = selectTargets(model, resolved);
  const targetModules = resolved.targetModules ?? describeTargets(model, resolved, selected);
  // Which parameters trained before (wrapping a Linear freezes its tensors).
  const frozen = model.parameters().filter((t) => t.requiresGrad);
  // Build every adapter first, so a bad layer leaves the model untouched.
  const built: [string, LinearLike, AdaptedLinear][] = [];
  try {
    for (const name of selected) {
      const layer = moduleAt(model, name) as LinearLike;
      const base = frozenBaseOf(layer);
      built.push([name, layer, new AdaptedLinear(base, createAdapter(resolved, name, base, options))]);
    }
  } catch (e) {
    for (const [, , adapted] of built) adapted.adapter.dispose();
    for (const t of frozen) t.requiresGrad = true;
    throw e;
  }
  for (const t of frozen) t.requiresGrad = false;
  const layers = new Map<string, AdaptedLinear>();
  const originals = new Map<string, Module>();
  for (const [name, layer, adapted] of built) {
    replaceModuleAt(model, name, adapted);
    adapted.base.setRequiresGrad(false);
    adapted.adapter.setTrainable(options.trainable ?? true);
    layers.set(name, adapted);
    originals.set(name, layer);
  }
  return new AttachedAdapters(model, resolved, targetModules, layers, originals, frozen);
}
