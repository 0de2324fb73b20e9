// Token-by-token generation of a LLaMA-7B-shaped model (random NF4 weights, adapters attached on
// every block projection) on our engine: `generate` as `blora generate` runs it, the host clock
// around whole calls. Two depths are timed, so the cost of one decoder layer and the fixed part
// (embedding, final norm, lm_head, sampling) separate; the 32-layer figure is extrapolated from
// them. Each depth runs with the 4-bit products of one token from the bitsandbytes layout and
// from the decode tiles (`useDecodeTiles`), and on cuda each of those op by op and as a recorded
// decode step (`generate`'s `graph`, a CUDA graph replayed each token). First, the host cost of single op calls (a one-token
// 4-bit product, a small add), which bounds generation. Run through bench/gpu/vitest.decode.config.ts;
// writes JSON to $BLORA_BENCH_OUT. BLORA_BENCH_DECODE_DEVICE=cpu runs a tiny model as a smoke check.
// Last, the first token of longer prompts (BLORA_BENCH_DECODE_PREFILL lengths, 64 and 512 tokens):
// the prompt's forward pass, whose 4-bit products run on the fused GEMM.
// BLORA_BENCH_DECODE_PROFILE=<file.cpuprofile> also records a V8 CPU profile of one timed generate
// call (the first variant, deeper model, decode tiles, op by op), for finding where the host time goes.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  add, attention, captureGraph, contiguous, copyIntoAt, matmul, mul, poolLinear, rand, randint, randn, rmsNorm, rope, setOpObserver, silu, siluMul, tensor, tidy,
  transpose,
} from '@blora/tensor';
import { NF4_CODE, nf4DecodeTiles, nf4Matmul, nf4MatmulTiles } from '@blora/quant';
import { noGrad } from '@blora/autograd';
import { DecodeStep, KVCache, argmaxOf, generate } from '@blora/models';
import { setLowRankDecoding, useDecodeTiles } from '@blora/blora';
import { cudaAvailable, cudaDeviceInfo, cudaUnavailableReason, emptyCache, setDependentLaunches, synchronize } from '@blora/cuda-kernels';
import { readTrainConfig, SMOKE_SHAPE, type TrainShape, type TrainVariant } from './train-config.js';
import { buildTrainModel } from './train-model.js';
import { median } from './timing.js';
import { newReport, writeReport, type BenchResult } from './report.js';

/** LLaMA-7B: hidden 4096, MLP 11008, 32 heads (no grouped keys and values), vocabulary 32000. */
const LLAMA7B_SHAPE: TrainShape = { layers: 32, hidden: 4096, intermediate: 11008, heads: 32, kvHeads: 32, vocab: 32000, batch: 1, seq: 1 };

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const env = process.env;
const device = env.BLORA_BENCH_DECODE_DEVICE === 'cpu' ? 'cpu' : 'cuda';
const shape = device === 'cpu' ? SMOKE_SHAPE : LLAMA7B_SHAPE;
const depths = (env.BLORA_BENCH_DECODE_LAYERS || (device === 'cpu' ? '1,2' : '2,8')).split(',').map((s) => Number(s.trim()));
const variants = (env.BLORA_BENCH_DECODE_VARIANTS || 'qlora,qblora').split(',').map((s) => s.trim()) as TrainVariant[];
/** Tokens timed per generate call (beyond the first, which also runs the prompt). */
const timedTokens = Number(env.BLORA_BENCH_DECODE_TOKENS || (device === 'cpu' ? 3 : 64));
const repeats = Number(env.BLORA_BENCH_DECODE_REPEATS || (device === 'cpu' ? 3 : 7));
const promptLength = 8;
/** Prompt lengths whose first token (the prompt's forward pass) is timed. */
const prefillLengths = (env.BLORA_BENCH_DECODE_PREFILL || (device === 'cpu' ? '4,6' : '64,512')).split(',').map((s) => Number(s.trim()));
const outFile = env.BLORA_BENCH_OUT || 'bench/results/gpu-decode-ours.json';
const outPath = isAbsolute(outFile) ? outFile : resolve(repoRoot, outFile);
const report = newReport();
const GROUP = 'decode';
const profileFile = env.BLORA_BENCH_DECODE_PROFILE || '';

for (const d of depths) if (!Number.isInteger(d) || d < 1) throw new Error(`BLORA_BENCH_DECODE_LAYERS: depths must be positive integers, got ${depths}`);
if (depths.length !== 2 || depths[0]! >= depths[1]!) throw new Error('BLORA_BENCH_DECODE_LAYERS: give two depths, the smaller first (e.g. 2,4)');
for (const p of prefillLengths) if (!Number.isInteger(p) || p < 1) throw new Error(`BLORA_BENCH_DECODE_PREFILL: lengths must be positive integers, got ${prefillLengths}`);
if (!Number.isInteger(timedTokens) || timedTokens < 1) throw new Error(`BLORA_BENCH_DECODE_TOKENS must be a positive integer, got ${timedTokens}`);

/**
 * Layouts of the one-token products (decode tiles or not), how steps run (a recorded graph or not),
 * how kernels start (plain: each launch after the kernel before has finished; otherwise dependent
 * launches, the default) and how an adapter's B product runs (dense: a launch of its own before the
 * GEMV; otherwise in the GEMV's epilogue as a low-rank addend, the default).
 */
interface Mode { tiles: boolean; graph: boolean; plain?: boolean; dense?: boolean }
const modes: Mode[] = device === 'cuda'
  ? [{ tiles: false, graph: false }, { tiles: true, graph: false }, { tiles: false, graph: true }, { tiles: true, graph: true, dense: true },
    { tiles: true, graph: true }, { tiles: true, graph: true, plain: true }]
  : [{ tiles: false, graph: false }, { tiles: true, graph: false }];
const modeName = ({ tiles, graph, plain, dense }: Mode) => `${tiles ? 'tiles' : 'bnb'}${graph ? '.graph' : ''}${plain ? '.plain' : ''}${dense ? '.dense' : ''}`;

/** Milliseconds per generated token past the first, and ops dispatched per such token. */
interface TokenCost {
  readonly ms: number;
  readonly opsPerToken: number;
  readonly samples: number[];
}

/** Host milliseconds of one call. */
function timed(run: () => void): number {
  const t0 = performance.now();
  run();
  return performance.now() - t0;
}

/**
 * The cost of one more token: generate 1 token and 1 + timedTokens tokens from the same prompt
 * (every token read back to the host, as `generate` does), the difference over timedTokens.
 */
function tokenCost(model: Parameters<typeof generate>[0], prompt: number[], graph: boolean): TokenCost {
  const options = { eosTokenIds: [] as number[], graph };
  const run = (tokens: number) => generate(model, prompt, { ...options, maxNewTokens: tokens });
  for (let w = 0; w < 3; w++) run(1 + Math.min(timedTokens, 8));
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const short = timed(() => run(1));
    const long = timed(() => run(1 + timedTokens));
    samples.push((long - short) / timedTokens);
  }
  let ops = 0;
  const previous = setOpObserver((record) => {
    ops++;
    previous?.(record);
  });
  let opsShort = 0;
  try {
    run(1);
    opsShort = ops;
    ops = 0;
    run(1 + timedTokens);
  } finally {
    setOpObserver(previous);
  }
  return { ms: median(samples), opsPerToken: (ops - opsShort) / timedTokens, samples };
}

/**
 * A recorded step's cost a token (host clock) read back two ways, in alternating batches of
 * timedTokens greedy tokens, medians of `repeats`: the vocabulary's logits, then argmaxOf on the
 * host (DecodeStep.next); the argmax found on the device alone (DecodeStep.nextGreedy).
 */
function greedyReadback(model: Parameters<typeof generate>[0], prompt: number[]): { logits: number; argmax: number } {
  const cache = new KVCache(model.config.numHiddenLayers, { capacity: prompt.length + 2 * repeats * timedTokens + 2 });
  let step: DecodeStep | null = null;
  try {
    noGrad(() => tidy(() => void model.hiddenStates([prompt], { kvCache: cache })));
    step = new DecodeStep(model, cache, { graph: true });
    const s = step;
    let token = s.nextGreedy(prompt[prompt.length - 1]!);  // records the step
    const [viaLogits, viaArgmax]: [number[], number[]] = [[], []];
    for (let r = 0; r < repeats; r++) {
      viaLogits.push(timed(() => { for (let i = 0; i < timedTokens; i++) token = argmaxOf(s.next(token)); }) / timedTokens);
      viaArgmax.push(timed(() => { for (let i = 0; i < timedTokens; i++) token = s.nextGreedy(token); }) / timedTokens);
    }
    return { logits: median(viaLogits), argmax: median(viaArgmax) };
  } finally {
    step?.dispose();
    cache.dispose();
  }
}

/** Records a V8 CPU profile of `run` (sampled every 50 µs) into `file`. */
function profiled(file: string, run: () => void): void {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) => {
    let result: unknown;
    session.post(method, params, (error, value) => {
      if (error) throw error;
      result = value;
    });
    return result as { profile?: unknown };
  };
  try {
    post('Profiler.enable');
    post('Profiler.setSamplingInterval', { interval: 50 });
    post('Profiler.start');
    run();
    writeFileSync(file, JSON.stringify(post('Profiler.stop').profile));
    console.log(`decode: wrote a CPU profile to ${file}`);
  } finally {
    session.disconnect();
  }
}

describe('token-by-token generation of a LLaMA-7B-shaped model (random NF4 weights)', () => {
  const onDevice = device === 'cpu' || cudaAvailable();
  if (!onDevice) {
    report.skipped = true;
    report.reason = `cuda is not available: ${cudaUnavailableReason()}`;
  }
  report.config = { device, shape, depths, variants, timedTokens, repeats, promptLength, prefillLengths };
  afterAll(() => {
    if (device === 'cuda' && cudaAvailable()) report.gpu = cudaDeviceInfo();
    writeReport(report, outPath);
    console.log(`decode: wrote ${outPath}${report.skipped ? ` (skipped: ${report.reason})` : ''}`);
  });

  it('times the host cost of one op call: a one-token 4-bit product and a small add, queued back to back', (ctx) => {
    if (report.skipped || device !== 'cuda') ctx.skip(report.skipped ? report.reason : 'a cuda measurement');
    const [outF, inF] = [4096, 4096];
    const attrs = { outFeatures: outF, inFeatures: inF, blocksize: 64 };
    const [codes, absmax, table, x] = tidy(() => [
      randint(0, 256, [(outF * inF) / 2], { dtype: 'uint8', device, seed: 1 }),
      add(mul(rand([(outF * inF) / 64], { device, seed: 2 }), 0.04), 0.01),
      tensor(Array.from(NF4_CODE), { device }),
      randn([1, inF], { dtype: 'bfloat16', device, seed: 3 }),
    ]);
    const tiles = nf4DecodeTiles(codes!, absmax!, attrs);
    const settled = { ...attrs, settled: true };
    const calls: Record<string, () => void> = {
      nf4MatmulTiles: () => nf4MatmulTiles(x!, tiles, table!, settled).dispose(),
      nf4Matmul: () => nf4Matmul(x!, codes!, absmax!, table!, settled).dispose(),
      add: () => add(x!, x!).dispose(),
    };
    try {
      for (const [name, call] of Object.entries(calls)) {
        for (let i = 0; i < 2000; i++) call();
        synchronize();
        const n = 20000;
        const samples: number[] = [];
        for (let r = 0; r < repeats; r++) {
          const host = timed(() => {
            for (let i = 0; i < n; i++) call();
          });
          synchronize();
          samples.push((1000 * host) / n);
        }
        report.results.push({
          id: `decode.op_call.${name}`, group: GROUP, label: `host cost of one ${name} call (1 x ${inF} bfloat16${name === 'add' ? '' : `, ${outF} x ${inF} NF4`})`,
          unit: 'µs/call', value: median(samples), repeats,
          method: `${n} calls queued back to back, host clock up to the last call's return (its device work may still run), median of ${repeats}`,
        } satisfies BenchResult);
      }
    } finally {
      for (const t of [codes!, absmax!, table!, x!, tiles.codes, tiles.absmax]) t.dispose();
    }
  });

  it('times the device cost of the ops of one layer of one token, each recorded 50 times in a graph and replayed', (ctx) => {
    if (report.skipped || device !== 'cuda') ctx.skip(report.skipped ? report.reason : 'a cuda measurement');
    const [hidden, inter, heads, dim, r, cap] = [4096, 11008, 32, 128, 64, 72];
    const attrs = { outFeatures: hidden, inFeatures: hidden, blocksize: 64 };
    const bf16 = { dtype: 'bfloat16' as const, device };
    const t = tidy(() => ({
      codes: randint(0, 256, [(hidden * hidden) / 2], { dtype: 'uint8', device, seed: 1 }),
      absmax: add(mul(rand([(hidden * hidden) / 64], { device, seed: 2 }), 0.04), 0.01),
      table: tensor(Array.from(NF4_CODE), { device }),
      x: randn([1, hidden], { ...bf16, seed: 3 }),
      xUp: randn([1, inter], { ...bf16, seed: 4 }),
      lmHead: randn([32000, hidden], { ...bf16, seed: 13 }),
      lmHeadStoredTransposed: transpose(contiguous(transpose(randn([32000, hidden], { ...bf16, seed: 13 })))),
      a: randn([r, hidden], { device, seed: 5 }),
      aStoredTransposed: transpose(contiguous(transpose(randn([r, hidden], { device, seed: 5 })))),
      b: randn([hidden, r], { device, seed: 6 }),
      bStoredTransposed: transpose(contiguous(transpose(randn([hidden, r], { device, seed: 6 })))),
      h: randn([1, r], { device, seed: 7 }),
      norm: randn([hidden], { ...bf16, seed: 8 }),
      q: randn([1, heads, 1, dim], { ...bf16, seed: 9 }),
      kv: randn([1, heads, cap, dim], { ...bf16, seed: 10 }),
      kNew: randn([1, heads, 1, dim], { ...bf16, seed: 11 }),
      cos: rand([1, dim / 2], { device, seed: 12 }),
      length: tensor([64], { dtype: 'int32', device }),
      position: tensor([63], { dtype: 'int32', device }),
    }));
    const tiles = nf4DecodeTiles(t.codes, t.absmax, attrs);
    const z = tidy(() => matmul(t.h, transpose(t.b)));
    const settled = { ...attrs, settled: true };
    const ops: Record<string, () => unknown> = {
      'nf4MatmulTiles 4096x4096 with the adapter term': () => nf4MatmulTiles(t.x, tiles, t.table, settled, { values: z, lambda: 1, scale: 0.25 }),
      'nf4MatmulTiles 4096x4096 with the adapter term low-rank (B in the epilogue)': () =>
        nf4MatmulTiles(t.x, tiles, t.table, settled, { values: t.h, factor: t.b, lambda: 1, scale: 0.25 }),
      'nf4MatmulTiles 4096x4096': () => nf4MatmulTiles(t.x, tiles, t.table, settled),
      'poolLinear [1, 4096] x [64, 4096]ᵀ (adapter A)': () => poolLinear(t.x, t.a, 1),
      'poolLinearGemm [1, 4096] x [64, 4096]ᵀ, A stored transposed (the tiled GEMM)': () => poolLinear(t.x, t.aStoredTransposed, 1),
      'matmul [1, 64] x [4096, 64]ᵀ (adapter B)': () => matmul(t.h, transpose(t.b)),
      'matmulGemm [1, 64] x [4096, 64]ᵀ, B stored transposed (the tiled GEMM)': () => matmul(t.h, transpose(t.bStoredTransposed)),
      'rmsNorm [1, 4096]': () => rmsNorm(t.x, t.norm, 1e-5),
      'rope [1, 32, 1, 128]': () => rope(t.q, t.cos, t.cos),
      'copyIntoAt [1, 32, 1, 128]': () => copyIntoAt(t.kv, 2, t.position, t.kNew),
      'attention 32 heads x 128, 64 of 72 keys': () => attention(t.q, t.kv, t.kv, { causal: true, keyLength: t.length }),
      'silu * up [1, 11008]': () => mul(silu(t.xUp), t.xUp),
      'siluMul [1, 11008] (SwiGLU in one op)': () => siluMul(t.xUp, t.xUp),
      'add [1, 4096]': () => add(t.x, t.x),
      'lmHead matmul [1, 4096] x [32000, 4096]ᵀ, bfloat16': () => matmul(t.x, transpose(t.lmHead)),
      'lmHeadGemm matmul [1, 4096] x [32000, 4096]ᵀ, bfloat16, stored transposed (the tensor-core GEMM)': () => matmul(t.x, transpose(t.lmHeadStoredTransposed)),
    };
    const calls = 50;
    try {
      // Each op recorded with dependent launches (the default) and with plain ones, side by side.
      for (const [name, op] of Object.entries(ops)) {
        for (const plain of [false, true]) {
          const previous = plain ? setDependentLaunches(false) : undefined;
          let graph: ReturnType<typeof captureGraph>;
          try {
            tidy(() => void op());  // first use: lazy set-up outside the recording
            graph = captureGraph(device, () => tidy(() => {
              for (let i = 0; i < calls; i++) op();
            }));
          } finally {
            if (previous !== undefined) setDependentLaunches(previous);
          }
          try {
            for (let w = 0; w < 3; w++) graph.replay();
            synchronize();
            const samples: number[] = [];
            for (let rep = 0; rep < repeats; rep++) {
              const t0 = performance.now();
              for (let i = 0; i < 10; i++) graph.replay();
              synchronize();
              samples.push((1000 * (performance.now() - t0)) / (10 * calls));
            }
            report.results.push({
              id: `decode.device.${name.split(' ')[0]}${name.includes('low-rank') ? '+lowRankAddend' : name.includes('adapter term') ? '+addend' : ''}` +
                `${plain ? '.plain' : ''}`, group: GROUP,
              label: `device time of ${name} (one token)${plain ? ', plain launches' : ''}`,
              unit: 'µs/op', value: median(samples), repeats,
              method: `${calls} calls recorded in one graph, 10 replays timed to synchronize(), median of ${repeats}; ` +
                (plain ? 'each kernel launched after the one before has finished' : 'consecutive calls overlap where the kernels allow (dependent launches)'),
            } satisfies BenchResult);
          } finally {
            graph.dispose();
          }
        }
      }
    } finally {
      for (const x of [...Object.values(t), tiles.codes, tiles.absmax, z]) x.dispose();
    }
  });

  it('times a generated token at two depths, from the bitsandbytes layout and from the decode tiles', (ctx) => {
    if (report.skipped) ctx.skip(report.reason);
    const base = readTrainConfig({ ...env, BLORA_BENCH_TRAIN_DEVICE: device, BLORA_BENCH_TRAIN_SMOKE: device === 'cpu' ? '1' : '0' });
    const config = { ...base, shape, dtype: 'bfloat16' as const, checkpointing: false };
    const prompt = Array.from({ length: promptLength }, (_, i) => (7 * i + 3) % shape.vocab);
    const costs = new Map<string, TokenCost>();
    for (const variant of variants) {
      for (const layers of depths) {
        const built = buildTrainModel(variant, config, layers);
        try {
          built.model.train(false);
          for (const mode of modes) {
            const { tiles, graph, plain, dense } = mode;
            useDecodeTiles(built.model, tiles);
            const previous = plain ? setDependentLaunches(false) : undefined;
            const lowRank = dense ? setLowRankDecoding(false) : undefined;
            let cost: TokenCost;
            try {
              cost = tokenCost(built.model, prompt, graph);
            } finally {
              if (previous !== undefined) setDependentLaunches(previous);
              if (lowRank !== undefined) setLowRankDecoding(lowRank);
            }
            const layout = modeName(mode);
            if (profileFile && tiles && !graph && !plain && layers === depths[1] && variant === variants[0]) {
              profiled(isAbsolute(profileFile) ? profileFile : resolve(repoRoot, profileFile), () =>
                generate(built.model, prompt, { eosTokenIds: [], maxNewTokens: 1 + timedTokens, graph: false }));
            }
            costs.set(`${variant}.${layout}.${layers}`, cost);
            report.results.push({
              id: `decode.${variant}.${layout}.L${layers}`, group: GROUP,
              label: `${variant} ${layers} layers, ${tiles ? 'decode tiles' : 'bitsandbytes layout'}, ${graph ? 'recorded step (graph)' : 'op by op'}` +
                `${plain ? ', plain launches' : ''}${dense ? ', adapter B product launched apart' : ''}`,
              unit: 'ms/token', value: cost.ms, medianMs: cost.ms, minMs: Math.min(...cost.samples), maxMs: Math.max(...cost.samples),
              repeats, method: `generate(): host clock, (time of ${1 + timedTokens} tokens - time of 1) / ${timedTokens}, median of ${repeats}; ` +
                `${cost.opsPerToken.toFixed(1)} ops dispatched a token; ${built.adapter}; ${built.base}`,
            } satisfies BenchResult);
          }
          if (device === 'cuda' && layers === depths[0]) {
            useDecodeTiles(built.model, true);
            const readback = greedyReadback(built.model, prompt);
            const method = `a recorded step (decode tiles), ${timedTokens} tokens a batch, batches alternating, median of ${repeats}; host clock`;
            report.results.push(
              { id: `decode.${variant}.readback.logits.L${layers}`, group: GROUP, unit: 'ms/token', value: readback.logits, repeats, method,
                label: `${variant} ${layers} layers, a greedy token read back as logits (argmax on the host)` },
              { id: `decode.${variant}.readback.argmax.L${layers}`, group: GROUP, unit: 'ms/token', value: readback.argmax, repeats, method,
                label: `${variant} ${layers} layers, a greedy token read back as its argmax (found on the device)` },
            );
          }
        } finally {
          useDecodeTiles(built.model, false);
          built.dispose();
          if (device === 'cuda') emptyCache();
        }
      }
      // One layer's cost and the rest, from the two depths; the full depth extrapolated.
      const [low, high] = depths as [number, number];
      for (const layout of modes.map(modeName)) {
        const a = costs.get(`${variant}.${layout}.${low}`)!;
        const b = costs.get(`${variant}.${layout}.${high}`)!;
        const perLayer = (b.ms - a.ms) / (high - low);
        const fixed = a.ms - low * perLayer;
        const full = fixed + shape.layers * perLayer;
        const opsPerLayer = (b.opsPerToken - a.opsPerToken) / (high - low);
        const method = `from the ${low}- and ${high}-layer figures; ${opsPerLayer.toFixed(1)} ops a layer a token`;
        report.results.push(
          { id: `decode.${variant}.${layout}.per_layer`, group: GROUP, label: `${variant} one layer, ${layout}`, unit: 'ms/token', value: perLayer, method },
          { id: `decode.${variant}.${layout}.fixed`, group: GROUP, label: `${variant} embedding + lm_head + sampling, ${layout}`, unit: 'ms/token', value: fixed, method },
          { id: `decode.${variant}.${layout}.L${shape.layers}`, group: GROUP, label: `${variant} ${shape.layers} layers (extrapolated), ${layout}`,
            unit: 'tokens/s', value: 1000 / full, method: `${method}; ${full.toFixed(2)} ms a token` },
        );
        expect(Number.isFinite(perLayer)).toBe(true);
      }
    }
    for (const r of report.results) console.log(`${r.label}: ${r.value.toFixed(3)} ${r.unit} (${r.method.split(';')[0]})`);
  });

  it('times the first token of longer prompts (the prompt\'s forward pass) at two depths', (ctx) => {
    if (report.skipped) ctx.skip(report.reason);
    const base = readTrainConfig({ ...env, BLORA_BENCH_TRAIN_DEVICE: device, BLORA_BENCH_TRAIN_SMOKE: device === 'cpu' ? '1' : '0' });
    const config = { ...base, shape, dtype: 'bfloat16' as const, checkpointing: false };
    const [low, high] = depths as [number, number];
    for (const variant of variants) {
      const ms = new Map<string, number>();
      for (const layers of depths) {
        const built = buildTrainModel(variant, config, layers);
        try {
          built.model.train(false);
          for (const length of prefillLengths) {
            const prompt = Array.from({ length }, (_, i) => (7 * i + 3) % shape.vocab);
            // The token is read back to the host, so the call's time includes the device's work.
            const run = () => void generate(built.model, prompt, { eosTokenIds: [], maxNewTokens: 1, graph: false });
            for (let w = 0; w < 2; w++) run();
            const samples = Array.from({ length: repeats }, () => timed(run));
            ms.set(`${length}.${layers}`, median(samples));
            report.results.push({
              id: `prefill.${variant}.P${length}.L${layers}`, group: GROUP, label: `${variant} ${layers} layers, first token of a ${length}-token prompt`,
              unit: 'ms', value: median(samples), medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), repeats,
              method: `generate(maxNewTokens 1): host clock, median of ${repeats}; ${built.adapter}; ${built.base}`,
            } satisfies BenchResult);
          }
        } finally {
          built.dispose();
          if (device === 'cuda') emptyCache();
        }
      }
      for (const length of prefillLengths) {
        const perLayer = (ms.get(`${length}.${high}`)! - ms.get(`${length}.${low}`)!) / (high - low);
        const full = ms.get(`${length}.${low}`)! + (shape.layers - low) * perLayer;
        report.results.push({
          id: `prefill.${variant}.P${length}.L${shape.layers}`, group: GROUP, unit: 'ms', value: full,
          label: `${variant} ${shape.layers} layers (extrapolated), first token of a ${length}-token prompt`,
          method: `from the ${low}- and ${high}-layer figures; ${perLayer.toFixed(3)} ms a layer`,
        });
        expect(Number.isFinite(full)).toBe(true);
      }
    }
    for (const r of report.results.filter((x) => x.id.startsWith('prefill.'))) console.log(`${r.label}: ${r.value.toFixed(3)} ${r.unit}`);
  });
});
