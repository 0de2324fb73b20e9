// Our kernels on the 'cuda' device, timed the way bench/gpu/peers.py times PyTorch: copy
// bandwidth, GEMM (float32, bfloat16), elementwise add and a row sum; besides, without a
// PyTorch figure to match, sums over the first dim and over every element. Run through
// bench/gpu/vitest.config.ts (see bench/README.md); writes JSON to $BLORA_BENCH_OUT.
// Without a usable GPU every group is reported as skipped and the JSON says why.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  abs, add, avgPool1d, avgPool1dBackward, clone, matmul, narrow, repeatInterleave, reshape, sum, sumRuns, tidy, transpose, type Tensor,
} from '@blora/tensor';
import {
  cudaAvailable, cudaDeviceInfo, cudaMemoryInfo, cudaUnavailableReason, emptyCache, synchronize,
} from '@blora/cuda-kernels';
import { copiesFor, gemmId, readConfig, type BenchConfig, type OurGroup } from './config.js';
import { addError, copyMismatches, gemmError, randomOnDevice, rowMapError, rowSumError, type BenchDType } from './inputs.js';
import { formatTable, newReport, relateToCopy, writeReport, type BenchReport, type BenchResult } from './report.js';
import { timeDeviceCalls, type Timing } from './timing.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const config = readConfig();
const outPath = isAbsolute(config.out) ? config.out : resolve(repoRoot, config.out);
const report = newReport();
const GIB = 1024 ** 3;

const short = (dtype: BenchDType): string => (dtype === 'bfloat16' ? 'bf16' : 'fp32');
const itemBytes = (dtype: BenchDType): number => (dtype === 'bfloat16' ? 2 : 4);

function time(call: (i: number) => void): Timing {
  return timeDeviceCalls(call, synchronize, { repeats: config.repeats, warmup: config.warmup });
}

/** Runs one measurement, keeping the group going when it fails; the error goes into the report. */
function measure(group: OurGroup, id: string, body: () => BenchResult): void {
  try {
    const result = body();
    report.results.push(result);
    console.log(`  ${result.label.padEnd(44)} ${result.value.toFixed(2).padStart(10)} ${result.unit}`);
  } catch (e) {
    const error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    report.errors.push({ group, id, error });
    console.log(`  ${id}: failed: ${error}`);
  } finally {
    emptyCache();
  }
}

/** Throws when a spot check misses its bound, so a wrong kernel never yields a figure. */
function checked(name: string, maxRelError: number, bound: number): { maxRelError: number; bound: number } {
  if (!(maxRelError <= bound)) throw new Error(`${name}: result check failed: relative error ${maxRelError} > ${bound}`);
  return { maxRelError, bound };
}

function disposeAll(tensors: readonly Tensor[]): void {
  for (const t of tensors) t.dispose();
}

function benchCopy(cfg: BenchConfig): void {
  measure('copy', 'copy.d2d', () => {
    const n = Math.floor(cfg.copyBytes / 4);
    const src = randomOnDevice([n], 'float32');
    try {
      const t = time(() => clone(src).dispose());
      const dst = clone(src);
      const bad = copyMismatches(src, dst);
      dst.dispose();
      if (bad > 0) throw new Error(`copy: ${bad} elements differ from the source`);
      const bytes = 2 * n * 4;
      return {
        id: 'copy.d2d', group: 'copy', label: `device-to-device copy ${((n * 4) / GIB).toFixed(2)} GiB`,
        unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1,
        method: "clone(x) (our 'copy' kernel), float32; bytes read + written",
      };
    } finally {
      src.dispose();
    }
  });
}

function benchGemm(cfg: BenchConfig): void {
  for (const dtype of cfg.gemmDTypes) {
    for (const c of cfg.gemmCases) {
      const id = gemmId(dtype, c);
      measure('gemm', id, () => {
        const copies = copiesFor((c.m * c.k + c.k * c.n) * itemBytes(dtype), cfg, 8);
        const owned: Tensor[] = [];
        try {
          const transposed = c.layout === 'xWt';
          const lhs: Tensor[] = [];
          const weights: Tensor[] = [];
          const rhs: Tensor[] = [];
          for (let i = 0; i < copies; i++) {
            lhs.push(randomOnDevice([c.m, c.k], dtype));
            // xWt: the weight is stored [N, K] and used as a transposed view (no copy).
            weights.push(transposed ? randomOnDevice([c.n, c.k], dtype) : randomOnDevice([c.k, c.n], dtype));
            rhs.push(transposed ? transpose(weights[i]!) : weights[i]!);
            owned.push(lhs[i]!, weights[i]!);
            if (transposed) owned.push(rhs[i]!);
          }
          const t = time((i) => matmul(lhs[i % copies]!, rhs[i % copies]!).dispose());
          const out = matmul(lhs[0]!, rhs[0]!);
          owned.push(out);
          const error = gemmError(lhs[0]!, weights[0]!, transposed, out);
          const check = checked(id, error, dtype === 'bfloat16' ? 1e-2 : 1e-4);
          const flops = 2 * c.m * c.k * c.n;
          return {
            id, group: 'gemm', label: `GEMM ${short(dtype)} ${c.layout} ${c.m}x${c.k}x${c.n}`, unit: 'TFLOP/s',
            value: flops / (t.medianMs * 1e-3) / 1e12, ...t, flops, copies, check,
            method: `matmul(${c.layout === 'xWt' ? 'x, transpose(W))' : 'dy, W)'} on our ${dtype} kernel`,
          };
        } finally {
          disposeAll(owned);
        }
      });
    }
  }
}

function rowsCols(cfg: BenchConfig): [number, number] {
  return [cfg.elements / cfg.rowLength, cfg.rowLength];
}

function benchAdd(cfg: BenchConfig): void {
  const [rows, cols] = rowsCols(cfg);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const id = `add.${short(dtype)}`;
    measure('elementwise', id, () => {
      const a = randomOnDevice([rows, cols], dtype);
      const b = randomOnDevice([rows, cols], dtype);
      try {
        const t = time(() => add(a, b).dispose());
        const out = add(a, b);
        const err = addError(a, b, out);
        out.dispose();
        const check = checked(id, err, dtype === 'bfloat16' ? 1e-2 : 1e-6);
        const bytes = 3 * rows * cols * itemBytes(dtype);
        return {
          id, group: 'elementwise', label: `add ${short(dtype)} ${((rows * cols) / 2 ** 20).toFixed(0)}M elements`,
          unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1, check,
          method: 'add(a, b) into a new tensor; bytes = 2 reads + 1 write',
        };
      } finally {
        disposeAll([a, b]);
      }
    });
  }
}

function benchSum(cfg: BenchConfig): void {
  const [rows, cols] = rowsCols(cfg);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const id = `sum.${short(dtype)}`;
    measure('reduce', id, () => {
      const x = randomOnDevice([rows, cols], dtype);
      try {
        const t = time(() => sum(x, -1).dispose());
        const out = sum(x, -1);
        const err = rowSumError(x, out);
        out.dispose();
        const check = checked(id, err, dtype === 'bfloat16' ? 1e-2 : 1e-5);
        const bytes = (rows * cols + rows) * itemBytes(dtype);
        return {
          id, group: 'reduce', label: `sum over last dim ${short(dtype)} [${rows}, ${cols}]`,
          unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1, check,
          method: 'sum(x, -1); bytes = input read + output written',
        };
      } finally {
        x.dispose();
      }
    });
  }
}

/**
 * Checks out[j] = sum over rows of x[:, j] on a few columns (each read back through a copy);
 * returns the largest |out - ref| / sum |x|.
 */
function columnSumError(x: Tensor, out: Tensor): number {
  const sums = out.toFloat64Array();
  const cols = x.shape[1]!;
  let worst = 0;
  for (const j of [0, cols >> 1, cols - 1]) {
    const column = tidy(() => clone(narrow(x, 1, j, 1)).toFloat64Array());
    let ref = 0;
    let scale = 0;
    for (const v of column) {
      ref += v;
      scale += Math.abs(v);
    }
    worst = Math.max(worst, Math.abs(sums[j]! - ref) / Math.max(scale, 1e-30));
  }
  return worst;
}

/** Sums over the leading axis (a bias gradient over tokens) and over all elements; no PyTorch peer. */
function benchOtherSums(cfg: BenchConfig): void {
  const [rows, cols] = rowsCols(cfg);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const id = `sum.dim0.${short(dtype)}`;
    measure('reduce', id, () => {
      const x = randomOnDevice([rows, cols], dtype);
      try {
        const t = time(() => sum(x, 0).dispose());
        const out = sum(x, 0);
        const err = columnSumError(x, out);
        out.dispose();
        const check = checked(id, err, dtype === 'bfloat16' ? 1e-2 : 1e-5);
        const bytes = (rows * cols + cols) * itemBytes(dtype);
        return {
          id, group: 'reduce', label: `sum over first dim ${short(dtype)} [${rows}, ${cols}]`,
          unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1, check,
          method: 'sum(x, 0); bytes = input read + output written',
        };
      } finally {
        x.dispose();
      }
    });
  }
  const id = 'sum.all.fp32';
  measure('reduce', id, () => {
    const x = randomOnDevice([rows * cols], 'float32');
    try {
      const t = time(() => sum(x).dispose());
      // Cross-check against the row kernels: float64 total of the row sums of the same data.
      const total = tidy(() => sum(x).item());
      const rowSums = tidy(() => sum(reshape(x, [rows, cols]), -1).toFloat64Array());
      const rowAbs = tidy(() => sum(abs(reshape(x, [rows, cols])), -1).toFloat64Array());
      const ref = rowSums.reduce((p, v) => p + v, 0);
      const scale = rowAbs.reduce((p, v) => p + v, 0);
      const check = checked(id, Math.abs(total - ref) / Math.max(scale, 1e-30), 1e-5);
      const bytes = rows * cols * 4;
      return {
        id, group: 'reduce', label: `sum of all elements fp32 [${rows * cols}]`,
        unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1, check,
        method: 'sum(x) over every element; bytes = input read',
      };
    } finally {
      x.dispose();
    }
  });
}

/** The adapters' maps at λ = 2 (Q-BLoRA's default): one wide and one narrow side each. */
const POOL_LAMBDA = 2;
const POOL_MAPS = [
  { name: 'avgPool1d', wideInput: true, run: (x: Tensor) => avgPool1d(x, POOL_LAMBDA),
    expected: (row: Float64Array) => Array.from({ length: row.length / POOL_LAMBDA }, (_, o) => (row[2 * o]! + row[2 * o + 1]!) / POOL_LAMBDA) },
  { name: 'sumRuns', wideInput: true, run: (x: Tensor) => sumRuns(x, POOL_LAMBDA),
    expected: (row: Float64Array) => Array.from({ length: row.length / POOL_LAMBDA }, (_, o) => row[2 * o]! + row[2 * o + 1]!) },
  { name: 'repeatInterleave', wideInput: false, run: (x: Tensor) => repeatInterleave(x, POOL_LAMBDA),
    expected: (row: Float64Array) => Array.from({ length: row.length * POOL_LAMBDA }, (_, i) => row[Math.floor(i / POOL_LAMBDA)]!) },
  { name: 'avgPool1dBackward', wideInput: false, run: (x: Tensor) => avgPool1dBackward(x, POOL_LAMBDA),
    expected: (row: Float64Array) => Array.from({ length: row.length * POOL_LAMBDA }, (_, i) => row[Math.floor(i / POOL_LAMBDA)]! / POOL_LAMBDA) },
] as const;

/**
 * Q-BLoRA's pooling maps and their gradients, forward and backward (avgPool1d, sumRuns,
 * repeatInterleave, avgPool1dBackward) over the last dim at λ = 2, in GB/s on the bytes read
 * and written: memory-bound maps, measured against copy bandwidth.
 */
function benchPool(cfg: BenchConfig): void {
  const [rows, cols] = rowsCols(cfg);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const map of POOL_MAPS) {
      const id = `pool.${map.name}.${short(dtype)}`;
      measure('pool', id, () => {
        const inCols = map.wideInput ? cols : cols / POOL_LAMBDA;
        const x = randomOnDevice([rows, inCols], dtype);
        try {
          const t = time(() => map.run(x).dispose());
          const out = map.run(x);
          const err = rowMapError(x, out, map.expected);
          out.dispose();
          const check = checked(id, err, dtype === 'bfloat16' ? 1e-2 : 1e-6);
          const bytes = (rows * cols + (rows * cols) / POOL_LAMBDA) * itemBytes(dtype);
          return {
            id, group: 'pool', label: `${map.name} λ=${POOL_LAMBDA} ${short(dtype)} [${rows}, ${inCols}]`,
            unit: 'GB/s', value: bytes / (t.medianMs * 1e-3) / 1e9, ...t, bytes, copies: 1, check,
            method: `${map.name}(x, ${POOL_LAMBDA}) into a new tensor; bytes = the wide side + the narrow side, one read and one write`,
          };
        } finally {
          x.dispose();
        }
      });
    }
  }
}

const runners: Record<OurGroup, (cfg: BenchConfig) => void> = {
  copy: benchCopy,
  gemm: benchGemm,
  elementwise: benchAdd,
  reduce: (cfg) => {
    benchSum(cfg);
    benchOtherSums(cfg);
  },
  pool: benchPool,
};

function finish(r: BenchReport): void {
  relateToCopy(r);
  if (cudaAvailable()) {
    r.gpu = cudaDeviceInfo();
    r.memory = cudaMemoryInfo();
  }
  writeReport(r, outPath);
  if (!r.skipped) console.log(`\n${formatTable(r)}`);
  console.log(`ours: wrote ${outPath}${r.skipped ? ` (skipped: ${r.reason})` : ''}`);
}

describe('GPU benchmarks of our kernels', () => {
  if (!cudaAvailable()) {
    report.skipped = true;
    report.reason = `cuda is not available: ${cudaUnavailableReason()}`;
  }
  report.config = config;
  afterAll(() => finish(report));

  for (const group of config.groups) {
    it(group, (ctx) => {
      if (report.skipped) ctx.skip(report.reason);
      console.log(`[${group}]`);
      const before = report.errors.length;
      runners[group](config);
      expect(report.errors.slice(before)).toEqual([]);
    });
  }
});
