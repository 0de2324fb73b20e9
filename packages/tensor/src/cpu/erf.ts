// The error function and its complement in float64, to about 1e-15 relative error over the
// whole real line (erfc keeps that relative accuracy deep into its tail, where 1 - erf(x)
// would round to 0). Used by the exact GELU.

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2 / sqrt(pi)
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1 / sqrt(pi)

/** Below this, erf comes from its power series; above, from 1 - erfc. */
const SERIES_LIMIT = 2;
/** Below this, erfc(x) = 1 - erf(x) loses little; above, the continued fraction is used. */
const FRACTION_LIMIT = 0.8;
/** Beyond this |x|, erf(x) rounds to +-1 in float64 (erfc(6) ~ 2e-17). */
const ERF_SATURATION = 6;
/** Beyond this x, erfc(x) underflows to 0 in float64. */
const ERFC_UNDERFLOW = 27;

/**
 * e^(-x^2) without the error of rounding x^2 first (which grows like x^2 ulps): with
 * x = hi + lo, hi having few significant bits so hi^2 is exact, e^(-x^2) = e^(-hi^2) e^(-lo (x + hi)).
 */
function expMinusSquare(x: number): number {
  const a = Math.abs(x); // even function; rounding |x| keeps erf exactly odd
  const hi = Math.round(a * 4096) / 4096;
  const lo = a - hi;
  return Math.exp(-hi * hi) * Math.exp(-lo * (a + hi));
}

/**
 * erf(x) = 2/sqrt(pi) e^(-x^2) sum_n (2x^2)^n x / (1 * 3 * ... * (2n + 1)).
 * Every term has the sign of x, so nothing cancels; about 40 terms at |x| = 2.
 */
function erfSeries(x: number): number {
  const twoX2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= twoX2 / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * expMinusSquare(x) * sum;
}

/**
 * erfc(x) for x >= FRACTION_LIMIT from the even contraction of Laplace's continued fraction,
 *   erfc(x) = e^(-x^2)/sqrt(pi) * 2x / (2x^2 + 1 - 1*2 / (2x^2 + 5 - 3*4 / (2x^2 + 9 - ...))),
 * evaluated from the tail backwards (stable). The depth needed grows like 1/x^2.
 */
function erfcContinuedFraction(x: number): number {
  const z = 2 * x * x;
  const depth = Math.ceil(10 + 100 / (x * x));
  let f = z + 4 * depth + 1;
  for (let n = depth; n >= 1; n--) f = z + 4 * n - 3 - ((2 * n - 1) * (2 * n)) / f;
  return (ONE_OVER_SQRT_PI * expMinusSquare(x) * 2 * x) / f;
}

/** The error function erf(x) = 2/sqrt(pi) * integral from 0 to x of e^(-t^2) dt, in float64. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < SERIES_LIMIT) return erfSeries(x);
  if (Number.isNaN(x)) return x;
  if (a >= ERF_SATURATION) return x > 0 ? 1 : -1;
  const tail = erfcContinuedFraction(a);
  return x > 0 ? 1 - tail : tail - 1;
}

/** The complementary error function erfc(x) = 1 - erf(x), accurate also where it is tiny. */
export function erfc(x: number): number {
  if (x < FRACTION_LIMIT) return 1 - erf(x); // erf(x) < 0.75 here: no cancellation worth noting
  if (x > ERFC_UNDERFLOW) return 0;
  if (Number.isNaN(x)) return x;
  return erfcContinuedFraction(x);
}
