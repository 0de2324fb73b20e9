// What to attach and where: the method, its hyperparameters, and which layers (PEFT's
// target_modules / layers_to_transform / rank_pattern semantics, so PEFT configs mean the same
// thing here).
import { ADAPTER_METHODS, type AdapterForm, type AdapterMethod } from './adapter.js';
import { QABLORA_DEFAULTS } from './qablora.js';
import { QBLORA_DEFAULT_LAMBDA } from './qblora.js';

/** Options of `attachAdapters` (and what an adapter_config.json describes). */
export interface AdapterConfig {
  /** 'lora' (default), 'qblora' or 'qablora'. */
  method?: AdapterMethod;
  /** Nominal rank r (default 8, PEFT's default; the paper uses 64). */
  r?: number;
  /** α, PEFT's `lora_alpha` (default 8; the paper uses 16). Scaling s = α / r. */
  alpha?: number;
  /** Dropout on the adapter input (default 0; 0.05 or 0.1 are common). */
  dropout?: number;
  /** Scale by α / √r (rank-stabilised LoRA). */
  useRslora?: boolean;
  /** Q-BLoRA: λin = λout = lambda (default 2). */
  lambda?: number;
  /** Input factor (avgPool kernel): Q-BLoRA's λin, QA-BLoRA's λ1 (default 4). */
  lambdaIn?: number;
  /** Output factor (repeat count): Q-BLoRA's λout, QA-BLoRA's λ2 (default 8). */
  lambdaOut?: number;
  /** QA-BLoRA: 'matrix' (default, one M) or 'factors' (B·A). Other methods use factors. */
  form?: AdapterForm;
  /**
   * Which modules get adapters, as in PEFT: a list of names, each matching a module whose
   * path equals it or ends in `.name`; or one string, a regular expression the whole path
   * must match. Default (or 'all-linear'): every linear layer except the output head `lm_head`.
   */
  targetModules?: readonly string[] | string | null;
  /** Modules never adapted, with the same matching rules (PEFT's `exclude_modules`). */
  excludeModules?: readonly string[] | string | null;
  /** Only layers with these indices (the number after `layersPattern` in the path). */
  layersToTransform?: number | readonly number[] | null;
  /** Name(s) of the module list holding the layers, e.g. 'layers' (default: any). */
  layersPattern?: string | readonly string[] | null;
  /** Per-module r, keyed by a pattern matching the end of the module path (PEFT's `rank_pattern`). */
  rankPattern?: Readonly<Record<string, number>>;
  /** Per-module α, same keys as `rankPattern` (PEFT's `alpha_pattern`). */
  alphaPattern?: Readonly<Record<string, number>>;
}

/**
 * An `AdapterConfig` with every default filled in and the factors settled (LoRA: λ = 1 and
 * factors; Q-BLoRA: factors; QA-BLoRA: its form). Fields mean what they mean in `AdapterConfig`.
 */
export interface ResolvedAdapterConfig {
  method: AdapterMethod;
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  lambdaIn: number;
  lambdaOut: number;
  form: AdapterForm;
  targetModules: readonly string[] | string | null;
  excludeModules: readonly string[] | string | null;
  layersToTransform: number | readonly number[] | null;
  layersPattern: string | readonly string[] | null;
  rankPattern: Readonly<Record<string, number>>;
  alphaPattern: Readonly<Record<string, number>>;
}

/** Default nominal rank (PEFT's default r). */
export const DEFAULT_R = 8;
/** Default α (PEFT's default lora_alpha). */
export const DEFAULT_ALPHA = 8;

/**
 * The largest rank r (and rankPattern value) accepted: far above any published adapter, and
 * low enough that a damaged config cannot ask for an adapter too large to allocate.
 */
export const MAX_ADAPTER_RANK = 65536;

/** The module left alone by the default targets: the output head. */
export const DEFAULT_EXCLUDED_HEAD = 'lm_head';

function check(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(`adapter config: ${message}`);
}

function isPositiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

/** Settles the method's factors and form and fills the defaults; throws on contradictory or invalid settings. */
export function resolveAdapterConfig(config: AdapterConfig = {}): ResolvedAdapterConfig {
  const method = config.method ?? 'lora';
  check(ADAPTER_METHODS.includes(method), `method must be one of ${ADAPTER_METHODS.join(', ')}, got '${String(method)}'`);
  const r = config.r ?? DEFAULT_R;
  check(isPositiveInteger(r), `r must be a positive integer, got ${String(r)}`);
  check(r <= MAX_ADAPTER_RANK, `r = ${r} is more than the limit of ${MAX_ADAPTER_RANK}`);
  const alpha = config.alpha ?? DEFAULT_ALPHA;
  check(typeof alpha === 'number' && Number.isFinite(alpha), `alpha must be a finite number, got ${String(alpha)}`);
  const dropout = config.dropout ?? 0;
  check(typeof dropout === 'number' && dropout >= 0 && dropout < 1, `dropout must be in [0, 1), got ${String(dropout)}`);
  const { lambda, lambdaIn, lambdaOut } = config;
  for (const [name, v] of [['lambda', lambda], ['lambdaIn', lambdaIn], ['lambdaOut', lambdaOut]] as const) {
    check(v === undefined || isPositiveInteger(v), `${name} must be a positive integer, got ${String(v)}`);
  }
  check(lambda === undefined || ((lambdaIn ?? lambda) === lambda && (lambdaOut ?? lambda) === lambda),
    `lambda = ${lambda} contradicts lambdaIn = ${lambdaIn} / lambdaOut = ${lambdaOut}; give lambda, or lambdaIn and lambdaOut`);

  let factors: { lambdaIn: number; lambdaOut: number; form: AdapterForm };
  if (method === 'lora') {
    check([lambda, lambdaIn, lambdaOut].every((v) => v === undefined || v === 1),
      `LoRA has no balancing factor (got lambda ${lambda ?? lambdaIn ?? lambdaOut}); use method 'qblora' for λ > 1`);
    check(config.form === undefined || config.form === 'factors', `LoRA uses the factor pair B·A, not form '${String(config.form)}'`);
    factors = { lambdaIn: 1, lambdaOut: 1, form: 'factors' };
  } else if (method === 'qblora') {
    check(config.form === undefined || config.form === 'factors',
      `Q-BLoRA uses the factor pair B·A; the single matrix (form '${String(config.form)}') is QA-BLoRA's`);
    const inF = lambdaIn ?? lambda ?? QBLORA_DEFAULT_LAMBDA;
    factors = { lambdaIn: inF, lambdaOut: lambdaOut ?? lambda ?? inF, form: 'factors' };
  } else {
    const form = config.form ?? QABLORA_DEFAULTS.form;
    check(form === 'matrix' || form === 'factors', `form must be 'matrix' or 'factors', got '${String(form)}'`);
    factors = { lambdaIn: lambdaIn ?? lambda ?? QABLORA_DEFAULTS.lambdaIn, lambdaOut: lambdaOut ?? lambda ?? QABLORA_DEFAULTS.lambdaOut, form };
  }

  const rankPattern = { ...(config.rankPattern ?? {}) };
  const alphaPattern = { ...(config.alphaPattern ?? {}) };
  for (const [k, v] of Object.entries(rankPattern)) {
    check(isPositiveInteger(v), `rankPattern['${k}'] must be a positive integer, got ${String(v)}`);
    check(v <= MAX_ADAPTER_RANK, `rankPattern['${k}'] = ${v} is more than the limit of ${MAX_ADAPTER_RANK}`);
  }
  for (const [k, v] of Object.entries(alphaPattern)) check(typeof v === 'number' && Number.isFinite(v), `alphaPattern['${k}'] must be a finite number, got ${String(v)}`);
  const targets = config.targetModules ?? null;
  check(targets === null || typeof targets === 'string' || (Array.isArray(targets) && targets.every((t) => typeof t === 'string' && t.length > 0)),
    'targetModules must be a list of module names or one regular expression');
  return {
    method, r, alpha, dropout, useRslora: config.useRslora ?? false, ...factors,
    targetModules: typeof targets === 'string' && targets.toLowerCase() === 'all-linear' ? null : targets,
    excludeModules: config.excludeModules ?? null,
    layersToTransform: config.layersToTransform ?? null,
    layersPattern: config.layersPattern ?? null,
    rankPattern, alphaPattern,
  };
}

/** A Python-style full match of `pattern` against `text`. */
export function fullMatch(pattern: string, text: string): boolean {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new SyntaxError(`adapter config: invalid regular expression '${pattern}' (${(e as Error).message})`);
  }
  return re.test(text);
}

/** The first key of `patterns` that matches the end of `name` on a dot boundary (PEFT's `get_pattern_key`), or null. */
export function patternKeyFor(patterns: Readonly<Record<string, number>>, name: string): string | null {
  for (const key of Object.keys(patterns)) if (fullMatch(`(.*\\.)?(${key})`, name)) return key;
  return null;
}

/** r and α of the layer at `name`, after rankPattern / alphaPattern. */
export function layerHyperparameters(config: ResolvedAdapterConfig, name: string): { r: number; alpha: number } {
  const rKey = patternKeyFor(config.rankPattern, name);
  const aKey = patternKeyFor(config.alphaPattern, name);
  return { r: rKey === null ? config.r : config.rankPattern[rKey]!, alpha: aKey === null ? config.alpha : config.alphaPattern[aKey]! };
}
