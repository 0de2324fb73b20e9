// The CPU benchmark suite: runs each side-by-side suite in its own Node process (each one
// loads the native kernels fresh and cannot disturb the next), then regenerates the
// benchmarks page and its plots from the newest results.
//
//   npm run bench                        (repository root; or `node bench/cpu/run.mjs`)
//   node bench/cpu/run.mjs [--only matmul,quant,softmax-add,train-step] [--rounds N] [--budget MS]
//                          [--skip-report]
//
// Peers (onnxruntime-node, tfjs with the wasm backend) come from bench/.peers/; install them
// with `npm run bench:peers`. Without them their rows are reported as skipped.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SUITES = ['matmul', 'quant', 'softmax-add', 'train-step'];
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : null);
const only = option('--only')?.split(',') ?? SUITES;
const unknown = only.filter((s) => !SUITES.includes(s));
if (unknown.length) {
  console.error(`unknown suite(s) ${unknown.join(', ')}; the suites are ${SUITES.join(', ')}`);
  process.exit(2);
}
// Timing options go to the suites that take them (the training step counts steps instead).
const passOn = ['--rounds', '--budget'].flatMap((name) => (option(name) ? [name, option(name)] : []));

const started = Date.now();
let failed = 0;
for (const suite of only) {
  console.log(`\n=== cpu/${suite} ===`);
  const file = fileURLToPath(new URL(`./${suite}.bench.mjs`, import.meta.url));
  const r = spawnSync(process.execPath, [file, ...(suite === 'train-step' ? [] : passOn)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`cpu/${suite} failed (exit ${r.status ?? r.signal})`);
  }
}
console.log(`\nCPU suites done in ${((Date.now() - started) / 1000).toFixed(0)} s${failed ? `, ${failed} failed` : ''}`);
if (!args.includes('--skip-report')) {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('../report/plots.mjs', import.meta.url))], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
