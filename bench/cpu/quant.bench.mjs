// 4-bit weight products y = x · Wᵀ with a 4096 x 4096 weight, at M = 1 (matvec) and M = 16
// rows: our native NF4 (blocks of 64) and INT4 (groups of 32 and 64 input columns) kernels,
// onnxruntime's MatMulNBits (com.microsoft, 4 bits, blocks of 32 and 64, accuracy_level 0 =
// fp32 activations and 4 = int8 activations), and our TypeScript kernels. Each product comes
// twice, like for like: float32 activations (ours by default; MatMulNBits accuracy_level 0)
// and int8 activations (ours with configureCpuKernels({ quantActivations:
// 'int8' }); MatMulNBits accuracy_level 4).
//
//   node bench/cpu/quant.bench.mjs [--rounds N] [--budget MS] [--out FILE]
//
// INT4 and MatMulNBits get the same 4-bit codes and scales (symmetric: W = (q - 8) · scale,
// which ours stores as α = scale, β = -8 · scale), each packed in its own layout (ours: the
// high nibble holds the even element; MatMulNBits: [N, K/block, block/2] bytes, low nibble
// first, zero point 8 by default), so both compute the same product and are checked against
// the same float64 reference. NF4 gets the same random codes with random absmax values.
// Every onnxruntime figure also comes as "kernel only", its kernel time from its profiler.
import { empty, tensor, reshape } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { NF4_CODE } from '@blora/quant';
import { ourKernels, versions, relativeError } from '../report/ours.mjs';
import { fastestPeer, printTable, runCases, suiteOptions, writeResults } from '../report/suite.mjs';
import { loadOnnxRuntime } from '../peers/load.mjs';
import { singleNodeModel } from '../peers/onnx-graph.mjs';
import { ortImplementations } from '../peers/ort-session.mjs';

const { typescript, native, info } = await ourKernels(['nf4Matmul', 'int4Matmul']);
const { configureCpuKernels } = await import('@blora/cpu-kernels');
const options = suiteOptions({ rounds: 3, budgetMs: 500 });
const ort = loadOnnxRuntime();
const N = 4096;
const K = 4096;
const ROWS = [1, 16];
const BLOCKS = [32, 64];
const THREADS = 2;
const TS_BUDGET_MS = 1; // the TypeScript kernels take 0.1 - 1 s a call: three timed calls a round

const rnd = seededRandom(11);
const codes = Uint8Array.from({ length: N * K }, () => Math.floor(rnd() * 16));
const scalesBy = Object.fromEntries(BLOCKS.map((b) => [b, Float32Array.from({ length: (N * K) / b }, () => 0.005 + 0.02 * rnd())]));
const nf4Absmax = Float32Array.from({ length: (N * K) / 64 }, () => 0.01 + 0.05 * rnd());

/** Our packing: element i in the high nibble of byte i >> 1 when i is even. */
function packHighFirst(q) {
  const out = new Uint8Array(q.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (q[2 * i] << 4) | q[2 * i + 1];
  return out;
}

/** MatMulNBits packing: [N, K/block, block/2], element k in the low nibble when k is even. */
function packLowFirst(q) {
  const out = new Uint8Array(q.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = q[2 * i] | (q[2 * i + 1] << 4);
  return out;
}

const oursPacked = packHighFirst(codes);
const ortPacked = packLowFirst(codes);
const nf4Packed = tensor(oursPacked, { dtype: 'uint8' });
const codesTensor = nf4Packed; // INT4 uses the same codes, packed the same way
const nf4Table = tensor(Array.from(NF4_CODE), { dtype: 'float32' });

/** Float64 reference outputs at a few positions for weight values `w(n, k)`. */
function expectedAt(x, m, w) {
  const positions = Array.from({ length: 8 }, (_, t) => [(t * 5) % m, (t * 613 + 17) % N]);
  return positions.map(([r, n]) => {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[r * K + k] * w(n, k);
    return [r * N + n, s];
  });
}

const int4Weight = (block) => (n, k) => (codes[n * K + k] - 8) * scalesBy[block][(n * K + k) / block | 0];
const nf4Weight = (n, k) => Math.fround(NF4_CODE[codes[n * K + k]] * nf4Absmax[(n * K + k) >> 6]);

/** A check against the float64 reference: error relative to the typical output size. */
function checker(expected, tolerance) {
  const scale = Math.sqrt(expected.reduce((s, [, v]) => s + v * v, 0) / expected.length) || 1;
  return (values) => {
    const err = relativeError(values, expected, scale);
    return err < tolerance ? null : `max error ${err.toExponential(2)} of the output RMS (tolerance ${tolerance})`;
  };
}

async function ortMatMulNBits(name, m, block, accuracyLevel, x) {
  const model = singleNodeModel({
    opType: 'MatMulNBits',
    domain: 'com.microsoft',
    attributes: { K, N, bits: 4, block_size: block, accuracy_level: accuracyLevel },
    inputs: [{ name: 'A', type: 'float32', shape: [m, K] }],
    initializers: [
      { name: 'B', type: 'uint8', shape: [N, K / block, block / 2], data: ortPacked },
      { name: 'scales', type: 'float32', shape: [(N * K) / block], data: scalesBy[block] },
    ],
    outputs: [{ name: 'Y', type: 'float32', shape: [m, N] }],
  });
  return ortImplementations(ort.ort, name, model, { A: { type: 'float32', data: x, shape: [m, K] } }, { name: 'Y', length: m * N, shape: [m, N] }, THREADS);
}

const cases = [];
const releases = [];
const int8Setting = {
  setup: () => configureCpuKernels({ quantActivations: 'int8' }),
  teardown: () => configureCpuKernels({ quantActivations: 'float32' }),
};
for (const m of ROWS) {
  const xr = seededRandom(100 + m);
  const x = Float32Array.from({ length: m * K }, () => xr() * 2 - 1);
  const xt = reshape(tensor(x, { dtype: 'float32' }), [m, K]);
  const out = empty([m, N]);
  const ourImpl = (name, kernel, inputs, attrs, budgetMs) => (kernel
    ? { name, budgetMs, fn: () => kernel(inputs, [out], attrs), output: () => (kernel(inputs, [out], attrs), out.toTypedArray()) }
    : { name, skipped: info.reason });
  // Our kernel with int8 activations: the int8 cases switch the setting on in their setup
  // (and back off in their teardown), so the timed calls hold nothing but the kernel.
  const int8Impl = (name, kernel, inputs, attrs) => {
    if (!kernel) return { name, skipped: info.reason };
    const call = () => kernel(inputs, [out], attrs);
    return { name, fn: call, output: () => (call(), out.toTypedArray()), check: loose };
  };
  // int8 activations (ours, and MatMulNBits at accuracy_level 4) round x to 8 bits per block:
  // a looser check for them.
  let loose = null;

  // NF4 (our format; no onnxruntime equivalent): native against TypeScript.
  const nf4Inputs = [xt, nf4Packed, tensor(nf4Absmax, { dtype: 'float32' }), nf4Table];
  const nf4Attrs = { outFeatures: N, inFeatures: K, blocksize: 64 };
  const nf4Expected = expectedAt(x, m, nf4Weight);
  loose = checker(nf4Expected, 2e-2);
  cases.push({
    id: `nf4.m${m}`, label: `NF4 b64, M=${m}`, unit: 'ms', ours: 'blora native NF4', peers: ['blora TypeScript NF4'],
    check: checker(nf4Expected, 1e-4),
    impls: [
      ourImpl('blora native NF4', info.native ? native.nf4Matmul : null, nf4Inputs, nf4Attrs),
      ourImpl('blora TypeScript NF4', typescript.nf4Matmul, nf4Inputs, nf4Attrs, TS_BUDGET_MS),
    ],
  });
  cases.push({
    id: `nf4.m${m}.int8`, label: `NF4 b64, M=${m}, int8 act.`, unit: 'ms', ours: 'blora native NF4 int8', peers: [], ...int8Setting,
    impls: [int8Impl('blora native NF4 int8', info.native ? native.nf4Matmul : null, nf4Inputs, nf4Attrs)],
  });

  for (const block of BLOCKS) {
    const scales = tensor(scalesBy[block], { dtype: 'float32' });
    const offsets = tensor(Float32Array.from(scalesBy[block], (s) => -8 * s), { dtype: 'float32' });
    const intInputs = [xt, codesTensor, reshape(scales, [N, K / block]), reshape(offsets, [N, K / block])];
    const intAttrs = { outFeatures: N, inFeatures: K, blockRows: 1, blockCols: block };
    const expected = expectedAt(x, m, int4Weight(block));
    loose = checker(expected, 2e-2);
    const ort4 = async (level) => {
      const name = `onnxruntime MatMulNBits acc${level}`;
      if (!ort.ort) return [{ name, skipped: ort.skipped }];
      try {
        const s = await ortMatMulNBits(name, m, block, level, x);
        releases.push(s.release);
        return s.impls;
      } catch (error) {
        return [{ name, skipped: `session failed: ${error.message.split('\n')[0]}` }];
      }
    };
    // Float32 activations; at M = 16 both accuracy levels are listed.
    const impls = [ourImpl('blora native INT4', info.native ? native.int4Matmul : null, intInputs, intAttrs), ...(await ort4(0))];
    if (m > 1) impls.push(...(await ort4(4)));
    if (block === 32) impls.push(ourImpl('blora TypeScript INT4', typescript.int4Matmul, intInputs, intAttrs, TS_BUDGET_MS));
    cases.push({
      id: `int4.b${block}.m${m}`, label: `INT4 b${block}, M=${m}`, unit: 'ms', ours: 'blora native INT4',
      peers: impls.map((i) => i.name).filter((n) => n !== 'blora native INT4'),
      check: checker(expected, 1e-4),
      impls: impls.map((impl) => (impl.name.includes('acc4') ? { ...impl, check: loose } : impl)),
    });
    // int8 activations on both sides.
    const q8 = [int8Impl('blora native INT4 int8', info.native ? native.int4Matmul : null, intInputs, intAttrs), ...(await ort4(4))];
    cases.push({
      id: `int4.b${block}.m${m}.int8`, label: `INT4 b${block}, M=${m}, int8 act.`, unit: 'ms', ours: 'blora native INT4 int8',
      peers: q8.map((i) => i.name).filter((n) => n !== 'blora native INT4 int8'),
      check: loose,
      ...int8Setting,
      impls: q8,
    });
  }
}

console.log(`@blora/cpu-kernels: ${info.native ? `native, isa ${info.isa}, ${info.threads} threads` : info.reason}`);
const results = await runCases(cases, options);
for (const release of releases) await release();

// Targets: the 4-bit matvec (M = 1) no slower than onnxruntime's MatMulNBits, block for block:
// our fastest figure against its fastest (either accuracy level), and like for like (float32
// activations against accuracy_level 0, int8 against accuracy_level 4).
const targets = [];
const figure = (id, name) => {
  const r = results.find((x) => x.id === id)?.results[name];
  return r && !r.skipped ? { name, ms: r.ms } : null;
};
const ortFastest = (ids, level) => ids
  .map((id) => results.find((x) => x.id === id))
  .filter(Boolean)
  .map((r) => fastestPeer(r, `onnxruntime MatMulNBits${level === undefined ? '' : ` acc${level}`}`))
  .filter(Boolean)
  .sort((a, b) => a.ms - b.ms)[0] ?? null;
const addTarget = (id, goal, ours, reference) => {
  if (!ours || !reference) return;
  const ratio = reference.ms / ours.ms;
  targets.push({ id, goal, ours: ours.name, reference: reference.name, ratio, threshold: 1, met: ratio >= 1 });
};
for (const block of BLOCKS) {
  const ids = [`int4.b${block}.m1`, `int4.b${block}.m1.int8`];
  const fp32 = figure(ids[0], 'blora native INT4');
  const int8 = figure(ids[1], 'blora native INT4 int8');
  const best = [fp32, int8].filter(Boolean).sort((a, b) => a.ms - b.ms)[0];
  addTarget(`int4.b${block}.m1`, `4-bit matvec 4096 x 4096 (block ${block}) no slower than onnxruntime MatMulNBits (fastest against fastest)`, best, ortFastest(ids));
  addTarget(`int4.b${block}.m1.fp32`, `4-bit matvec (block ${block}), float32 activations: ours against MatMulNBits accuracy_level 0`, fp32, ortFastest(ids, 0));
  addTarget(`int4.b${block}.m1.int8`, `4-bit matvec (block ${block}), int8 activations: ours against MatMulNBits accuracy_level 4`, int8, ortFastest(ids, 4));
}
// Our NF4 matvec (our main 4-bit format, blocks of 64) against MatMulNBits at block 64.
{
  const ids = ['int4.b64.m1', 'int4.b64.m1.int8'];
  const fp32 = figure('nf4.m1', 'blora native NF4');
  const int8 = figure('nf4.m1.int8', 'blora native NF4 int8');
  addTarget('nf4.m1.fp32', 'NF4 matvec 4096 x 4096 (block 64), float32 activations: against MatMulNBits block 64 accuracy_level 0', fp32, ortFastest(ids, 0));
  addTarget('nf4.m1.int8', 'NF4 matvec 4096 x 4096 (block 64), int8 activations: against MatMulNBits block 64 accuracy_level 4', int8, ortFastest(ids, 4));
}
printTable('4-bit weight products, 4096 x 4096 weight (median ms per call)', results);
for (const t of targets) console.log(`target: ${t.goal}: ${t.ratio.toFixed(2)}x -> ${t.met ? 'met' : 'NOT met'}`);
writeResults('quant', {
  versions: versions(info),
  settings: { ...options, n: N, k: K, rows: ROWS, blocks: BLOCKS, onnxruntimeThreads: THREADS, typescriptBudgetMs: TS_BUDGET_MS },
  results,
  targets,
  notes: [
    'blora: nf4Matmul / int4Matmul kernels called directly on preallocated float32 tensors; "int8": the same kernels with configureCpuKernels({ quantActivations: \'int8\' }) switched on for the int8 cases (in their setup, so the timed calls hold only the kernel; activations rounded to int8 per block of 32; NF4 table rounded to int8 levels).',
    'INT4 and MatMulNBits hold the same codes and scales (symmetric, zero point 8); outputs checked against float64 sums at 8 positions (int8 activations, ours and accuracy_level 4, to 2e-2 of the output RMS, the others to 1e-4).',
    `onnxruntime: one MatMulNBits node (domain com.microsoft, bits 4), weights and scales as initializers, intraOpNumThreads ${THREADS}, output preallocated; "kernel only": the node's kernel time from onnxruntime's profiler (median of 15 runs).`,
    'The 8 MiB packed weight is reused call after call by every implementation alike (it fits in this CPU\'s last-level cache).',
  ],
}, options.out);
