// Which modules of a model get adapters: PEFT's matching rules for target_modules,
// exclude_modules, layers_to_transform and layers_pattern, over dotted module paths.
import { Linear, type Module } from '@blora/autograd';
import { AdaptedLinear } from './adapters/adapted-linear.js';
import { DEFAULT_EXCLUDED_HEAD, fullMatch, type ResolvedAdapterConfig } from './adapters/config.js';
import { FrozenLinear } from './layers/frozen-linear.js';

/** A module an adapter can sit on: an autograd `Linear` or a frozen base layer. */
export type LinearLike = Linear | FrozenLinear;

/** True for the modules an adapter can wrap. */
export function isLinearLike(m: Module): m is LinearLike {
  return m instanceof Linear || m instanceof FrozenLinear;
}

/** Every module of `model` by path, except the insides of already adapted layers. */
export function modulesOutsideAdapters(model: Module): [string, Module][] {
  const adapted: string[] = [];
  const out: [string, Module][] = [];
  for (const [name, m] of model.namedModules()) {
    if (adapted.some((p) => name.startsWith(`${p}.`))) continue;
    if (m instanceof AdaptedLinear) adapted.push(name);
    out.push([name, m]);
  }
  return out;
}

/**
 * The entry of `targets` that selects the module at `name`, or null: for a list, an entry
 * equal to the path or to its last dotted parts (`q_proj` selects `model.layers.0.self_attn.q_proj`);
 * for a string, the string itself when it fully matches the path as a regular expression.
 */
export function targetEntryFor(targets: readonly string[] | string, name: string): string | null {
  if (typeof targets === 'string') return fullMatch(targets, name) ? targets : null;
  for (const t of targets) if (name === t || name.endsWith(`.${t}`)) return t;
  return null;
}

/** The layer index in `name` (the number after a layers-pattern segment), or null. */
export function layerIndexOf(name: string, layersPattern: string | readonly string[] | null): number | null {
  const patterns = layersPattern === null ? [] : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  const regexes = patterns.length === 0 ? [/^.*\.[^.]*\.(\d+)\./] : patterns.map((p) => new RegExp(`^.*\\.${p}\\.(\\d+)\\.`));
  for (const re of regexes) {
    const m = re.exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

function keepsLayer(config: ResolvedAdapterConfig, name: string): boolean {
  const wanted = config.layersToTransform;
  if (wanted === null || (Array.isArray(wanted) && wanted.length === 0)) return true;
  const index = layerIndexOf(name, config.layersPattern);
  if (index === null) return false;
  return typeof wanted === 'number' ? index === wanted : (wanted as readonly number[]).includes(index);
}

function listSome(names: readonly string[], n = 8): string {
  return names.length <= n ? names.join(', ') : `${names.slice(0, n).join(', ')}, ... (${names.length} in all)`;
}

/**
 * The paths of the linear layers `config` selects in `model`, in model order. Throws, naming
 * the pattern and the layers the model has, when an entry of targetModules matches no module,
 * when a selected module is not a linear layer, or when nothing is left.
 */
export function selectTargets(model: Module, config: ResolvedAdapterConfig): string[] {
  const modules = modulesOutsideAdapters(model).filter(([name]) => name !== '');
  const linear = modules.filter(([, m]) => isLinearLike(m) || m instanceof AdaptedLinear).map(([name]) => name);
  const excluded = (name: string) => config.excludeModules !== null && targetEntryFor(config.excludeModules, name) !== null;
  const selected: string[] = [];
  const targets = config.targetModules;
  if (targets === null) {
    for (const [name, m] of modules) {
      if (!(isLinearLike(m) || m instanceof AdaptedLinear) || name.split('.').pop() === DEFAULT_EXCLUDED_HEAD) continue;
      if (!excluded(name) && keepsLayer(config, name)) selected.push(name);
    }
  } else {
    const used = new Set<string>();
    for (const [name, m] of modules) {
      const entry = targetEntryFor(targets, name);
      if (entry === null) continue;
      used.add(entry);
      if (excluded(name)) continue;
      // PEFT applies layers_to_transform to name lists only, not to a regular expression.
      if (typeof targets !== 'string' && !keepsLayer(config, name)) continue;
      if (!isLinearLike(m) && !(m instanceof AdaptedLinear)) {
        throw new TypeError(`attachAdapters: module '${name}' matches target '${entry}' but is a ${m.constructor.name}, not a linear layer`);
      }
      selected.push(name);
    }
    const unused = typeof targets === 'string' ? (used.size ? [] : [targets]) : targets.filter((t) => !used.has(t));
    if (unused.length) {
      throw new RangeError(`attachAdapters: target ${unused.map((t) => `'${t}'`).join(', ')} matched no module of the model ` +
        `(its linear layers: ${listSome(linear) || 'none'})`);
    }
  }
  if (selected.length === 0) {
    throw new RangeError(`attachAdapters: no layer selected (targets ${JSON.stringify(targets ?? 'all linear layers')}, ` +
      `layersToTransform ${JSON.stringify(config.layersToTransform)}, layersPattern ${JSON.stringify(config.layersPattern)}, ` +
      `excludeModules ${JSON.stringify(config.excludeModules)}; linear layers: ${listSome(linear) || 'none'})`);
  }
  const already = selected.filter((name) => modules.find(([n]) => n === name)![1] instanceof AdaptedLinear);
  if (already.length) throw new Error(`attachAdapters: ${listSome(already)} already carr${already.length > 1 ? 'y adapters' : 'ies an adapter'}`);
  return selected;
}

/**
 * The shortest target list that selects exactly `selected` under `config` (its layer and
 * exclude filters): the distinct last path parts when they suffice, else the full paths.
 * This is what an adapter_config.json records for the default targets.
 */
export function describeTargets(model: Module, config: ResolvedAdapterConfig, selected: readonly string[]): string[] {
  const leaves = [...new Set(selected.map((n) => n.split('.').pop()!))].sort();
  try {
    const again = selectTargets(model, { ...config, targetModules: leaves });
    if (again.length === selected.length && again.every((n, i) => n === selected[i])) return leaves;
  } catch {
    // fall through to full paths
  }
  return [...selected];
}
