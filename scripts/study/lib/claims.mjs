// The paper's four claims, each decided from the study's numbers by a stated criterion: paired
// per-seed differences between two variants, which count only when their mean clears
// SEPARATION_SE standard errors. No verdict is written by hand.
import { mean, pairedDifference, signOf, SEPARATION_SE } from './stats.mjs';

/** Fraction of the last steps over which the "late" gradient norm is averaged. */
export const LATE_FRACTION = 0.2;

/**
 * @typedef {object} Verdict
 * @property {string} id
 * @property {string} claim
 * @property {string} criterion
 * @property {'held' | 'did not hold' | 'not separated' | 'too few seeds' | 'not run'} verdict
 * @property {string} evidence the numbers behind the verdict
 */

/** Mean gradient norm over the last LATE_FRACTION of a run's steps (finite values only). */
export function lateGradNorm(/** @type {{ curves: { gradNorm: number[] } }} */ run) {
  const g = run.curves.gradNorm;
  return mean(g.slice(Math.floor(g.length * (1 - LATE_FRACTION))).filter(Number.isFinite));
}

/**
 * The runs grouped by variant, then by seed.
 *
 * @param {any[]} runs result records
 * @returns {Map<string, Map<number, any>>}
 */
export function byVariant(runs) {
  const groups = new Map();
  for (const run of runs) {
    if (!groups.has(run.variant)) groups.set(run.variant, new Map());
    groups.get(run.variant).set(run.seed, run);
  }
  return groups;
}

/** A metric of every run of a variant, by seed (skipping runs where it is not a number). */
function metric(/** @type {Map<number, any> | undefined} */ runs, /** @type {(run: any) => number | null} */ f) {
  const out = new Map();
  for (const [seed, run] of runs ?? []) {
    const v = f(run);
    if (typeof v === 'number' && Number.isFinite(v)) out.set(seed, v);
  }
  return out;
}

const acc = (/** @type {any} */ r) => r.adapter.accuracy;
const mergedAcc = (/** @type {any} */ r) => r.merged.accuracy;
const drop = (/** @type {any} */ r) => (r.adapter.accuracy ?? NaN) - (r.merged.accuracy ?? NaN);

/** "+1.2 ± 0.4 points (n = 3)" for a paired difference of fractions. */
function points(/** @type {{ n: number, mean: number, se: number }} */ d) {
  const se = Number.isFinite(d.se) ? ` ± ${(100 * d.se).toFixed(2)} (SE)` : '';
  return `${d.mean >= 0 ? '+' : ''}${(100 * d.mean).toFixed(2)}${se} points over ${d.n} seed${d.n === 1 ? '' : 's'}`;
}

/** The same for a difference of raw values (losses, norms). */
function raw(/** @type {{ n: number, mean: number, se: number }} */ d) {
  const se = Number.isFinite(d.se) ? ` ± ${d.se.toPrecision(2)} (SE)` : '';
  return `${d.mean >= 0 ? '+' : ''}${d.mean.toPrecision(3)}${se} over ${d.n} seed${d.n === 1 ? '' : 's'}`;
}

/**
 * Combines signs that must all be 'positive' for the claim to hold: any 'negative' refutes it,
 * too few seeds or no separation leave it open.
 *
 * @param {ReturnType<typeof signOf>[]} signs
 * @returns {Verdict['verdict']}
 */
function allPositive(signs) {
  if (signs.includes('negative')) return 'did not hold';
  if (signs.includes('too few seeds')) return 'too few seeds';
  if (signs.every((s) => s === 'positive')) return 'held';
  return 'not separated';
}

const SEP = `by more than ${SEPARATION_SE} standard errors of the per-seed differences`;

/**
 * Decides every claim from the study's runs.
 *
 * @param {any[]} runs
 * @returns {Verdict[]}
 */
export function judgeClaims(runs) {
  const g = byVariant(runs);
  const has = (/** @type {string[]} */ names) => names.every((n) => g.has(n));
  /** @type {Verdict[]} */
  const verdicts = [];

  // (1) QLoRA underfits: its late gradient norm and its final training loss stay above Q-BLoRA's.
  {
    const claim = 'QLoRA underfits: its gradient norms stay high (and its training loss with them)';
    const criterion = `QLoRA's mean gradient norm over the last ${100 * LATE_FRACTION} % of the steps and its final training loss ` +
      `(mean of the last 10 % of the steps) are both above Q-BLoRA λ=2's, ${SEP}.`;
    if (!has(['qlora', 'qblora-l2'])) {
      verdicts.push({ id: '1', claim, criterion, verdict: 'not run', evidence: 'needs the variants qlora and qblora-l2' });
    } else {
      const dg = pairedDifference(metric(g.get('qlora'), lateGradNorm), metric(g.get('qblora-l2'), lateGradNorm));
      const dl = pairedDifference(metric(g.get('qlora'), (r) => r.training.finalLossMean), metric(g.get('qblora-l2'), (r) => r.training.finalLossMean));
      verdicts.push({
        id: '1', claim, criterion, verdict: allPositive([signOf(dg), signOf(dl)]),
        evidence: `late gradient norm QLoRA − Q-BLoRA λ=2: ${raw(dg)}; final training loss: ${raw(dl)}`,
      });
    }
  }

  // (2) Q-BLoRA λ=2 beats QLoRA at equal trainable parameters.
  {
    const claim = 'Q-BLoRA with λ = 2 beats QLoRA at equal trainable parameters';
    const criterion = `Both have the same number of trainable parameters, and Q-BLoRA λ=2's 4-choice accuracy is above QLoRA's ${SEP}.`;
    if (!has(['qlora', 'qblora-l2'])) {
      verdicts.push({ id: '2', claim, criterion, verdict: 'not run', evidence: 'needs the variants qlora and qblora-l2' });
    } else {
      const d = pairedDifference(metric(g.get('qblora-l2'), acc), metric(g.get('qlora'), acc));
      const count = (/** @type {string} */ v) => [...(g.get(v)?.values() ?? [])][0]?.parameters?.trainable;
      const equal = count('qlora') === count('qblora-l2');
      verdicts.push({
        id: '2', claim, criterion, verdict: equal ? allPositive([signOf(d)]) : 'did not hold',
        evidence: `accuracy Q-BLoRA λ=2 − QLoRA: ${points(d)}; trainable parameters ${count('qblora-l2')} vs ${count('qlora')}` +
          (equal ? ' (equal)' : ' (NOT equal)'),
      });
    }
  }

  // (3) Too large a λ loses information: λ = 8 falls below the best smaller λ.
  {
    const claim = 'Too large a λ loses information';
    const criterion = `Q-BLoRA's accuracy at the largest λ (8) is below its accuracy at the best smaller λ (highest mean over seeds), ${SEP}.`;
    const smaller = ['qblora-l1', 'qblora-l2', 'qblora-l4'].filter((n) => g.has(n));
    if (!g.has('qblora-l8') || !smaller.length) {
      verdicts.push({ id: '3', claim, criterion, verdict: 'not run', evidence: 'needs qblora-l8 and at least one of qblora-l1, -l2, -l4' });
    } else {
      const best = smaller.reduce((a, b) => (mean([...metric(g.get(b), acc).values()]) > mean([...metric(g.get(a), acc).values()]) ? b : a));
      const d = pairedDifference(metric(g.get(best), acc), metric(g.get('qblora-l8'), acc));
      verdicts.push({
        id: '3', claim, criterion, verdict: allPositive([signOf(d)]),
        evidence: `accuracy ${best} (the best smaller λ) − qblora-l8: ${points(d)}`,
      });
    }
  }

  // (4) QA-BLoRA's merged INT4 model keeps the adapter's accuracy; QLoRA + re-quantization loses some.
  {
    const claim = "QA-BLoRA's merged 4-bit model keeps its accuracy where QLoRA followed by post-training quantization loses it";
    const criterion = 'QLoRA loses more accuracy from its adapter model to its re-quantized INT4 merge than QA-BLoRA (4, 8) loses to ' +
      `its exact INT4 merge, ${SEP}, and QA-BLoRA's own loss is not positive ${SEP}.`;
    if (!has(['qlora', 'qablora-4x8-b32'])) {
      verdicts.push({ id: '4', claim, criterion, verdict: 'not run', evidence: 'needs the variants qlora and qablora-4x8-b32' });
    } else {
      const qa = metric(g.get('qablora-4x8-b32'), drop);
      const dq = pairedDifference(metric(g.get('qlora'), drop), qa);
      const own = pairedDifference(qa, new Map([...qa.keys()].map((s) => [s, 0])));
      const ownSign = signOf(own);
      const verdict = ownSign === 'positive' ? 'did not hold' : allPositive([signOf(dq)]);
      verdicts.push({
        id: '4', claim, criterion, verdict,
        evidence: `accuracy lost by merging, QLoRA − QA-BLoRA (4, 8): ${points(dq)}; QA-BLoRA (4, 8) alone: ${points(own)}`,
      });
    }
  }
  return verdicts;
}

export { acc, mergedAcc, drop };
