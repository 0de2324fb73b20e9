// Small statistics over seeds: mean, sample standard deviation, and paired differences with
// their standard error (runs of two variants with the same seed share the data order, so the
// per-seed difference removes that part of the noise).

/** Mean of the values (NaN for none). */
export function mean(/** @type {number[]} */ xs) {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Sample standard deviation (n − 1); NaN for fewer than two values. */
export function std(/** @type {number[]} */ xs) {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1));
}

/**
 * The per-seed differences a − b over the seeds both have, their mean and its standard error
 * (std / √n; NaN with fewer than two seeds).
 *
 * @param {Map<number, number>} a value by seed
 * @param {Map<number, number>} b value by seed
 */
export function pairedDifference(a, b) {
  const diffs = [...a.keys()].filter((seed) => b.has(seed)).sort((x, y) => x - y)
    .map((seed) => /** @type {number} */ (a.get(seed)) - /** @type {number} */ (b.get(seed)))
    .filter(Number.isFinite);
  return { n: diffs.length, mean: mean(diffs), se: std(diffs) / Math.sqrt(diffs.length) };
}

/** How many standard errors a difference must clear to count as a separation. */
export const SEPARATION_SE = 2;

/**
 * Whether a paired difference is positive, negative or not separated: its mean must clear
 * SEPARATION_SE standard errors (and at least two seeds are needed to have a standard error).
 *
 * @param {{ n: number, mean: number, se: number }} d
 * @returns {'positive' | 'negative' | 'not separated' | 'too few seeds'}
 */
export function signOf(d) {
  if (d.n < 2 || !Number.isFinite(d.se)) return 'too few seeds';
  // Identical values on every seed: no noise, the sign of the mean decides.
  const margin = SEPARATION_SE * d.se;
  if (d.mean > margin && d.mean !== 0) return 'positive';
  if (d.mean < -margin && d.mean !== 0) return 'negative';
  return 'not separated';
}

/** `mean ± std` with `digits` decimals (just the mean when there is one value). */
export function formatMeanStd(/** @type {number[]} */ xs, digits = 3, scale = 1) {
  const ok = xs.filter(Number.isFinite);
  if (!ok.length) return '—';
  const m = (mean(ok) * scale).toFixed(digits);
  return ok.length < 2 ? m : `${m} ± ${(std(ok) * scale).toFixed(digits)}`;
}
