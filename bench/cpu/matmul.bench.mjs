// fp32 matmul C[n, n] = A[n, n] · B[n, n] at n = 256, 512, 1024 against peers, in GFLOP/s:
// our native kernel, our TypeScript kernel, onnxruntime (B as a graph input, and B as an
// initializer, which lets it pre-pack B once), tfjs with the wasm backend (one thread) and a
// plain JavaScript i-k-j loop (at 256 only; it takes seconds at 1024).
//
//   node bench/cpu/matmul.bench.mjs [--rounds N] [--budget MS] [--out FILE]
//
// Ours: the kernel called directly on preallocated tensors. onnxruntime: session.run with
// the output preallocated when the binding allows it, and its kernel alone as its profiler
// times it ("kernel only"). tfjs: tf.matMul then dispose (the wasm
// backend computes synchronously). Every implementation's result is checked at a few positions
// against float64 dot products before it is timed.
import { empty, reshape, tensor } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { ourKernels, versions, refDot, relativeError } from '../report/ours.mjs';
import { fastestPeer, printTable, runCases, suiteOptions, writeResults } from '../report/suite.mjs';
import { loadOnnxRuntime, loadTfjsWasm } from '../peers/load.mjs';
import { singleNodeModel } from '../peers/onnx-graph.mjs';
import { ortImplementations } from '../peers/ort-session.mjs';

const { typescript, native, info } = await ourKernels(['matmul']);
const { configureCpuKernels } = await import('@blora/cpu-kernels');
const options = suiteOptions({ rounds: 3, budgetMs: 600 });
const ort = loadOnnxRuntime();
const tfjs = await loadTfjsWasm();
const SIZES = [1024, 512, 256];
const THREADS = 2;

function randomValues(count, seed) {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: count }, () => rnd() * 2 - 1);
}

/** The two onnxruntime implementations of one MatMul node; `constantB` embeds B as an initializer. */
async function ortMatmul(name, n, a, b, constantB) {
  const shape = [n, n];
  const model = singleNodeModel({
    opType: 'MatMul',
    inputs: constantB ? [{ name: 'A', type: 'float32', shape }] : [{ name: 'A', type: 'float32', shape }, { name: 'B', type: 'float32', shape }],
    initializers: constantB ? [{ name: 'B', type: 'float32', shape, data: b }] : [],
    outputs: [{ name: 'Y', type: 'float32', shape }],
  });
  const inputs = { A: { type: 'float32', data: a, shape } };
  if (!constantB) inputs.B = { type: 'float32', data: b, shape };
  return ortImplementations(ort.ort, name, model, inputs, { name: 'Y', length: n * n, shape }, THREADS);
}

/** The plain i-k-j loop: the row of A scales rows of B into the row of C. */
function naiveMatmul(a, b, c, n) {
  c.fill(0);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let p = 0; p < n; p++) {
      const aip = a[i * n + p];
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
    }
  }
}

const cases = [];
const cleanups = [];
for (const n of SIZES) {
  const a = randomValues(n * n, 1);
  const b = randomValues(n * n, 2);
  const ta = reshape(tensor(a, { dtype: 'float32' }), [n, n]);
  const tb = reshape(tensor(b, { dtype: 'float32' }), [n, n]);
  const out = empty([n, n]);
  // Ten positions spread over C, checked against float64 sums.
  const positions = Array.from({ length: 10 }, (_, t) => [Math.floor((t * 7919) % n), Math.floor((t * 104729) % n)]);
  const expected = positions.map(([i, j]) => [i * n + j, refDot(a, b, n, n, i, j)]);
  const check = (values) => {
    const err = relativeError(values, expected, Math.sqrt(n));
    return err < 1e-4 ? null : `max error ${err.toExponential(2)} of sqrt(k) at 10 positions`;
  };
  const impls = [];
  const ourOutput = (kernel) => () => (kernel([ta, tb], [out], {}), out.toTypedArray());
  impls.push(info.native
    ? { name: 'blora native', fn: () => native.matmul([ta, tb], [out], {}), output: ourOutput(native.matmul) }
    : { name: 'blora native', skipped: info.reason });
  // The AVX2 loops too, on a CPU with AVX-512 (the fallback of CPUs without it).
  if (info.native && info.supported.includes('avx512') && info.supported.includes('avx2+fma')) {
    const avx2 = () => {
      configureCpuKernels({ isa: 'avx2' });
      try {
        native.matmul([ta, tb], [out], {});
      } finally {
        configureCpuKernels({ isa: 'auto' });
      }
    };
    impls.push({ name: 'blora native (AVX2 loops)', fn: avx2, output: () => (avx2(), out.toTypedArray()) });
  }
  impls.push({ name: 'blora TypeScript', fn: () => typescript.matmul([ta, tb], [out], {}), output: ourOutput(typescript.matmul) });
  for (const constantB of [false, true]) {
    const name = `onnxruntime (B ${constantB ? 'initializer' : 'input'})`;
    if (!ort.ort) {
      impls.push({ name, skipped: ort.skipped });
      continue;
    }
    const s = await ortMatmul(name, n, a, b, constantB);
    cleanups.push(s.release);
    impls.push(...s.impls);
  }
  if (tfjs.tf) {
    const tf = tfjs.tf;
    const xa = tf.tensor2d(a, [n, n]);
    const xb = tf.tensor2d(b, [n, n]);
    cleanups.push(() => { xa.dispose(); xb.dispose(); });
    impls.push({
      name: 'tfjs-wasm (1 thread)',
      fn: () => tf.matMul(xa, xb).dispose(),
      output: () => {
        const y = tf.matMul(xa, xb);
        const v = y.dataSync().slice();
        y.dispose();
        return v;
      },
    });
  } else {
    impls.push({ name: 'tfjs-wasm (1 thread)', skipped: tfjs.skipped });
  }
  if (n === 256) {
    const c = new Float32Array(n * n);
    impls.push({ name: 'naive i-k-j loop', fn: () => naiveMatmul(a, b, c, n), output: () => (naiveMatmul(a, b, c, n), c) });
  }
  cases.push({
    id: `matmul.fp32.${n}`,
    label: `matmul fp32 ${n}³`,
    unit: 'GFLOP/s',
    work: 2 * n * n * n,
    ours: 'blora native',
    peers: impls.map((i) => i.name).filter((x) => x !== 'blora native'),
    check,
    impls,
  });
}

console.log(`@blora/cpu-kernels: ${info.native ? `native, isa ${info.isa}, ${info.threads} threads` : info.reason}`);
const results = await runCases(cases, options);
for (const release of cleanups) await release();

// Target: at 1024³ our GFLOP/s at least 0.8x onnxruntime's (the better of its two setups).
const big = results.find((r) => r.id === 'matmul.fp32.1024');
const oursMs = big.results['blora native']?.ms;
const targets = [];
const reference = fastestPeer(big, 'onnxruntime');
if (oursMs !== undefined && reference) {
  const ratio = reference.ms / oursMs;
  targets.push({ id: 'matmul.fp32.1024', goal: 'fp32 matmul 1024³ at >= 0.8x onnxruntime GFLOP/s (its fastest figure)', reference: reference.name, ratio, threshold: 0.8, met: ratio >= 0.8 });
}
printTable('fp32 matmul (GFLOP/s = 2·n³ / median time)', results);
for (const t of targets) console.log(`target: ${t.goal}: ${t.ratio.toFixed(2)}x -> ${t.met ? 'met' : 'NOT met'}`);
writeResults('matmul', {
  versions: versions(info),
  settings: { ...options, onnxruntimeThreads: THREADS, tfjsThreads: 1 },
  results,
  targets,
  notes: [
    'blora: kernels called directly on preallocated float32 tensors; native threads as reported in versions.cpuKernels. "AVX2 loops": the same kernel with configureCpuKernels({ isa: \'avx2\' }) around each call (what CPUs without AVX-512 run).',
    `onnxruntime: one MatMul node built in memory, intraOpNumThreads ${THREADS}, graph optimization 'all', output preallocated; "kernel only": the node's kernel time from onnxruntime's profiler (median of 15 runs), without the Node binding's handling of inputs and outputs.`,
    'tfjs: @tensorflow/tfjs with the wasm backend (SIMD, one thread, the build Node loads), tf.matMul then dispose.',
  ],
}, options.out);
