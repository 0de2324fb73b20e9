// Where the memory of one training step goes: the peak of the forward and of the backward,
// and every tensor the tape holds at the end of the forward, by op, dtype and width (elements
// per token), with a per-token-per-layer figure that extrapolates to other model shapes.
// The bench model of the GPU training step (bench/gpu/train-model.ts) is used as is.
import { itemSize, memoryStats, peakBytes, resetPeakMemory, tidy, type DType, type Tensor } from '@blora/tensor';
import { AdamW, GraphNode } from '@blora/autograd';
import { readTrainConfig, type TrainBenchConfig, type TrainShape, type TrainVariant } from '../gpu/train-config.js';
import { buildTrainModel, randomTokenIds } from '../gpu/train-model.js';

/** A per-token width in named model sizes: elements per token = value of `symbol` (an expression of the shape). */
export type WidthSymbol = 'd' | 'd/λ' | 'kv' | 'kv/λ' | 'm' | 'm/λ' | 'heads' | 'rank' | '1' | 'vocab' | 'const';

/** Sizes a width can be expressed in. */
export interface Widths {
  d: number;
  kv: number;
  m: number;
  heads: number;
  /** Rank of B·A: r · λ. */
  rank: number;
  vocab: number;
  /** λ of Q-BLoRA (1 for LoRA). */
  lambda: number;
}

/** The value of `symbol` for `w` (elements per token; 'const' is not per token). */
export function widthValue(symbol: WidthSymbol, w: Widths): number {
  switch (symbol) {
    case 'd': return w.d;
    case 'd/λ': return w.d / w.lambda;
    case 'kv': return w.kv;
    case 'kv/λ': return w.kv / w.lambda;
    case 'm': return w.m;
    case 'm/λ': return w.m / w.lambda;
    case 'heads': return w.heads;
    case 'rank': return w.rank;
    case '1': return 1;
    case 'vocab': return w.vocab;
    case 'const': return 0;
  }
}

/** In order of preference when two sizes coincide (nothing of width kv/λ or m/λ is kept for backward). */
const SYMBOLS: WidthSymbol[] = ['d', 'kv', 'm', 'rank', 'd/λ', 'kv/λ', 'm/λ', '1', 'vocab', 'heads'];

/** The widths of `shape` with adapters of nominal rank `r` and factor `lambda`. */
export function widthsOf(shape: TrainShape, r: number, lambda: number): Widths {
  return {
    d: shape.hidden, kv: (shape.hidden / shape.heads) * shape.kvHeads, m: shape.intermediate, heads: shape.heads,
    rank: r * lambda, vocab: shape.vocab, lambda,
  };
}

/** The symbols whose values coincide for `w` (a measurement at such a shape cannot tell them apart). */
export function ambiguousSymbols(w: Widths): string[] {
  const seen = new Map<number, WidthSymbol>();
  const out: string[] = [];
  for (const s of SYMBOLS) {
    const v = widthValue(s, w);
    const other = seen.get(v);
    if (other && !(w.lambda === 1 && s.endsWith('/λ'))) out.push(`${other} = ${s} = ${v}`);
    else seen.set(v, s);
  }
  return out;
}

/** One group of saved storages: same op, role (input/output index), dtype and width. */
export interface SavedGroup {
  op: string;
  role: string;
  dtype: DType;
  width: WidthSymbol;
  /** Whether the tensors belong to a decoder layer (counted per layer) or to the rest of the model. */
  inLayer: boolean;
  /** The model's own weights (held before the step anyway, so not counted in `savedBytes`). */
  weight: boolean;
  storages: number;
  bytes: number;
}

/** What one measured step gives. */
export interface StepMemory {
  variant: TrainVariant;
  shape: TrainShape;
  widths: Widths;
  tokens: number;
  /** Live bytes before the measured step (weights, adapters, optimizer state). */
  baseBytes: number;
  /** Highest live bytes during the forward (loss included). */
  forwardPeak: number;
  /** Highest live bytes until the last decoder layer returned. */
  layersPeak: number;
  /** Live bytes when the last decoder layer returned. */
  afterLayers: number;
  /** Live bytes when the forward has returned (what the tape holds plus the loss). */
  afterForward: number;
  /** Highest live bytes during the backward. */
  backwardPeak: number;
  /** Bytes of the adapters' gradients at the end of the backward. */
  gradBytes: number;
  /** Highest live bytes during the optimizer update. */
  optimizerPeak: number;
  /** The highest of the three phases: the step's peak. */
  stepPeak: number;
  /** Distinct storages the tape holds at the end of the forward, grouped. */
  saved: SavedGroup[];
  savedBytes: number;
  loss: number;
}

/**
 * The named width of `t`, a tensor over `batch` sequences of `seq` tokens, from its storage's
 * elements per token ('const' when it is not per token). Per-head values `[B, heads, T]` are
 * told apart by their layout, since their width may coincide with another size.
 */
function classify(t: Tensor, batch: number, seq: number, w: Widths): WidthSymbol {
  const numel = t.storage.numel;
  if (t.rank === 3 && t.shape[0] === batch && t.shape[1] === w.heads && t.shape[2] === seq && numel === batch * w.heads * seq) return 'heads';
  if (t.shape[0] !== batch && t.shape[0] !== batch * seq && t.shape[0] !== batch * (seq - 1)) return 'const';
  for (const tokens of [batch * seq, batch * (seq - 1)]) {
    if (numel % tokens !== 0) continue;
    const per = numel / tokens;
    for (const s of SYMBOLS) if (s !== 'heads' && widthValue(s, w) === per && !(w.lambda === 1 && s.endsWith('/λ'))) return s;
  }
  return 'const';
}

/** Every node reachable from `root`'s gradient function, in creation order. */
function tapeOf(root: Tensor): GraphNode[] {
  const seen = new Set<GraphNode>();
  const stack = root.gradFn instanceof GraphNode ? [root.gradFn] : [];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...n.parents());
  }
  return [...seen].sort((a, b) => a.seq - b.seq);
}

/**
 * Groups the distinct storages the tape behind `root` holds. A storage saved by several nodes
 * is counted once, for the first node that saves it; storages in `weights` (the model's own)
 * are marked. Nodes with `seq` inside `layerSeqs`
 * (the first and last node of the decoder layers) count as layer tensors.
 */
export function savedByOp(
  root: Tensor, layerSeqs: [number, number], batch: number, seq: number, w: Widths, weights: ReadonlySet<unknown>,
): SavedGroup[] {
  const groups = new Map<string, SavedGroup>();
  const counted = new Set<unknown>();
  for (const node of tapeOf(root)) {
    for (const { tensor, role, index } of node.savedTensors()) {
      const storage = tensor.storage;
      if (counted.has(storage)) continue;
      counted.add(storage);
      const weight = weights.has(storage);
      const width = weight ? 'const' : classify(tensor, batch, seq, w);
      const inLayer = node.seq >= layerSeqs[0] && node.seq <= layerSeqs[1];
      const roleName = `${role === 'input' ? 'in' : 'out'}${index}`;
      const key = `${inLayer}|${weight}|${node.op}|${roleName}|${tensor.dtype}|${width}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { op: node.op, role: roleName, dtype: tensor.dtype, width, inLayer, weight, storages: 0, bytes: 0 }));
      g.storages += 1;
      g.bytes += storage.numel * itemSize(storage.dtype);
    }
  }
  return [...groups.values()].sort((a, b) => Number(a.weight) - Number(b.weight) || Number(b.inLayer) - Number(a.inLayer) || b.bytes - a.bytes);
}

/** The storages of every tensor a model holds: parameters, buffers and quantized weights (found through properties). */
export function modelStorages(root: object): Set<unknown> {
  const found = new Set<unknown>();
  const seen = new Set<object>();
  const visit = (value: unknown, depth: number): void => {
    if (value === null || typeof value !== 'object' || seen.has(value) || depth > 24) return;
    seen.add(value);
    if ((value as { isTensor?: boolean }).isTensor === true) {
      found.add((value as Tensor).storage);
      return;
    }
    const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
    for (const v of items) visit(v, depth + 1);
  };
  visit(root, 0);
  return found;
}

/**
 * The benchmark's configuration for a small CPU model (overridable through the
 * BLORA_BENCH_TRAIN_* variables): TinyLlama's proportions at hidden 256 (MLP 2.75 d, key/value
 * width d/8, vocabulary 15.6 d, r = d/32), so that every activation is the same multiple of the
 * hidden size as there and the figures scale with tokens · hidden.
 */
export function smallConfig(env: NodeJS.ProcessEnv = process.env): TrainBenchConfig {
  return readTrainConfig({
    BLORA_BENCH_TRAIN_DEVICE: 'cpu', BLORA_BENCH_TRAIN_SMOKE: '1',
    BLORA_BENCH_TRAIN_LAYERS: '2', BLORA_BENCH_TRAIN_HIDDEN: '256', BLORA_BENCH_TRAIN_INTERMEDIATE: '704',
    BLORA_BENCH_TRAIN_HEADS: '16', BLORA_BENCH_TRAIN_KV_HEADS: '2', BLORA_BENCH_TRAIN_VOCAB: '4000',
    BLORA_BENCH_TRAIN_BATCH: '2', BLORA_BENCH_TRAIN_SEQ: '128', BLORA_BENCH_TRAIN_RANK: '8',
    BLORA_BENCH_TRAIN_DTYPE: 'bfloat16', BLORA_BENCH_TRAIN_ADAPTER_DTYPE: 'float32',
    ...env,
  });
}

/**
 * Builds `variant`'s model with `config`, takes one warm-up step (so the optimizer state
 * exists), then measures a second step phase by phase on `config.device`.
 */
export function measureStep(variant: TrainVariant, config: TrainBenchConfig): StepMemory {
  const device = config.device;
  const built = buildTrainModel(variant, config);
  const ids = randomTokenIds(config.shape, device, config.seed + 3);
  const optimizer = new AdamW(built.attached.trainableParameters(), { lr: config.lr });
  // The seq numbers of the first and last node of the decoder layers, caught at their
  // boundaries, and the peak and live bytes when the last layer is done.
  const layers = built.model.model.layers.items;
  const bounds: number[] = [];
  let layersPeak = 0;
  let afterLayers = 0;
  const unwrap = layers.map((layer, i) => {
    const forward = layer.forward;
    layer.forward = (x, ...rest) => {
      // A frozen embedding leaves no node before the first layer: everything up to it is in the layers.
      if (i === 0) bounds.splice(0, bounds.length, x.gradFn instanceof GraphNode ? x.gradFn.seq + 1 : 0);
      const y = forward.call(layer, x, ...rest);
      if (y.gradFn instanceof GraphNode) bounds[1] = y.gradFn.seq;
      if (i === layers.length - 1) {
        layersPeak = peakBytes(device);
        afterLayers = memoryStats(device).bytes;
      }
      return y;
    };
    return () => { layer.forward = forward; };
  });
  const widths = widthsOf(config.shape, config.rank, lambdaOf(variant, config));
  let weights: Set<unknown> = new Set();
  const step = (measure: boolean): Omit<StepMemory, 'variant' | 'shape' | 'widths' | 'tokens'> => {
    const baseBytes = memoryStats(device).bytes;
    resetPeakMemory(device);
    const result = tidy(() => {
      const loss = built.model.loss(ids);
      const forwardPeak = peakBytes(device);
      const afterForward = memoryStats(device).bytes;
      const saved = measure ? savedByOp(loss, [bounds[0]!, bounds[1]!], config.shape.batch, config.shape.seq, widths, weights) : [];
      resetPeakMemory(device);
      loss.backward();
      const backwardPeak = peakBytes(device);
      const gradBytes = built.attached.trainableParameters().reduce((sum, p) => sum + (p.grad ? p.grad.storage.byteLength : 0), 0);
      return { loss: loss.item(), forwardPeak, afterForward, backwardPeak, gradBytes, saved };
    });
    resetPeakMemory(device);
    optimizer.step();
    optimizer.zeroGrad();
    const optimizerPeak = peakBytes(device);
    const savedBytes = result.saved.reduce((s, g) => s + (g.weight ? 0 : g.bytes), 0);
    return {
      ...result, baseBytes, optimizerPeak, savedBytes, layersPeak, afterLayers,
      stepPeak: Math.max(result.forwardPeak, result.backwardPeak, optimizerPeak),
    };
  };
  try {
    step(false);
    // Caches made by the first step (restored absmax values) belong to the model from here on.
    weights = modelStorages(built.model);
    const measured = step(true);
    return {
      variant, shape: config.shape, widths: widthsOf(config.shape, config.rank, lambdaOf(variant, config)),
      tokens: config.shape.batch * config.shape.seq, ...measured,
    };
  } finally {
    unwrap.forEach((f) => f());
    optimizer.dispose();
    ids.dispose();
    built.dispose();
  }
}

function lambdaOf(variant: TrainVariant, config: TrainBenchConfig): number {
  return variant === 'qblora' ? config.lambda : 1;
}

/** One tensor a step must keep for backward, per token and layer. */
export interface MinimumItem {
  what: string;
  dtype: DType;
  width: WidthSymbol;
  count: number;
}

/**
 * What backward needs from one decoder layer with an adapter on each of its seven projections
 * (frozen NF4 or dense base: the base's rule needs only its weight to give dx), per token, when
 * every cheap function of kept tensors is rebuilt rather than kept: the normalised inputs (from
 * the norms' inputs), the adapters' float32 (pooled) inputs (from their activation-dtype
 * inputs), the merged attention output (from o), silu(gate) and silu(gate)·up (from gate and
 * up). Only products with weights are never redone.
 */
export function minimumPerLayer(activation: DType, adapter: DType): MinimumItem[] {
  return [
    { what: 'layer input x (input_layernorm, and the q/k/v adapters rebuild norm(x) from it)', dtype: activation, width: 'd', count: 1 },
    { what: 'attention residual h (post_attention_layernorm, gate/up adapters)', dtype: activation, width: 'd', count: 1 },
    { what: 'rstd of the two norms', dtype: 'float32', width: '1', count: 2 },
    { what: 'attention: q and o (o also rebuilds the o_proj input)', dtype: activation, width: 'd', count: 2 },
    { what: 'attention: k and v', dtype: activation, width: 'kv', count: 2 },
    { what: 'attention: log-sum-exp per head', dtype: 'float32', width: 'heads', count: 1 },
    { what: 'gate_proj and up_proj outputs (silu and the product are rebuilt)', dtype: activation, width: 'm', count: 2 },
    { what: 'A·x of the seven adapters (dB reads it; rank r·λ)', dtype: adapter, width: 'rank', count: 7 },
  ];
}

/** Bytes per token of `items` at widths `w`. */
export function bytesPerToken(items: readonly { dtype: DType; width: WidthSymbol; count?: number }[], w: Widths): number {
  return items.reduce((s, it) => s + (it.count ?? 1) * itemSize(it.dtype) * widthValue(it.width, w), 0);
}
