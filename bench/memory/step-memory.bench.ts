// Prints where the memory of one training step goes, for the model of the GPU training-step
// benchmark built small on the CPU (or on BLORA_BENCH_TRAIN_DEVICE): the peaks of forward,
// backward and optimizer, what the tape holds at the end of the forward by op and dtype, per
// token and layer in bytes and in units of the hidden size, the minimum backward needs, and an
// extrapolation of all of it to TinyLlama-1.1B at batch 8 x 512. From the repository root:
//   npx vitest run --config bench/memory/vitest.config.ts
// BLORA_MEMORY_VARIANTS (default qlora,qblora) picks the methods; BLORA_MEMORY_LAYERS (default
// 2,4) the depths measured (two depths separate the per-layer part of the peak from the rest);
// the BLORA_BENCH_TRAIN_* variables of bench/gpu/train-config.ts change the shapes.
import { beforeAll, describe, expect, it } from 'vitest';
import { itemSize } from '@blora/tensor';
import { TINYLLAMA_SHAPE, parseVariants, type TrainVariant } from '../gpu/train-config.js';
import {
  ambiguousSymbols, bytesPerToken, measureStep, minimumPerLayer, smallConfig, widthValue, widthsOf, type StepMemory, type Widths,
} from './step-memory.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const variants = parseVariants(process.env.BLORA_MEMORY_VARIANTS || 'qlora,qblora');
const depths = (process.env.BLORA_MEMORY_LAYERS || '2,4').split(',').map(Number);
const target = TINYLLAMA_SHAPE;

function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** Bytes per token per layer, in units of the hidden size (a bfloat16 vector of the hidden size is 2). */
function perTokenLayerHidden(bytes: number, m: StepMemory): number {
  return bytes / (m.tokens * m.shape.layers * m.shape.hidden);
}

/** How many times more tokens · hidden TinyLlama 8 x 512 has than the measured shape. */
function scaleToTarget(m: StepMemory): number {
  return (target.batch * target.seq * target.hidden) / (m.tokens * m.shape.hidden);
}

/**
 * Bytes held before a TinyLlama step: NF4 projections (4 bits + a float32 absmax per block of
 * 64), bfloat16 embeddings, lm_head and norms, and the float32 adapters with AdamW's two moments.
 */
function targetBaseBytes(w: Widths): number {
  const { hidden: d, intermediate: m, layers, vocab } = target;
  const kv = w.kv;
  const projections = layers * (d * d * 2 + d * kv * 2 + 3 * d * m);
  const adapters = layers * 64 * ((d + d) * 2 + (d + kv) * 2 + (d + m) * 3);
  return projections * (0.5 + 4 / 64) + 2 * vocab * d * 2 + (2 * layers + 1) * d * 2 + adapters * 4 * 3;
}

/** The adapters' float32 gradients at TinyLlama (LoRA's parameter count, which Q-BLoRA keeps). */
function targetGradBytes(w: Widths): number {
  const { hidden: d, intermediate: m, layers } = target;
  return layers * 64 * ((d + d) * 2 + (d + w.kv) * 2 + (d + m) * 3) * 4;
}

function report(variant: TrainVariant, runs: StepMemory[]): void {
  const [small, large] = runs;
  const m = large ?? small!;
  const lines: string[] = [];
  const w = m.widths;
  lines.push(`== ${variant}: hidden ${m.shape.hidden}, layers ${runs.map((r) => r.shape.layers).join('/')}, heads ${m.shape.heads}/${m.shape.kvHeads}, ` +
    `intermediate ${m.shape.intermediate}, vocab ${m.shape.vocab}, batch ${m.shape.batch} x ${m.shape.seq}, rank of B·A ${w.rank} (λ ${w.lambda}), ` +
    `loss ${m.loss.toFixed(6)}`);
  const clash = ambiguousSymbols(w);
  if (clash.length) lines.push(`   (sizes that coincide at this shape; a tensor of such a width is named by the first that is kept: ${clash.join(', ')})`);
  lines.push('', 'Live bytes by phase of the second step; "above" = minus the bytes held before the step (weights, adapters, AdamW state),');
  lines.push('per token and layer in units of the hidden size (a bfloat16 hidden vector is 2):');
  const phases: [string, (r: StepMemory) => number][] = [
    ['before the step', (r) => r.baseBytes],
    ['forward peak, decoder layers', (r) => r.layersPeak], ['after the decoder layers', (r) => r.afterLayers],
    ['forward peak, head and loss', (r) => r.forwardPeak], ['after forward (the tape)', (r) => r.afterForward],
    ['backward peak', (r) => r.backwardPeak], ['optimizer peak', (r) => r.optimizerPeak], ['step peak', (r) => r.stepPeak],
  ];
  const head: string[] = ['phase'];
  for (const r of runs) head.push(`L=${r.shape.layers} MiB`, 'above');
  if (small && large) head.push('per layer: MiB', 'above', 'TinyLlama GiB');
  const rows: (string | number)[][] = [head];
  const baseTl = targetBaseBytes(w);
  for (const [name, f] of phases) {
    const row: (string | number)[] = [name];
    for (const r of runs) row.push(f(r) / MIB, name === 'before the step' ? '' : perTokenLayerHidden(f(r) - r.baseBytes, r));
    if (small && large) {
      // above(L) = a + b·L from the two depths; TinyLlama: (a + 22 b) scaled to its tokens · hidden.
      const b = ((f(large) - large.baseBytes) - (f(small) - small.baseBytes)) / (large.shape.layers - small.shape.layers);
      const a = f(small) - small.baseBytes - b * small.shape.layers;
      const tl = name === 'before the step' ? baseTl : baseTl + (a + b * target.layers) * scaleToTarget(m);
      row.push(name === 'before the step' ? '' : b / MIB, name === 'before the step' ? '' : b / (m.tokens * m.shape.hidden), tl / GIB);
    }
    rows.push(row);
  }
  lines.push(table(rows));
  if (small && large) {
    lines.push('   (TinyLlama column: its weights, adapters and AdamW state computed from its shapes, plus what the two depths give per layer and');
    lines.push('    outside the layers, scaled by tokens · hidden; the small shape has TinyLlama\'s proportions, so every activation scales so)');
  }

  lines.push('', `What the tape holds at the end of the forward (L=${m.shape.layers}; distinct storages, each counted once for the first op saving it):`);
  const saved: (string | number)[][] = [['op (saved)', 'dtype', 'width', 'storages', 'KiB', 'B/token/layer', 'hidden units', 'TinyLlama GiB']];
  const tl = widthsOf(target, 64, w.lambda);
  let layerBytes = 0;
  let tlBytes = 0;
  for (const g of m.saved) {
    if (g.weight) {
      saved.push([`(the model's own weights) ${g.op} ${g.role}`, g.dtype, '', g.storages, g.bytes / 1024, '', '', '']);
      continue;
    }
    const perTok = g.inLayer ? g.bytes / (m.tokens * m.shape.layers) : g.bytes / m.tokens;
    const extrapolated = extrapolate(g.bytes, g.width, g.inLayer, m, tl);
    if (g.inLayer) layerBytes += g.bytes;
    tlBytes += extrapolated;
    saved.push([`${g.inLayer ? '' : '(outside the layers) '}${g.op} ${g.role}`, g.dtype, g.width, g.storages, g.bytes / 1024,
      g.inLayer ? perTok : '', g.inLayer ? perTok / m.shape.hidden : '', extrapolated / GIB]);
  }
  saved.push(['total', '', '', '', m.savedBytes / 1024, layerBytes / (m.tokens * m.shape.layers),
    layerBytes / (m.tokens * m.shape.layers * m.shape.hidden), tlBytes / GIB]);
  lines.push(table(saved));

  const min = minimumPerLayer('bfloat16', 'float32');
  const minSmall = bytesPerToken(min, w);
  const minTl = bytesPerToken(min, tl);
  lines.push('', 'Minimum backward needs per layer and token (adapters on all seven projections, frozen base, cheap functions of kept tensors rebuilt):');
  lines.push(table([['tensor', 'dtype', 'width', 'count', 'B/token here', 'B/token TinyLlama'],
    ...min.map((it) => [it.what, it.dtype, it.width, it.count, it.count * itemSize(it.dtype) * widthValue(it.width, w), it.count * itemSize(it.dtype) * widthValue(it.width, tl)]),
    ['total', '', '', '', minSmall, minTl]]));
  lines.push(`   = ${formatNumber(minSmall / m.shape.hidden)} hidden units here, measured ${formatNumber(layerBytes / (m.tokens * m.shape.layers * m.shape.hidden))}; ` +
    `at TinyLlama 8 x 512 x 22 layers: ${formatNumber((minTl * target.batch * target.seq * target.layers) / GIB)} GiB ` +
    `(the measured tape extrapolated by width: ${formatNumber(tlBytes / GIB)} GiB with what lies outside the layers, the logits included)`);
  lines.push(`   TinyLlama before the step: ${formatNumber(baseTl / GIB)} GiB; the adapters' gradients at the end of backward: ${formatNumber(targetGradBytes(w) / GIB)} GiB`);
  console.log(lines.join('\n') + '\n');
}

/** `bytes` measured at `m`'s shape, rescaled to TinyLlama's widths, tokens and depth. */
function extrapolate(bytes: number, symbol: Parameters<typeof widthValue>[0], inLayer: boolean, m: StepMemory, tl: Widths): number {
  if (symbol === 'const') return bytes;
  const here = widthValue(symbol, m.widths);
  const there = widthValue(symbol, tl);
  const tokensThere = target.batch * target.seq;
  const layers = inLayer ? target.layers / m.shape.layers : 1;
  return (bytes / here) * there * (tokensThere / m.tokens) * layers;
}

describe('training-step memory', () => {
  beforeAll(async () => {
    // On a GPU the cuda device comes from the addon package.
    if (process.env.BLORA_BENCH_TRAIN_DEVICE === 'cuda') await import('@blora/cuda-kernels');
  });
  for (const variant of variants as TrainVariant[]) {
    it(`${variant}: peaks by phase and what the tape holds`, () => {
      const runs = depths.map((layers) => measureStep(variant, smallConfig({ BLORA_BENCH_TRAIN_LAYERS: String(layers), ...pick(process.env) })));
      report(variant, runs);
      expect(runs.every((r) => Number.isFinite(r.loss))).toBe(true);
    });
  }
});

/** The BLORA_BENCH_TRAIN_* variables set in `env` (they override the small shape). */
function pick(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('BLORA_BENCH_TRAIN_') && k !== 'BLORA_BENCH_TRAIN_LAYERS'));
}
