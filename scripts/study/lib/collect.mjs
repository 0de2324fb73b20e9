// Reads what the `blora` commands of one run wrote (summary.json, log.jsonl, the eval JSONs,
// merge-report.json) into the run's result record: the numbers the report needs and nothing
// that can be recomputed from them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Parses a JSON file. */
export function readJson(/** @type {string} */ path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/**
 * The step lines of a `blora finetune` log (non-finite values arrive as the strings "NaN" /
 * "Infinity" and are turned back into numbers).
 *
 * @param {string} path log.jsonl
 * @returns {{ step: number, loss: number, gradNorm: number, skipped: boolean }[]}
 */
export function readStepLog(path) {
  const num = (/** @type {unknown} */ v) => (typeof v === 'number' ? v : Number(v));
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
    .filter((r) => r.type === 'step')
    .map((r) => ({ step: r.step, loss: num(r.loss), gradNorm: num(r.gradNorm), skipped: r.skipped === true }));
}

/**
 * The scores of one `blora eval --out` file.
 *
 * @param {string} path
 * @returns {{ accuracy: number | null, accuracyNorm: number | null, questions: number, heldOutLoss: number | null, heldOutExamples: number }}
 */
export function readScores(path) {
  const e = readJson(path);
  return {
    accuracy: e.multipleChoice?.accuracy ?? null,
    accuracyNorm: e.multipleChoice?.accuracyNorm ?? null,
    questions: e.multipleChoice?.questions ?? 0,
    heldOutLoss: e.heldOut?.loss ?? null,
    heldOutExamples: e.heldOut?.examples ?? 0,
  };
}

/** Mean of the finite values (NaN when there are none). */
function finiteMean(/** @type {number[]} */ values) {
  const ok = values.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}

/**
 * The re-quantization error over all layers of a merge report: the RMS of the per-layer RMSEs
 * and the lowest SQNR, or null for an exact merge.
 *
 * @param {{ requantizationError?: { rmse: number, sqnrDb: number } }[]} layers
 */
function requantizationSummary(layers) {
  const errors = layers.map((l) => l.requantizationError).filter((e) => e !== undefined && e !== null);
  if (!errors.length) return null;
  return {
    rmse: Math.sqrt(errors.reduce((a, e) => a + e.rmse * e.rmse, 0) / errors.length),
    minSqnrDb: Math.min(...errors.map((e) => e.sqnrDb)),
  };
}

/**
 * The result record of a finished run.
 *
 * @param {import('./grid.mjs').PlannedRun} run
 * @param {Record<string, number>} stageSeconds wall seconds of each stage that ran in this invocation
 */
export function collectRun(run, stageSeconds) {
  const adapter = join(run.dir, 'adapter');
  const summary = readJson(join(adapter, 'summary.json'));
  const settings = readJson(join(adapter, 'run.json'));
  const steps = readStepLog(join(adapter, 'log.jsonl'));
  const tail = steps.slice(Math.floor(steps.length * 0.9));
  const mergeReport = readJson(join(run.dir, 'merged-int4', 'merge-report.json'));
  const v = run.variant;
  return {
    id: run.id,
    variant: v.name,
    label: v.label,
    family: v.family,
    seed: run.seed,
    config: {
      method: v.method, lambda: v.lambda, lambdas: v.lambdas, block: v.block, export: v.export, flags: v.flags,
      rank: settings.rank, alpha: settings.alpha, lambdaIn: settings.lambdaIn, lambdaOut: settings.lambdaOut,
      quant: settings.quant, steps: settings.steps, lr: settings.lr, batch: settings.batch, gradAccum: settings.gradAccum,
      device: settings.device,
    },
    parameters: summary.parameters,
    training: {
      firstLoss: summary.result.firstLoss,
      finalLoss: summary.result.finalLoss,
      // The last step's loss is one batch; the mean over the last 10 % of the steps is steadier.
      finalLossMean: finiteMean(tail.map((s) => s.loss)),
      skippedSteps: summary.result.skippedSteps,
      tokensPerSecond: summary.result.tokensPerSecond,
      seconds: summary.result.secondsThisRun,
    },
    curves: { step: steps.map((s) => s.step), loss: steps.map((s) => s.loss), gradNorm: steps.map((s) => s.gradNorm) },
    adapter: readScores(join(run.dir, 'eval.json')),
    merged: {
      mode: mergeReport.mode,
      stored: mergeReport.stored,
      requantization: requantizationSummary(mergeReport.layers ?? []),
      check: mergeReport.check ? { relative: mergeReport.check.relative, maxAbsDiff: mergeReport.check.maxAbsDiff, argmaxChanges: mergeReport.check.argmaxChanges } : null,
      ...readScores(join(run.dir, 'merged-eval.json')),
    },
    stageSeconds,
  };
}

/** Whether every output a run's result needs is on disk. */
export function runOutputsComplete(/** @type {import('./grid.mjs').PlannedRun} */ run) {
  return run.steps.every((s) => existsSync(s.done));
}
