// Quantized-weight products and fused attention on the CPU: the native kernels of
// @blora/cpu-kernels against the TypeScript kernels they replace.
//
//   node bench/cpu/quant-attention.bench.mjs [--rounds N] [--skip-typescript] [--budget MS]
//
// Each kernel is called directly on preallocated tensors (no allocation or dispatch in the
// timed loop); the quantized weight holds random codes and block scales with the NF4 table.
// Prints the median time of every case with the best sample, and the speedup over TypeScript.
import { Bench } from 'tinybench';
import { empty, findKernel, tensor } from '@blora/tensor';
import { randomTensor, seededRandom } from '@blora/tensor/testing';
import { NF4_CODE } from '@blora/quant';

const OPS = ['nf4Matmul', 'nf4MatmulT', 'attention', 'attentionBackward'];
// The TypeScript kernels must be captured before the native package replaces them.
const typescript = Object.fromEntries(OPS.map((op) => [op, findKernel(op, 'cpu')]));
const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
const native = Object.fromEntries(OPS.map((op) => [op, findKernel(op, 'cpu')]));

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const rounds = option('--rounds', 1) || 1;
const budgetMs = option('--budget', 1000) || 1000;
const skipTypescript = args.includes('--skip-typescript');

/** A random NF4 weight [out, in] with blocksize 64. */
function nf4Weight(outFeatures, inFeatures) {
  const n = outFeatures * inFeatures;
  const rnd = seededRandom(7);
  const packed = new Uint8Array(n / 2).map(() => Math.floor(rnd() * 256));
  const absmax = new Float32Array(n / 64).map(() => 0.01 + 0.05 * rnd());
  return {
    packed: tensor(packed, { dtype: 'uint8' }),
    absmax: tensor(absmax, { dtype: 'float32' }),
    table: tensor(Array.from(NF4_CODE), { dtype: 'float32' }),
    attrs: { outFeatures, inFeatures, blocksize: 64 },
  };
}

/** Operands of one case: [inputs, outputs, attrs]. */
function nf4Case(op, rows, size) {
  const w = nf4Weight(size, size);
  const x = randomTensor([rows, size], { seed: 1 });
  return [[x, w.packed, w.absmax, w.table], [empty([rows, size])], w.attrs];
}

function attentionCase(backward, b, h, t, d, causal) {
  const q = randomTensor([b, h, t, d], { seed: 1 });
  const k = randomTensor([b, h, t, d], { seed: 2 });
  const v = randomTensor([b, h, t, d], { seed: 3 });
  const attrs = { causal, window: null, scale: 1 / Math.sqrt(d) };
  const o = empty([b, h, t, d]);
  const lse = empty([b, h, t]);
  if (!backward) return [[q, k, v], [o, lse], attrs];
  native.attention([q, k, v], [o, lse], attrs);
  const dO = randomTensor([b, h, t, d], { seed: 4 });
  return [[dO, q, k, v, o, lse], [empty(q.shape), empty(k.shape), empty(v.shape)], attrs];
}

/** [label, op, make operands]. */
const CASES = [
  ['nf4Matmul 1 x 4096 x 4096 (matvec)', 'nf4Matmul', () => nf4Case('nf4Matmul', 1, 4096)],
  ['nf4Matmul 16 x 4096 x 4096', 'nf4Matmul', () => nf4Case('nf4Matmul', 16, 4096)],
  ['nf4MatmulT 1 x 4096 x 4096', 'nf4MatmulT', () => nf4Case('nf4MatmulT', 1, 4096)],
  ['nf4MatmulT 16 x 4096 x 4096', 'nf4MatmulT', () => nf4Case('nf4MatmulT', 16, 4096)],
  ['attention B1 H8 T256 D64', 'attention', () => attentionCase(false, 1, 8, 256, 64, false)],
  ['attention B1 H8 T256 D64 causal', 'attention', () => attentionCase(false, 1, 8, 256, 64, true)],
  ['attentionBackward B1 H8 T256 D64 causal', 'attentionBackward', () => attentionCase(true, 1, 8, 256, 64, true)],
];

/** Median and best latency (ms) of `kernel` on one case, within about `budgetMs`. */
async function time(kernel, [inputs, outputs, attrs]) {
  const once = performance.now();
  kernel(inputs, outputs, attrs);
  const estimate = performance.now() - once;
  const iterations = Math.max(3, Math.min(200, Math.round(budgetMs / Math.max(estimate, 0.01))));
  // A slow kernel is already warm after the estimate.
  const warmupIterations = estimate > 50 ? 1 : Math.min(5, iterations);
  const bench = new Bench({ iterations, time: 0, warmupIterations, warmupTime: 0 });
  bench.add('kernel', () => kernel(inputs, outputs, attrs));
  await bench.run();
  const latency = bench.tasks[0].result.latency;
  return { ms: latency.p50, best: latency.min };
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const info = cpuKernelsInfo();
console.log(`@blora/cpu-kernels: ${info.native ? `native, isa ${info.isa}, ${info.threads} threads` : `TypeScript kernels (${info.reason})`}`);
const results = new Map();
for (let round = 0; round < rounds; round++) {
  for (const [label, op, make] of CASES) {
    const operands = make();
    const impls = [];
    if (info.native) impls.push(['native', native[op]]);
    if (!skipTypescript) impls.push(['typescript', typescript[op]]);
    for (const [impl, kernel] of impls) {
      const r = await time(kernel, operands);
      const key = `${label} | ${impl}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      console.log(`round ${round + 1}  ${label.padEnd(42)} ${impl.padEnd(10)} ${r.ms.toFixed(3).padStart(10)} ms  (best ${r.best.toFixed(3)})`);
    }
    for (const t of [...operands[0], ...operands[1]]) t.dispose();
  }
}
console.log(`\nmedians${rounds > 1 ? ` over ${rounds} rounds` : ''}`);
for (const [label] of CASES) {
  const ms = (impl) => {
    const rs = results.get(`${label} | ${impl}`);
    return rs ? median(rs.map((r) => r.ms)) : null;
  };
  const n = ms('native');
  const t = ms('typescript');
  const speedup = n !== null && t !== null ? `  ${(t / n).toFixed(0)}x` : '';
  console.log(`${label.padEnd(42)} native ${n === null ? '-' : `${n.toFixed(3)} ms`}  typescript ${t === null ? '-' : `${t.toFixed(1)} ms`}${speedup}`);
}
