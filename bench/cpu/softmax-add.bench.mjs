// Memory-bound ops against peers: softmax over the last axis of a [4096, 1024] float32 tensor,
// and the elementwise add of two 4 M-element float32 vectors into a third. Our native and
// TypeScript kernels, onnxruntime (one Softmax / Add node, called from Node and, from its
// profiler, its kernel alone), tfjs with the wasm backend (one
// thread) and a plain JavaScript loop. Counted in GB/s of compulsory traffic: softmax reads
// and writes the tensor once (32 MiB), add reads two vectors and writes one (48 MiB).
//
//   node bench/cpu/softmax-add.bench.mjs [--rounds N] [--budget MS] [--out FILE]
import { empty, reshape, tensor } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { ourKernels, versions, relativeError } from '../report/ours.mjs';
import { fastestPeer, printTable, runCases, suiteOptions, writeResults } from '../report/suite.mjs';
import { loadOnnxRuntime, loadTfjsWasm } from '../peers/load.mjs';
import { singleNodeModel } from '../peers/onnx-graph.mjs';
import { ortImplementations } from '../peers/ort-session.mjs';

const { typescript, native, info } = await ourKernels(['softmax', 'add']);
const options = suiteOptions({ rounds: 3, budgetMs: 500 });
const ort = loadOnnxRuntime();
const tfjs = await loadTfjsWasm();
const THREADS = 2;
const ROWS = 4096;
const COLS = 1024;
const LENGTH = 4 * 1024 * 1024;

function randomValues(count, seed, spread) {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: count }, () => (rnd() * 2 - 1) * spread);
}

const releases = [];

/** Implementations common to both ops: ours native and TypeScript, onnxruntime, tfjs, a loop. */
async function implsFor({ op, ourInputs, ourAttrs, out, ortOp, ortInputs, shape, tfCall, loop }) {
  const ourImpl = (name, kernel) => (kernel
    ? { name, fn: () => kernel(ourInputs, [out], ourAttrs), output: () => (kernel(ourInputs, [out], ourAttrs), out.toTypedArray()) }
    : { name, skipped: info.reason });
  const impls = [ourImpl('blora native', info.native ? native[op] : null), ourImpl('blora TypeScript', typescript[op])];
  if (ort.ort) {
    const model = singleNodeModel({
      opType: ortOp,
      inputs: ortInputs.map(([name]) => ({ name, type: 'float32', shape })),
      outputs: [{ name: 'Y', type: 'float32', shape }],
    });
    const inputs = Object.fromEntries(ortInputs.map(([name, data]) => [name, { type: 'float32', data, shape }]));
    const s = await ortImplementations(ort.ort, 'onnxruntime', model, inputs, { name: 'Y', length: shape.reduce((x, y) => x * y, 1), shape }, THREADS);
    releases.push(s.release);
    impls.push(...s.impls);
  } else {
    impls.push({ name: 'onnxruntime', skipped: ort.skipped });
  }
  if (tfjs.tf) {
    impls.push({
      name: 'tfjs-wasm (1 thread)',
      fn: () => tfCall().dispose(),
      output: () => {
        const y = tfCall();
        const v = y.dataSync().slice();
        y.dispose();
        return v;
      },
    });
  } else {
    impls.push({ name: 'tfjs-wasm (1 thread)', skipped: tfjs.skipped });
  }
  impls.push({ name: 'plain JS loop', fn: loop, output: loop });
  return impls;
}

// softmax [4096, 1024]
const sx = randomValues(ROWS * COLS, 3, 4);
const softmaxOut = empty([ROWS, COLS]);
const softmaxLoopOut = new Float32Array(ROWS * COLS);
const softmaxExpected = [];
for (const r of [0, 1, 777, 4095]) {
  let max = -Infinity;
  for (let c = 0; c < COLS; c++) max = Math.max(max, sx[r * COLS + c]);
  let sum = 0;
  for (let c = 0; c < COLS; c++) sum += Math.exp(sx[r * COLS + c] - max);
  for (const c of [0, 5, 511, 1023]) softmaxExpected.push([r * COLS + c, Math.exp(sx[r * COLS + c] - max) / sum]);
}
const xTf = tfjs.tf?.tensor2d(sx, [ROWS, COLS]);
const softmaxImpls = await implsFor({
  op: 'softmax',
  ourInputs: [reshape(tensor(sx, { dtype: 'float32' }), [ROWS, COLS])],
  ourAttrs: { axis: 1 },
  out: softmaxOut,
  ortOp: 'Softmax',
  ortInputs: [['X', sx]],
  shape: [ROWS, COLS],
  tfCall: () => tfjs.tf.softmax(xTf),
  loop: () => {
    for (let r = 0; r < ROWS; r++) {
      const base = r * COLS;
      let max = -Infinity;
      for (let c = 0; c < COLS; c++) if (sx[base + c] > max) max = sx[base + c];
      let sum = 0;
      for (let c = 0; c < COLS; c++) sum += (softmaxLoopOut[base + c] = Math.exp(sx[base + c] - max));
      const inv = 1 / sum;
      for (let c = 0; c < COLS; c++) softmaxLoopOut[base + c] *= inv;
    }
    return softmaxLoopOut;
  },
});

// add of two 4 M-element vectors
const a = randomValues(LENGTH, 4, 1);
const b = randomValues(LENGTH, 5, 1);
const addOut = empty([LENGTH]);
const addLoopOut = new Float32Array(LENGTH);
const addExpected = [0, 1, 12345, LENGTH - 1].map((i) => [i, a[i] + b[i]]);
const aTf = tfjs.tf?.tensor1d(a);
const bTf = tfjs.tf?.tensor1d(b);
const addImpls = await implsFor({
  op: 'add',
  ourInputs: [tensor(a, { dtype: 'float32' }), tensor(b, { dtype: 'float32' })],
  ourAttrs: {},
  out: addOut,
  ortOp: 'Add',
  ortInputs: [['A', a], ['B', b]],
  shape: [LENGTH],
  tfCall: () => tfjs.tf.add(aTf, bTf),
  loop: () => {
    for (let i = 0; i < LENGTH; i++) addLoopOut[i] = a[i] + b[i];
    return addLoopOut;
  },
});

const peersOf = (impls) => impls.map((i) => i.name).filter((n) => n !== 'blora native');
const cases = [
  {
    id: 'softmax.4096x1024', label: 'softmax [4096, 1024]', unit: 'GB/s', work: 2 * ROWS * COLS * 4,
    ours: 'blora native', peers: peersOf(softmaxImpls), impls: softmaxImpls,
    check: (v) => { const e = relativeError(v, softmaxExpected, 1 / COLS); return e < 1e-4 ? null : `max error ${e.toExponential(2)} of 1/cols`; },
  },
  {
    id: 'add.4M', label: 'add 2 x 4M elements', unit: 'GB/s', work: 3 * LENGTH * 4,
    ours: 'blora native', peers: peersOf(addImpls), impls: addImpls,
    check: (v) => { const e = relativeError(v, addExpected, 1); return e < 1e-6 ? null : `max error ${e.toExponential(2)}`; },
  },
];

console.log(`@blora/cpu-kernels: ${info.native ? `native, isa ${info.isa}, ${info.threads} threads` : info.reason}`);
const results = await runCases(cases, options);
for (const release of releases) await release();

// Targets: softmax and add within 1.5x of onnxruntime (our time at most 1.5x its time).
const targets = [];
for (const r of results) {
  const ours = r.results['blora native'];
  // Against onnxruntime's fastest figure (its kernel alone, when the profiler gave one).
  const reference = fastestPeer(r, 'onnxruntime');
  if (!ours || ours.skipped || !reference) continue;
  const ratio = reference.ms / ours.ms;
  targets.push({ id: r.id, reference: reference.name, goal: `${r.label} within 1.5x of onnxruntime`, ratio, threshold: 1 / 1.5, met: ratio >= 1 / 1.5 });
}
printTable('softmax and elementwise add (GB/s of compulsory traffic)', results);
for (const t of targets) console.log(`target: ${t.goal}: ${t.ratio.toFixed(2)}x -> ${t.met ? 'met' : 'NOT met'}`);
writeResults('softmax-add', {
  versions: versions(info),
  settings: { ...options, softmaxShape: [ROWS, COLS], addLength: LENGTH, onnxruntimeThreads: THREADS, tfjsThreads: 1 },
  results,
  targets,
  notes: [
    'blora: softmax / add kernels called directly on preallocated float32 tensors.',
    `onnxruntime: one Softmax (opset 17, last axis) or Add node, intraOpNumThreads ${THREADS}, output preallocated; "kernel only": the node's kernel time from onnxruntime's profiler (median of 15 runs), without the Node binding's handling of the input and output buffers.`,
    'tfjs: wasm backend, one thread; tf.softmax / tf.add then dispose.',
    'plain JS loop: Math.exp softmax (max, exp and sum, scale) and a + b into a preallocated Float32Array.',
  ],
}, options.out);
