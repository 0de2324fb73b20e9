#!/usr/bin/env node
// `npm run bench:gpu`: the PyTorch peers (bench/gpu/peers.py) and our kernels
// (bench/gpu/ours.bench.ts) on the same GPU, merged into bench/results/gpu-<date>.json with a
// side-by-side table printed last. Without a GPU it prints one line and exits 0.
//
//   node bench/gpu/run.mjs [--quick] [--skip-peers] [--skip-ours] [--skip-lora] [--skip-train] [--skip-quant] [--merge-only] [--out FILE]
//
// Shapes and repeat counts come from BLORA_BENCH_* variables (bench/README.md); the same values
// are handed to both suites so their figures stay comparable.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareReports, comparisonTable, peerOnlyTables } from './compare.mjs';
import { mergeTrainReports, trainComparison, trainTable, trainVariants } from './train-compare.mjs';
import { quantTable, runQuantSuite } from './quant-suite.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

const USAGE = `usage: node bench/gpu/run.mjs [--quick] [--skip-peers] [--skip-ours] [--skip-lora] [--skip-train] [--skip-quant] [--merge-only] [--out FILE]
  --quick       fewer repeats, no PyTorch LoRA training step, fewer steps of ours
  --skip-peers  leave out the PyTorch measurements
  --skip-ours   leave out our kernels
  --skip-lora   leave out the PyTorch LoRA training step
  --skip-train  leave out our training step (bench/gpu/train-step.bench.ts)
  --skip-quant  leave out the fused 4-bit kernel suite (quant.bench.ts, peers_quant.py)
  --merge-only  run nothing: merge the suites' JSON already in BLORA_BENCH_WORK (e.g. of a run
                stopped part-way) into --out; a suite without its file is reported as missing
  --out FILE    merged JSON (default bench/results/gpu-<date>.json)`;

function parseArgs(argv) {
  const opts = { quick: false, skipPeers: false, skipOurs: false, skipLora: false, skipTrain: false, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--skip-peers') opts.skipPeers = true;
    else if (a === '--skip-ours') opts.skipOurs = true;
    else if (a === '--skip-lora') opts.skipLora = true;
    else if (a === '--skip-train') opts.skipTrain = true;
    else if (a === '--skip-quant') opts.skipQuant = true;
    else if (a === '--merge-only') opts.mergeOnly = true;
    else if (a === '--out' && i + 1 < argv.length) opts.out = argv[++i];
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`bench:gpu: unknown argument '${a}'\n${USAGE}`);
      process.exit(2);
    }
  }
  return opts;
}

/** Why no GPU benchmark can run here, or null when one can. */
function whyNoGpu(needTorch) {
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  if (smi.error || smi.status !== 0 || !smi.stdout.trim()) return 'no NVIDIA GPU (nvidia-smi is missing or found no GPU)';
  if (!needTorch) return null;
  const probe = spawnSync('python3', ['-c', 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)'], {
    encoding: 'utf8',
  });
  if (probe.error) return 'python3 is missing';
  if (probe.status !== 0) return 'torch.cuda is not available to python3';
  return null;
}

/** The BLORA_BENCH_* settings as peers.py flags, so both suites measure the same shapes. */
function peerFlags(env, opts) {
  const flags = [];
  const map = {
    BLORA_BENCH_REPEATS: '--repeats',
    BLORA_BENCH_WARMUP: '--warmup',
    BLORA_BENCH_COPY_BYTES: '--copy-bytes',
    BLORA_BENCH_ELEMENTS: '--elements',
    BLORA_BENCH_ROW_LENGTH: '--row-length',
    BLORA_BENCH_GEMM_CASES: '--gemm-cases',
    BLORA_BENCH_GEMM_DTYPES: '--gemm-dtypes',
    BLORA_BENCH_L2_MULTIPLE: '--l2-multiple',
    BLORA_BENCH_NF4_M: '--nf4-m',
    BLORA_BENCH_LORA_STEPS: '--lora-steps',
    BLORA_BENCH_TRAIN_BATCH: '--lora-batch',
    BLORA_BENCH_TRAIN_SEQ: '--lora-seq',
  };
  for (const [name, flag] of Object.entries(map)) if (env[name]) flags.push(flag, env[name]);
  if (env.BLORA_BENCH_TRAIN_CHECKPOINTING === '1' || env.BLORA_BENCH_TRAIN_CHECKPOINTING === 'true') flags.push('--lora-checkpointing');
  if (opts.quick) flags.push('--quick');
  if (opts.skipLora) flags.push('--skip-lora');
  return flags;
}

function readJson(path) {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    console.error(`bench:gpu: cannot read ${path}: ${e.message}`);
    return null;
  }
}

function run(label, command, args, env) {
  console.log(`\n== ${label}: ${command} ${args.join(' ')}`);
  const r = spawnSync(command, args, { cwd: root, env, stdio: 'inherit' });
  if (r.error) {
    console.error(`bench:gpu: ${label} could not start: ${r.error.message}`);
    return 127;
  }
  return r.status ?? 1;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.env.BLORA_BENCH_QUICK === '1' || process.env.BLORA_BENCH_QUICK === 'true') opts.quick = true;
  if (opts.mergeOnly && !process.env.BLORA_BENCH_WORK) {
    console.error('bench:gpu: --merge-only needs BLORA_BENCH_WORK (the folder holding the suites\' JSON)');
    return 2;
  }
  const reason = opts.mergeOnly ? null : whyNoGpu(!opts.skipPeers);
  if (reason) {
    console.log(`bench:gpu: skipped (${reason})`);
    return 0;
  }
  const date = new Date().toISOString().slice(0, 10);
  const out = resolve(root, opts.out ?? join('bench', 'results', `gpu-${date}.json`));
  // BLORA_BENCH_WORK keeps every suite's own JSON in that folder (so a run stopped part-way
  // still leaves the figures it took); by default they go to a temporary folder removed at the end.
  const keepWork = process.env.BLORA_BENCH_WORK;
  if (keepWork) mkdirSync(keepWork, { recursive: true });
  const work = keepWork ? resolve(keepWork) : mkdtempSync(join(tmpdir(), 'blora-bench-gpu-'));
  const env = { ...process.env };
  if (opts.quick) env.BLORA_BENCH_QUICK = '1';
  const status = { peers: null, ours: null, train: null };
  // With --merge-only each suite's figures come from the JSON it left in the work folder.
  const launch = opts.mergeOnly
    ? (/** @type {string} */ label) => (console.log(`== ${label}: taken from ${work}`), 0)
    : run;
  if (process.env.BLORA_BENCH_TRAIN === '0' || process.env.BLORA_BENCH_TRAIN === 'false') opts.skipTrain = true;
  try {
    const peersOut = join(work, 'peers.json');
    const oursOut = join(work, 'ours.json');
    if (!opts.skipPeers) {
      status.peers = launch('PyTorch peers', 'python3', ['bench/gpu/peers.py', '--out', peersOut, ...peerFlags(env, opts)], {
        ...env,
        PYTHONUNBUFFERED: '1',
      });
    }
    if (!opts.skipOurs) {
      status.ours = launch('our kernels', 'npx', ['vitest', 'run', '--config', 'bench/gpu/vitest.config.ts'], {
        ...env,
        BLORA_BENCH_OUT: oursOut,
      });
    }
    // Our training step, one process per variant, so each peak-memory figure is that variant's own.
    const trainReports = [];
    if (!opts.skipOurs && !opts.skipTrain) {
      for (const variant of trainVariants(env)) {
        const trainOut = join(work, `train-${variant}.json`);
        const code = launch(`our training step (${variant})`, 'npx',
          ['vitest', 'run', '--config', 'bench/gpu/vitest.train.config.ts', 'train-step.bench'],
          { ...env, BLORA_BENCH_OUT: trainOut, BLORA_BENCH_TRAIN_VARIANTS: variant });
        if (code !== 0) status.train = code;
        else status.train ??= 0;
        trainReports.push(readJson(trainOut));
      }
    }
    // The fused 4-bit kernels and their PyTorch peers (BLORA_BENCH_QUANT=0 leaves them out).
    if (process.env.BLORA_BENCH_QUANT === '0' || process.env.BLORA_BENCH_QUANT === 'false') opts.skipQuant = true;
    const quant = opts.skipQuant ? null : runQuantSuite(launch, readJson, work, env, opts);
    if (quant) status.quant = Math.max(quant.status.ours ?? 0, quant.status.peers ?? 0);
    const peers = readJson(peersOut);
    const ours = readJson(oursOut);
    const train = mergeTrainReports(trainReports);
    const comparison = compareReports(peers, ours);
    comparison.push(...trainComparison(peers, train));
    const merged = {
      date: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      gpu: peers?.gpu ?? ours?.gpu ?? quant?.peers?.gpu ?? null,
      versions: { ...(peers?.versions ?? {}), node: process.version },
      quick: opts.quick,
      status,
      comparison,
      peers,
      ours,
      train,
      quant: quant && { rows: quant.rows, peers: quant.peers, ours: quant.ours },
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.tmp`, `${JSON.stringify(merged, null, 2)}\n`);
    renameSync(`${out}.tmp`, out);

    const gpuName = merged.gpu?.name ?? merged.gpu?.deviceName ?? 'GPU';
    console.log(`\n== Results on ${gpuName} (medians; ${opts.quick ? 'quick run' : 'full run'})`);
    for (const table of peerOnlyTables(peers)) console.log(`\n${table}`);
    if (ours?.skipped) console.log(`\nours: skipped (${ours.reason})`);
    const oursNote = opts.skipOurs ? 'not run' : ours?.skipped ? 'skipped' : '—';
    const trainText = trainTable(peers, train);
    if (trainText) console.log(`\n${trainText}`);
    if (train?.skipped) console.log(`\ntrain: skipped (${train.reason})`);
    if (quant?.rows.length) console.log(`\nFused 4-bit kernels\n${quantTable(quant.rows)}`);
    if (comparison.length > 0) console.log(`\nOurs vs PyTorch\n${comparisonTable(comparison, oursNote)}`);
    else console.log('\nOurs vs PyTorch: no figures from either side');
    const copy = peers?.results?.find((r) => r.id === 'copy.d2d');
    if (copy) console.log(`ceiling: GB/s rows against the ${copy.value.toFixed(0)} GB/s copy PyTorch measured; TFLOP/s rows against cuBLAS`);
    console.log(`\nbench:gpu: wrote ${out}`);
  } finally {
    if (!keepWork) rmSync(work, { recursive: true, force: true });
  }
  const failed = Object.entries(status).filter(([, s]) => s !== null && s !== 0);
  if (failed.length > 0) {
    console.log(`bench:gpu: ${failed.map(([k, s]) => `${k} exited with ${s}`).join(', ')}`);
    return 1;
  }
  return 0;
}

process.exitCode = main();
