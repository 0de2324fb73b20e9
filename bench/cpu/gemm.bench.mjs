// Float32 matmul throughput on the CPU: the native kernels of @blora/cpu-kernels against the
// TypeScript kernel they replace, on square products and a matrix-vector product.
//
//   node bench/cpu/gemm.bench.mjs [--rounds N] [--skip-typescript]
//
// Each kernel is called directly on preallocated tensors (no allocation or dispatch in the
// timed loop). Prints the median time and GFLOP/s of every case (and the best sample, which
// says more on a machine shared with other work), and with several rounds the medians over rounds.
import { Bench } from 'tinybench';
import { empty, findKernel, transpose } from '@blora/tensor';
import { randomTensor } from '@blora/tensor/testing';

// The TypeScript kernel must be captured before the native package replaces it.
const typescriptMatmul = findKernel('matmul', 'cpu');
const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
const nativeMatmul = findKernel('matmul', 'cpu');

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf('--rounds') + 1] ?? 1) || 1;
const skipTypescript = args.includes('--skip-typescript');

/** Products to time: [label, m, n, k, b stored transposed (as a [n, k] weight)]. */
const CASES = [
  ['1024³', 1024, 1024, 1024, false],
  ['1024³ (B transposed)', 1024, 1024, 1024, true],
  ['512³', 512, 512, 512, false],
  ['256³', 256, 256, 256, false],
  ['matvec 1 x 4096 x 4096', 1, 4096, 4096, false],
  ['matvec 1 x 4096 x 4096 (B transposed)', 1, 4096, 4096, true],
];

function operands(m, n, k, bTransposed) {
  const a = randomTensor([m, k], { seed: 1 });
  const b = bTransposed ? transpose(randomTensor([n, k], { seed: 2 }), 0, 1) : randomTensor([k, n], { seed: 2 });
  return { a, b, out: empty([m, n]) };
}

/** Median latency (ms) of `kernel` on one case. */
async function time(kernel, { a, b, out }, flops) {
  // Budget about a second per case; the slow TypeScript kernel gets a few iterations.
  const once = performance.now();
  kernel([a, b], [out], {});
  const estimate = performance.now() - once;
  const iterations = Math.max(3, Math.min(200, Math.round(1000 / Math.max(estimate, 0.01))));
  const bench = new Bench({ iterations, time: 0, warmupIterations: Math.min(10, iterations), warmupTime: 0 });
  bench.add('kernel', () => kernel([a, b], [out], {}));
  await bench.run();
  const latency = bench.tasks[0].result.latency;
  return { ms: latency.p50, gflops: flops / latency.p50 / 1e6, best: flops / latency.min / 1e6 };
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
  for (const [label, m, n, k, bT] of CASES) {
    const ops = operands(m, n, k, bT);
    const flops = 2 * m * n * k;
    const impls = [['native', nativeMatmul]];
    if (!skipTypescript) impls.push(['typescript', typescriptMatmul]);
    for (const [impl, kernel] of impls) {
      if (impl === 'native' && !info.native) continue;
      const r = await time(kernel, ops, flops);
      const key = `${label} | ${impl}`;
      results.set(key, [...(results.get(key) ?? []), { ...r, flops }]);
      console.log(`round ${round + 1}  ${label.padEnd(40)} ${impl.padEnd(10)} ${r.ms.toFixed(3).padStart(9)} ms ${r.gflops.toFixed(1).padStart(7)} GFLOP/s  (best ${r.best.toFixed(1)})`);
    }
    for (const t of Object.values(ops)) t.dispose();
  }
}
if (rounds > 1) {
  console.log(`\nmedian over ${rounds} rounds`);
  for (const [key, rs] of results) {
    const [label, impl] = key.split(' | ');
    const ms = median(rs.map((r) => r.ms));
    const gflops = rs[0].flops / ms / 1e6;
    console.log(`${label.padEnd(40)} ${impl.padEnd(10)} ${ms.toFixed(3).padStart(9)} ms ${gflops.toFixed(1).padStart(7)} GFLOP/s  (best ${Math.max(...rs.map((r) => r.best)).toFixed(1)})`);
  }
}
