// The fused 4-bit kernels (tensor-core GEMV for M <= 16, fused dequantize + GEMM above) against
// our own dequantize-then-GEMM, for NF4 (blocksize 64) and INT4 (groups of 64, float16 scales)
// weights at the LLaMA-7B layer shapes, bfloat16 activations. Kernel figures are device time:
// one call per input copy (copies total >= l2Multiple x L2) is captured in a CUDA graph and
// replayed back to back between two events. The op-level figures at M <= 16 (host clock around
// nf4Matmul / intMatmul calls) add our JavaScript dispatch. Run through
// bench/gpu/quant.vitest.config.ts; writes JSON to $BLORA_BENCH_QUANT_OUT. bench/gpu/peers_quant.py
// measures PyTorch on the same shapes.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { add, clone, empty, mul, narrow, rand, randint, tensor, tidy, transpose, type Attrs, type Tensor } from '@blora/tensor';
import { int4DecodeTiles, intMatmul, NF4_CODE, nf4DecodeTiles, nf4Matmul, type FourBitOpAttrs, type IntOpAttrs } from '@blora/quant';
import {
  cudaAvailable, cudaDeviceInfo, cudaUnavailableReason, deviceTimePerReplay, emptyCache, matmulInto, quantDequantizeInto,
  quantMatmulInto, quantMatmulTilesInto, setQuantGemmPath, synchronize, type QuantFormatName,
} from '@blora/cuda-kernels';
import { copiesFor, LAYER_WEIGHTS, readConfig } from './config.js';
import { randomOnDevice } from './inputs.js';
import { median, timeDeviceCalls } from './timing.js';
import { newReport, writeReport, type BenchResult } from './report.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const config = readConfig();
const outFile = process.env.BLORA_BENCH_QUANT_OUT || 'bench/results/gpu-quant-ours.json';
const outPath = isAbsolute(outFile) ? outFile : resolve(repoRoot, outFile);
const tokenCounts = (process.env.BLORA_BENCH_QUANT_M || '1,16,256,4096').split(',').map((s) => Number(s.trim()));
const formats = (process.env.BLORA_BENCH_QUANT_FORMATS || 'nf4,int4').split(',').map((s) => s.trim()) as ('nf4' | 'int4')[];
const report = newReport();
const GROUP = 'quant';
const BLOCK = 64;

type Direction = 'xWt' | 'dyW';

/** One quantized weight on the device: the op's tensors (kept by tidy, which returns them) and attrs. */
interface Weight {
  format: 'nf4' | 'int4';
  parts: Tensor[];
  /** The op's attrs: FourBitOpAttrs for nf4, IntOpAttrs for int4. */
  attrs: Attrs;
}

let seed = 1;

function makeWeight(format: 'nf4' | 'int4', outF: number, inF: number): Weight {
  const n = outF * inF;
  return tidy(() => {
    const codes = randint(0, 256, [n / 2], { dtype: 'uint8', device: 'cuda', seed: seed++ });
    if (format === 'nf4') {
      const absmax = add(mul(rand([n / BLOCK], { device: 'cuda', seed: seed++ }), 0.04), 0.01);
      const table = tensor(Array.from(NF4_CODE), { device: 'cuda' });
      return { format, parts: [codes, absmax, table], attrs: { outFeatures: outF, inFeatures: inF, blocksize: BLOCK } };
    }
    const blocks = [outF, inF / BLOCK];
    const scales = mul(rand(blocks, { dtype: 'float16', device: 'cuda', seed: seed++ }), 0.004);
    const offsets = mul(add(rand(blocks, { dtype: 'float16', device: 'cuda', seed: seed++ }), -0.5), 0.06);
    return {
      format, parts: [codes, scales, offsets],
      attrs: { outFeatures: outF, inFeatures: inF, blockRows: 1, blockCols: BLOCK },
    };
  });
}

function disposeAll(ts: readonly Tensor[]): void {
  for (const t of ts) t.dispose();
}

/** Device time wanted per timed sample: long enough for the clock, short enough for 48 cases. */
const SAMPLE_MS = 20;

/**
 * Median device ms of one call of `enqueue(i)`, rotating i over `copies`. One untimed-size
 * replay first sizes the number of replays per sample, so slow kernels (a large-M GEMM takes
 * milliseconds) are not replayed as often as a GEMV.
 */
function graphMs(enqueue: (i: number) => void, copies: number): { medianMs: number; minMs: number; maxMs: number; repeats: number; inner: number } {
  const rotation = () => {
    for (let i = 0; i < copies; i++) enqueue(i);
  };
  const onceMs = deviceTimePerReplay(rotation, 1);
  const replays = Math.max(1, Math.min(200, Math.ceil(SAMPLE_MS / Math.max(onceMs, 1e-3))));
  const samples: number[] = [];
  for (let r = 0; r < config.repeats; r++) samples.push(deviceTimePerReplay(rotation, replays) / copies);
  return { medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), repeats: config.repeats, inner: replays * copies };
}

function measure(id: string, body: () => BenchResult): void {
  try {
    const result = body();
    report.results.push(result);
    console.log(`  ${result.label.padEnd(60)} ${result.value.toFixed(2).padStart(10)} ${result.unit}`);
  } catch (e) {
    const error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    report.errors.push({ group: GROUP, id, error });
    console.log(`  ${id}: failed: ${error}`);
  } finally {
    emptyCache();
  }
}

/** Largest |a - b| / (|b| + 1) over rows 0, the middle and the last of two [M, N] results. */
function spotDifference(a: Tensor, b: Tensor): number {
  const rows = a.shape[0]!;
  let worst = 0;
  for (const r of new Set([0, rows >> 1, rows - 1])) {
    const [x, y] = tidy(() => [clone(narrow(a, 0, r, 1)).toFloat64Array(), clone(narrow(b, 0, r, 1)).toFloat64Array()]);
    for (let i = 0; i < x!.length; i++) worst = Math.max(worst, Math.abs(x![i]! - y![i]!) / (Math.abs(y![i]!) + 1));
  }
  return worst;
}

let copyGBs = 0;

function benchCopy(): void {
  measure('copy.d2d', () => {
    const n = Math.floor(config.copyBytes / 4);
    const src = randomOnDevice([n], 'float32');
    try {
      const t = timeDeviceCalls(() => clone(src).dispose(), synchronize, { repeats: config.repeats, warmup: config.warmup });
      copyGBs = (2 * n * 4) / (t.medianMs * 1e-3) / 1e9;
      return { id: 'copy.d2d', group: 'copy', label: 'device-to-device copy (reference)', unit: 'GB/s', value: copyGBs, ...t, bytes: 2 * n * 4, method: 'clone(x), float32; bytes read + written' };
    } finally {
      src.dispose();
    }
  });
}

function benchShape(format: 'nf4' | 'int4', outF: number, inF: number, m: number, direction: Direction): void {
  const [k, n] = direction === 'xWt' ? [inF, outF] : [outF, inF];
  const shape = `${m}x${k}x${n}`;
  const flops = 2 * m * k * n;
  const name: QuantFormatName = format;
  const weightBytes = outF * inF / 2 + (outF * inF / BLOCK) * 4;
  const copies = copiesFor(weightBytes + m * k * 2, config, 16);
  const weights: Weight[] = [];
  const owned: Tensor[] = [];
  try {
    for (let i = 0; i < copies; i++) weights.push(makeWeight(format, outF, inF));
    const xs = Array.from({ length: copies }, () => randomOnDevice([m, k], 'bfloat16'));
    const ys = Array.from({ length: copies }, () => empty([m, n], { dtype: 'bfloat16', device: 'cuda' }));
    const dense = empty([outF, inF], { dtype: 'bfloat16', device: 'cuda' });
    const denseOperand = direction === 'xWt' ? transpose(dense, 0, 1) : dense;
    const reference = empty([m, n], { dtype: 'bfloat16', device: 'cuda' });
    owned.push(...xs, ...ys, dense, reference);
    if (denseOperand !== dense) owned.push(denseOperand);
    const transposed = direction === 'dyW';
    // The weights are made before any timing, so every product is settled (as FourBitLinear's
    // and IntBlockLinear's are from their second product on).
    const settledAttrs = weights.map((w) => ({ ...w.attrs, settled: true }));
    const fused = (i: number) => quantMatmulInto(name, xs[i]!, weights[i]!.parts, ys[i]!, settledAttrs[i]!, transposed);
    const unfused = (i: number, out: Tensor) => {
      quantDequantizeInto(name, weights[i]!.parts, dense, weights[i]!.attrs);
      matmulInto(xs[i]!, denseOperand, out);
    };
    // Both paths once, outside any graph: warms up and gives the check (not settled: the first product).
    quantMatmulInto(name, xs[0]!, weights[0]!.parts, ys[0]!, weights[0]!.attrs, transposed);
    unfused(0, reference);
    synchronize();
    const difference = spotDifference(ys[0]!, reference);
    const bound = 2e-2;
    if (!(difference <= bound)) throw new Error(`${format} ${direction} ${shape}: fused and unfused results differ by ${difference}`);
    const check = { maxRelError: difference, bound };
    const figure = (impl: string, label: string, t: ReturnType<typeof graphMs>, method: string): BenchResult => {
      const seconds = t.medianMs * 1e-3;
      const small = m <= 16;
      const value = small ? weightBytes / seconds / 1e9 : flops / seconds / 1e12;
      return {
        id: `quant.${format}.${impl}.${direction}.${shape}`, group: GROUP, label: `${label} ${format} ${direction} ${shape}`,
        unit: small ? 'GB/s' : 'TFLOP/s', value, ...t, flops, bytes: weightBytes, copies, check, method,
        ...(small && copyGBs > 0 ? { percentOfCopy: (100 * value) / copyGBs } : {}),
      };
    };
    measure(`quant.${format}.fused.${direction}.${shape}`, () =>
      figure('fused', 'fused', graphMs(fused, copies), 'fused kernel (settled weight), device time per call (CUDA graph); GB/s on codes + scales'));
    if (m <= 16 && direction === 'xWt') {
      // The same weights in the decode tile layout (FourBitLinear / IntBlockLinear.useDecodeTiles),
      // built before timing, so every product is settled.
      const tiles = weights.map((w) => {
        const [a, b, c] = w.parts;
        const t = format === 'nf4'
          ? nf4DecodeTiles(a!, b!, w.attrs as unknown as FourBitOpAttrs)
          : int4DecodeTiles(a!, b!, c!, w.attrs as unknown as IntOpAttrs);
        const parts = 'absmax' in t ? [t.codes, t.absmax, c!] : [t.codes, t.scales, t.offsets];
        owned.push(...parts.slice(0, format === 'nf4' ? 2 : 3));
        return parts;
      });
      const viaTiles = (i: number) => quantMatmulTilesInto(format, xs[i]!, tiles[i]!, ys[i]!, settledAttrs[i]!);
      viaTiles(0);
      synchronize();
      const tilesDifference = spotDifference(ys[0]!, reference);
      if (!(tilesDifference <= bound)) throw new Error(`${format} tiles ${shape}: tile and unfused results differ by ${tilesDifference}`);
      const op = format === 'nf4' ? 'nf4MatmulTiles' : 'int4MatmulTiles';
      measure(`quant.${format}.tiles.${direction}.${shape}`, () =>
        ({ ...figure('tiles', 'decode tiles', graphMs(viaTiles, copies), `the GEMV on the decode tile layout (${op}, settled), device time per call (CUDA graph)`),
          check: { maxRelError: tilesDifference, bound } }));
    }
    measure(`quant.${format}.dequant_gemm.${direction}.${shape}`, () =>
      figure('dequant_gemm', 'dequantize + GEMM', graphMs((i) => unfused(i, ys[i]!), copies),
        'our dequantize kernel into a bf16 scratch, then our GEMM; device time per call (CUDA graph)'));
    if (m <= 16 && direction === 'xWt') {
      measure(`quant.${format}.op.${direction}.${shape}`, () => {
        const call = (i: number) => {
          const w = weights[i % copies]!;
          const [a, b, c] = w.parts;
          const attrs = settledAttrs[i % copies]!;
          const y = format === 'nf4'
            ? nf4Matmul(xs[i % copies]!, a!, b!, c!, attrs as unknown as FourBitOpAttrs)
            : intMatmul(4, xs[i % copies]!, a!, b!, c!, attrs as unknown as IntOpAttrs);
          y.dispose();
        };
        const t = timeDeviceCalls(call, synchronize, { repeats: config.repeats, warmup: config.warmup });
        return figure('op', 'op call', { ...t }, 'through the op (JavaScript dispatch + allocation included), host clock');
      });
    }
  } finally {
    for (const w of weights) disposeAll(w.parts);
    disposeAll(owned);
  }
}

describe('GPU benchmarks of the fused 4-bit kernels', () => {
  if (!cudaAvailable()) {
    report.skipped = true;
    report.reason = `cuda is not available: ${cudaUnavailableReason()}`;
  }
  report.config = { tokenCounts, formats, block: BLOCK, repeats: config.repeats, l2Multiple: config.l2Multiple };
  afterAll(() => {
    if (cudaAvailable()) report.gpu = cudaDeviceInfo();
    writeReport(report, outPath);
    console.log(`quant: wrote ${outPath}${report.skipped ? ` (skipped: ${report.reason})` : ''}`);
  });

  it('fused 4-bit GEMV / GEMM against dequantize-then-GEMM', (ctx) => {
    if (report.skipped) ctx.skip(report.reason);
    // The fused figures measure the fused kernels whatever path the op would pick by default.
    const previous = setQuantGemmPath('fused');
    try {
      benchCopy();
      for (const format of formats) {
        for (const [outF, inF] of LAYER_WEIGHTS) {
          for (const m of tokenCounts) {
            benchShape(format, outF, inF, m, 'xWt');
            if (m >= 256) benchShape(format, outF, inF, m, 'dyW');
          }
        }
      }
    } finally {
      setQuantGemmPath(previous);
    }
    expect(report.errors).toEqual([]);
  });
});
