#!/usr/bin/env node
/**
 * Runs the study that tests the paper's claims: QLoRA vs Q-BLoRA (λ = 1, 2, 4, 8) vs QA-LoRA
 * vs QA-BLoRA ((4, 8) on blocks of 32, (8, 8) on blocks of 64 and of 32), over several seeds, through the
 * `blora` command line. Each run fine-tunes, scores the adapter (4-choice accuracy and held-out
 * loss), makes the 4-bit export (exact merge into INT4 for the QA variants, dense merge + INT4
 * re-quantization for QLoRA / Q-BLoRA) and scores it. Everything lands in one results JSON that
 * `node scripts/study/report.mjs` turns into docs/study.md.
 *
 * Resumable: a run whose result.json exists is skipped, and within a run every finished stage
 * is kept. Needs the built packages: npx turbo run build --filter=@blora/blora...
 *
 * Usage: node scripts/study/run.mjs [--device cpu|cuda] [--model DIR] [--steps N] [--seeds 1,2,3]
 *          [--only PATTERNS] [--rank R] [--lr X] [--batch N] [--grad-accum N] [--mc-limit N]
 *          [--test cloze|listed] [--eval-size N] [--out DIR] [--dry-run]
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { collectRun, readJson, readScores, runOutputsComplete } from './lib/collect.mjs';
import { STUDY_DEFAULTS, UNSUPPORTED, VARIANTS, dataFiles, planBaseEval, planStudy, selectVariants } from './lib/grid.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const assets = join(root, 'packages', 'blora', 'assets');
const BLORA_BIN = join(root, 'packages', 'blora', 'bin', 'blora.mjs');

/** The two forms of the 4-choice test (built by scripts/data/build-task.mjs). */
const TEST_FILES = Object.freeze({ cloze: 'test-mc-cloze.jsonl', listed: 'test-mc.jsonl' });

/** The form (a key of TEST_FILES) of a test file. */
const testForm = (/** @type {string} */ mc) => Object.entries(TEST_FILES).find(([, file]) => mc.endsWith(file))?.[0] ?? 'listed';

const USAGE = `Usage: node scripts/study/run.mjs [options]

Runs the grid of adapters x seeds through the blora command line and writes <out>/results.json.

  --device D       cpu or cuda (default ${STUDY_DEFAULTS.device})
  --model DIR      base checkpoint (default: the embedded model, packages/blora/assets/tiny-llama)
  --steps N        optimizer steps per run (default ${STUDY_DEFAULTS.steps})
  --seeds LIST     comma-separated seeds (default ${STUDY_DEFAULTS.seeds.join(',')})
  --only PATTERNS  comma-separated variant names, * as a wildcard (e.g. qlora,qblora-*)
  --rank R         nominal rank r of every adapter (default ${STUDY_DEFAULTS.rank})
  --lr X           peak learning rate (default ${STUDY_DEFAULTS.lr})
  --batch N        examples per micro-batch (default ${STUDY_DEFAULTS.batch})
  --grad-accum N   micro-batches per step (default ${STUDY_DEFAULTS.gradAccum})
  --mc-limit N     score the first N test questions (0: all; default ${STUDY_DEFAULTS.mcLimit})
  --test FORM      cloze (the question alone, each option scored as its answer) or listed (the
                   options listed in the prompt, a letter scored); default ${STUDY_DEFAULTS.test}
  --eval-size N    training examples held out for the held-out loss (default ${STUDY_DEFAULTS.evalSize})
  --out DIR        study directory (default runs/study-<date>)
  --dry-run        print the planned commands and the variants not yet supported; run nothing
`;

/**
 * Parses and checks the command line.
 *
 * @param {string[]} argv
 * @returns {null | { settings: import('./lib/grid.mjs').StudySettings, seeds: number[], only: string | undefined, evalSize: number, dryRun: boolean }}
 */
export function parseStudyArgs(argv) {
  const text = /** @type {{ type: 'string', multiple: false }} */ ({ type: 'string', multiple: false });
  const { values } = parseArgs({
    args: argv,
    options: {
      device: text, model: text, steps: text, seeds: text, only: text, rank: text, lr: text, batch: text,
      'grad-accum': text, 'mc-limit': text, test: text, 'eval-size': text, out: text, 'dry-run': { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return null;
  const int = (/** @type {'steps' | 'rank' | 'batch' | 'grad-accum' | 'mc-limit' | 'eval-size'} */ name, /** @type {number} */ fallback, min = 1) => {
    const given = values[name];
    if (given === undefined) return fallback;
    const n = Number(given);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${given}'`);
    return n;
  };
  const device = values.device ?? STUDY_DEFAULTS.device;
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`--device must be cpu or cuda, got '${device}'`);
  const lr = values.lr === undefined ? STUDY_DEFAULTS.lr : Number(values.lr);
  if (!(lr > 0)) throw new Error(`--lr must be a positive number, got '${values.lr}'`);
  const seeds = values.seeds === undefined ? [...STUDY_DEFAULTS.seeds] : values.seeds.split(',').map((t) => Number(t.trim()));
  if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0) || new Set(seeds).size !== seeds.length) {
    throw new Error(`--seeds must be distinct integers >= 0 separated by commas, got '${values.seeds}'`);
  }
  const test = values.test ?? STUDY_DEFAULTS.test;
  if (!(test in TEST_FILES)) throw new Error(`--test must be ${Object.keys(TEST_FILES).join(' or ')}, got '${test}'`);
  const stamp = new Date().toISOString().slice(0, 10);
  return {
    settings: {
      out: resolve(values.out ?? join(root, 'runs', `study-${stamp}`)),
      model: resolve(values.model ?? join(assets, 'tiny-llama')),
      mc: join(assets, 'wordnet-task', TEST_FILES[/** @type {keyof typeof TEST_FILES} */ (test)]),
      device,
      steps: int('steps', STUDY_DEFAULTS.steps),
      rank: int('rank', STUDY_DEFAULTS.rank),
      lr,
      batch: int('batch', STUDY_DEFAULTS.batch),
      gradAccum: int('grad-accum', STUDY_DEFAULTS.gradAccum),
      mcLimit: int('mc-limit', STUDY_DEFAULTS.mcLimit, 0),
    },
    seeds,
    only: values.only,
    evalSize: int('eval-size', STUDY_DEFAULTS.evalSize),
    dryRun: values['dry-run'] ?? false,
  };
}

/** A path as the reader should see it: relative to the repository when inside it. */
const shown = (/** @type {string} */ p) => (p.startsWith(root) ? relative(root, p) || '.' : p);

/** One `blora` invocation as a shell command, runnable from the repository root. */
export function commandLine(/** @type {string[]} */ argv) {
  const quote = (/** @type {string} */ a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return ['node', shown(BLORA_BIN), ...argv.map((a) => quote(shown(a)))].join(' ');
}

/**
 * Runs `blora <argv>` in a child process (so each run starts clean and a crash stays contained),
 * appending its output to `logFile`. Resolves to the exit code and wall seconds.
 *
 * @param {string[]} argv
 * @param {string} logFile
 * @returns {Promise<{ code: number, seconds: number }>}
 */
function runBlora(argv, logFile) {
  const started = performance.now();
  writeFileSync(logFile, `$ ${commandLine(argv)}\n`, { flag: 'a' });
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [BLORA_BIN, ...argv], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (/** @type {Buffer} */ chunk) => writeFileSync(logFile, chunk, { flag: 'a' });
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    child.on('close', (code) => resolveRun({ code: code ?? 1, seconds: (performance.now() - started) / 1000 }));
  });
}

/** The last lines of a log, for a failure message. */
function tailOf(/** @type {string} */ file, lines = 3) {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n') : '';
}

/** Versions and machine of this invocation (git is only read). */
async function environment(/** @type {string} */ device) {
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // Not a git checkout.
  }
  let kernels = 'TypeScript kernels';
  try {
    const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
    const info = cpuKernelsInfo();
    kernels = info.native ? `native CPU kernels (${info.isa}, ${info.threads} threads)` : `TypeScript kernels (${'reason' in info ? info.reason : 'not built'})`;
  } catch {
    // Not built: the TypeScript kernels run.
  }
  const version = readJson(join(root, 'packages', 'blora', 'package.json')).version;
  return { node: process.version, blora: version, commit, device, cpu: cpus()[0]?.model ?? 'unknown', cpuKernels: kernels };
}

/** Writes the study's fixed split (seed 42) of the embedded training set, unless already there. */
async function writeDataSplit(/** @type {string} */ out, /** @type {number} */ evalSize) {
  const files = dataFiles(out);
  if (existsSync(files.train) && existsSync(files.heldOut)) return;
  const { readAlpacaJsonl, splitHeldOut } = await import('@blora/blora');
  const split = splitHeldOut(readAlpacaJsonl(join(assets, 'wordnet-task', 'train.jsonl')), evalSize, 42);
  const jsonl = (/** @type {{instruction: string, input?: string, output: string}[]} */ rows) =>
    rows.map((e) => JSON.stringify({ instruction: e.instruction, input: e.input ?? '', output: e.output })).join('\n') + '\n';
  mkdirSync(join(out, 'data'), { recursive: true });
  writeFileSync(files.heldOut, jsonl(split.heldOut));
  writeFileSync(files.train, jsonl(split.train));
}

/** Settings that change a run's numbers: every run of one study directory must share them. */
const RUN_DEFINING = /** @type {const} */ (['model', 'mc', 'steps', 'rank', 'lr', 'batch', 'gradAccum', 'mcLimit', 'evalSize']);

/**
 * Records the run-defining settings in `file` on the first invocation; later invocations must
 * match them. Returns a message naming the differences, or null.
 *
 * @param {string} file
 * @param {import('./lib/grid.mjs').StudySettings & { evalSize: number }} settings
 */
function checkStudySettings(file, settings) {
  const current = Object.fromEntries(RUN_DEFINING.map((k) => [k, settings[k]]));
  if (!existsSync(file)) {
    writeFileSync(file, `${JSON.stringify(current, null, 2)}\n`);
    return null;
  }
  const saved = readJson(file);
  const differ = RUN_DEFINING.filter((k) => saved[k] !== current[k]);
  if (!differ.length) return null;
  return `${shown(settings.out)} holds a study with other settings (${differ.map((k) => `${k}: ${saved[k]} there, ${current[k]} now`).join('; ')}); ` +
    'use the same settings to continue it, or a new --out';
}

/** Every finished run under the study directory (any seed), in grid order. */
function completedRuns(/** @type {string} */ out) {
  return VARIANTS.flatMap((v) => {
    const dir = join(out, 'runs', v.name);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((d) => /^seed-\d+$/.test(d)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
      .map((d) => join(dir, d, 'result.json')).filter((f) => existsSync(f)).map((f) => readJson(f));
  });
}

async function main() {
  let parsed;
  try {
    parsed = parseStudyArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`study: ${/** @type {Error} */ (error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!parsed) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { settings: s, seeds, only, evalSize, dryRun } = parsed;
  let selection;
  let runs;
  try {
    selection = selectVariants(only);
    runs = planStudy(s, selection.variants, seeds);
  } catch (error) {
    // A bad pattern, or a variant that cannot take this rank (QA-LoRA's factor rank is rank / λin).
    process.stderr.write(`study: ${/** @type {Error} */ (error).message}${only ? '' : '; pick the variants that can with --only'}\n`);
    return 2;
  }
  const base = planBaseEval(s);

  if (dryRun) {
    const lines = [`# study in ${shown(s.out)}: ${runs.length} runs (${selection.variants.length} variants x ${seeds.length} seeds)`,
      `# data: the embedded WordNet set split once (seed 42, ${evalSize} held out) into ${shown(dataFiles(s.out).train)} and ${shown(dataFiles(s.out).heldOut)}`,
      commandLine(base.argv)];
    for (const run of runs) {
      lines.push(`# ${run.id}${existsSync(run.result) ? ' (done, skipped)' : ''}`);
      for (const step of run.steps) lines.push(commandLine(step.argv));
    }
    for (const u of selection.unsupported) lines.push(`# ${u.name} (${u.label}): ${u.reason}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }

  if (!existsSync(join(root, 'packages', 'blora', 'dist', 'cli', 'main.js'))) {
    process.stderr.write('study: the blora command is not built; run: npx turbo run build --filter=@blora/blora...\n');
    return 2;
  }
  const lacking = ['config.json', 'tokenizer.json'].filter((f) => !existsSync(join(s.model, f)));
  if (lacking.length) {
    process.stderr.write(`study: --model ${shown(s.model)} lacks ${lacking.join(', ')} (expected a Hugging Face checkpoint directory)\n`);
    return 2;
  }
  mkdirSync(s.out, { recursive: true });
  const mismatch = checkStudySettings(join(s.out, 'study.json'), { ...s, evalSize });
  if (mismatch) {
    process.stderr.write(`study: ${mismatch}\n`);
    return 2;
  }
  await writeDataSplit(s.out, evalSize);
  const env = await environment(s.device);
  const started = performance.now();
  process.stderr.write(`study: ${runs.length} runs in ${shown(s.out)} on ${s.device} (${env.cpuKernels})\n`);

  if (!existsSync(base.done)) {
    const r = await runBlora(base.argv, join(s.out, 'base-eval.log'));
    if (r.code !== 0) {
      process.stderr.write(`study: scoring the base model failed:\n${tailOf(join(s.out, 'base-eval.log'))}\n`);
      return 1;
    }
  }

  /** @type {{ id: string, stage: string, code: number, message: string }[]} */
  const failures = [];
  for (const [i, run] of runs.entries()) {
    if (existsSync(run.result)) {
      process.stderr.write(`[${i + 1}/${runs.length}] ${run.id}: done, skipped\n`);
      continue;
    }
    mkdirSync(run.dir, { recursive: true });
    const timingFile = join(run.dir, 'timing.json');
    /** @type {Record<string, number>} */
    const seconds = existsSync(timingFile) ? readJson(timingFile) : {};
    let failed = false;
    for (const step of run.steps) {
      if (existsSync(step.done)) continue;
      // An interrupted fine-tune leaves a directory without summary.json: start it again.
      if (step.stage === 'finetune') rmSync(join(run.dir, 'adapter'), { recursive: true, force: true });
      const log = join(run.dir, `${step.stage}.log`);
      process.stderr.write(`[${i + 1}/${runs.length}] ${run.id}: ${step.stage}\n`);
      const r = await runBlora(step.argv, log);
      if (r.code !== 0) {
        failures.push({ id: run.id, stage: step.stage, code: r.code, message: tailOf(log) });
        process.stderr.write(`  failed (exit ${r.code}):\n${tailOf(log)}\n`);
        failed = true;
        break;
      }
      seconds[step.stage] = r.seconds;
      writeFileSync(timingFile, `${JSON.stringify(seconds)}\n`);
    }
    if (failed || !runOutputsComplete(run)) continue;
    writeFileSync(run.result, `${JSON.stringify(collectRun(run, seconds), null, 2)}\n`);
  }

  // The results hold every finished run of the study directory, also those of earlier invocations
  // with other --only / --seeds (the settings that change a run's numbers are the same for all).
  const done = completedRuns(s.out);
  const allSeeds = [...new Set(done.map((r) => r.seed))].sort((a, b) => a - b);
  // One command that reruns every finished run of the directory (invocations may have split the grid).
  const rerun = ['node', 'scripts/study/run.mjs', '--device', s.device, '--model', shown(s.model), '--steps', String(s.steps),
    '--seeds', allSeeds.join(','), '--rank', String(s.rank), '--lr', String(s.lr), '--batch', String(s.batch),
    '--grad-accum', String(s.gradAccum), '--mc-limit', String(s.mcLimit), '--test', testForm(s.mc), '--eval-size', String(evalSize),
    '--out', shown(s.out)].join(' ');
  const results = {
    study: {
      created: new Date().toISOString(),
      command: `node scripts/study/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
      rerun,
      settings: { ...s, out: shown(s.out), model: shown(s.model), mc: shown(s.mc), seeds: allSeeds, evalSize },
      environment: env,
      wallSeconds: (performance.now() - started) / 1000,
    },
    base: readScores(base.done),
    unsupported: UNSUPPORTED,
    runs: done,
    failures,
  };
  const resultsFile = join(s.out, 'results.json');
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  const finished = runs.filter((r) => existsSync(r.result)).length;
  process.stderr.write(`study: ${finished} of ${runs.length} runs complete (${done.length} in the study directory), ${failures.length} failed; ` +
    `results in ${shown(resultsFile)}\nreport: node scripts/study/report.mjs ${shown(resultsFile)}\n`);
  return failures.length ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
