// Text generation: greedy decoding or sampling (temperature, top-k, top-p) from seeded
// random streams, running each new token through the model once with a KV cache.
import { argmax, canCaptureGraphs, Generator, rand, reshape, slice, tidy, type Tensor } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import { DecodeStep } from './decode-step.js';
import { KVCache } from './kv-cache.js';
import type { LlamaForCausalLM } from './model.js';

/** How the next token is chosen from the logits. */
export interface SamplingOptions {
  /** Sample (true) or take the most likely token (false, default), as transformers' `do_sample`. */
  doSample?: boolean;
  /** Divides the logits before sampling (default 1; must be > 0). */
  temperature?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches `topP` (default 1: all). */
  topP?: number;
  /** Keep only the `topK` most likely tokens (default 0: all). */
  topK?: number;
}

/** Options of `generate`. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to add (default 32). */
  maxNewTokens?: number;
  /** Stop after any of these ids (default: the config's `eos_token_id`; [] never stops early). */
  eosTokenIds?: readonly number[];
  /** Random stream for sampling (default: a generator seeded with `seed`). */
  generator?: Generator;
  /** Seed of the default generator (default 0). */
  seed?: number;
  /** Reuse past keys and values (default true); false recomputes the whole sequence each step. */
  useCache?: boolean;
  /**
   * Run each token after the first as a recorded device graph (`DecodeStep`): one launch a token
   * instead of hundreds of op calls. Default: where the device records graphs (cuda) and the cache
   * is used, falling back to op-by-op steps if the step cannot be recorded; true insists (throws
   * instead of falling back); false never records.
   */
  graph?: boolean;
  /** Called with each new token as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/** What `generate` returns. */
export interface GenerateResult {
  /** The new tokens (the end-of-sequence token included when one was produced). */
  tokens: number[];
  /** 'eos' when an end-of-sequence token stopped generation, 'length' when `maxNewTokens` did. */
  finishReason: 'eos' | 'length';
}

/** Index of the largest value: the first one on ties, the first NaN if there is one (as the argmax op). */
export function argmaxOf(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) {
    const [v, b] = [values[i]!, values[best]!];
    if (b !== b) break;
    if (v > b || v !== v) best = i;
  }
  return best;
}

function checkSampling(options: SamplingOptions): Required<SamplingOptions> {
  const temperature = options.temperature ?? 1;
  const topP = options.topP ?? 1;
  const topK = options.topK ?? 0;
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`generate: temperature must be > 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${topP}`);
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`generate: topK must be a non-negative integer, got ${topK}`);
  return { doSample: options.doSample ?? false, temperature, topP, topK };
}

/**
 * Chooses a token from one row of logits: the argmax, or (with `doSample`) a draw from
 * softmax(logits / temperature) restricted to the top-k tokens and then to the smallest set of
 * most likely tokens whose probability reaches top-p. `uniform` in [0, 1) drives the draw.
 */
export function chooseToken(logits: ArrayLike<number>, options: SamplingOptions, uniform: () => number): number {
  const o = checkSampling(options);
  if (!o.doSample) return argmaxOf(logits);
  const n = logits.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const keep = o.topK > 0 ? Math.min(o.topK, n) : n;
  const max = logits[order[0]!]!;
  const weights = new Float64Array(keep);
  let total = 0;
  for (let j = 0; j < keep; j++) total += weights[j] = Math.exp((logits[order[j]!]! - max) / o.temperature);
  // Nucleus: the shortest prefix (most likely first) whose probability reaches topP.
  let count = keep;
  if (o.topP < 1) {
    let mass = 0;
    for (let j = 0; j < keep; j++) {
      mass += weights[j]! / total;
      if (mass >= o.topP) {
        count = j + 1;
        break;
      }
    }
  }
  let kept = 0;
  for (let j = 0; j < count; j++) kept += weights[j]!;
  const target = uniform() * kept;
  let cumulative = 0;
  for (let j = 0; j < count; j++) {
    cumulative += weights[j]!;
    if (target < cumulative) return order[j]!;
  }
  return order[count - 1]!;
}

/** Logits [vocab] of the last position of `ids` (inside a tidy scope). */
function lastLogitsTensor(model: LlamaForCausalLM, ids: number[], cache: KVCache | null): Tensor {
  const hidden = model.hiddenStates([ids], cache ? { kvCache: cache } : {});
  const t = hidden.shape[1]!;
  return reshape(model.logitsFrom(slice(hidden, 1, t - 1, t)), [-1]);
}

/** The next token after `ids`: greedy (the logits' argmax, found on the model's device) or sampled. */
function nextToken(model: LlamaForCausalLM, ids: number[], cache: KVCache | null, sampling: Required<SamplingOptions>,
  uniform: () => number): number {
  if (!sampling.doSample) return noGrad(() => tidy(() => argmax(lastLogitsTensor(model, ids, cache), 0).item()));
  const logits = noGrad(() => tidy(() => lastLogitsTensor(model, ids, cache).toFloat64Array()));
  return chooseToken(logits, sampling, uniform);
}

/**
 * Continues `prompt` (token ids) one token at a time until an end-of-sequence id or
 * `maxNewTokens`. With the cache (default) the prompt runs once and each new token once,
 * at positions continuing the prompt; the result is the same as recomputing the sequence.
 */
export function generate(model: LlamaForCausalLM, prompt: readonly number[], options: GenerateOptions = {}): GenerateResult {
  if (!Array.isArray(prompt) || prompt.length === 0) throw new RangeError('generate: the prompt must be a non-empty array of token ids');
  const maxNewTokens = options.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const sampling = checkSampling(options);
  const eos = new Set(options.eosTokenIds ?? model.config.eosTokenIds);
  const generator = options.generator ?? new Generator(options.seed ?? 0);
  const uniform = () => tidy(() => rand([1], { generator, dtype: 'float64' }).item());
  const useCache = options.useCache ?? true;
  // Room for the whole sequence up front (the buffers never grow), within the model's context.
  const capacity = Math.min(prompt.length + maxNewTokens, model.config.maxPositionEmbeddings);
  const cache = useCache ? new KVCache(model.config.numHiddenLayers, { capacity }) : null;
  const sequence = [...prompt];
  const tokens: number[] = [];
  let wantsGraph = options.graph ?? (cache !== null && canCaptureGraphs(model.device));
  if (wantsGraph && !cache) throw new Error('generate: graph needs the KV cache (useCache)');
  let step: DecodeStep | null = null;
  try {
    let pending: number[] = sequence;
    while (tokens.length < maxNewTokens) {
      let next: number | null = null;
      // The prompt runs op by op (it fills the cache's buffers); the tokens after it through the step.
      if (cache && wantsGraph && tokens.length > 0 && cache.length < capacity) {
        step ??= new DecodeStep(model, cache, { graph: true });
        try {
          next = sampling.doSample ? chooseToken(step.next(pending[0]!), sampling, uniform) : step.nextGreedy(pending[0]!);
        } catch (e) {
          // Recording failed (an op that cannot be recorded): the cache is as before, go on op by op.
          if (options.graph === true || step.recorded) throw e;
          step.dispose();
          step = null;
          wantsGraph = false;
        }
      }
      next ??= nextToken(model, cache ? pending : sequence, cache, sampling, uniform);
      tokens.push(next);
      sequence.push(next);
      options.onToken?.(next);
      if (eos.has(next)) return { tokens, finishReason: 'eos' };
      pending = [next];
    }
    return { tokens, finishReason: 'length' };
  } finally {
    step?.dispose();
    cache?.dispose();
  }
}
