// The logistic sigmoid and SiLU in float64, shared by the unary kernels and SwiGLU (siluMul).

/** 1 / (1 + e^-x) without overflow: e^x is only taken of non-positive arguments. */
export function sigmoidOf(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

/** x * sigmoid(x); its limit -0 at -Infinity (the plain product would be -Inf * 0 = NaN). */
export function siluOf(v: number): number {
  if (v === -Infinity) return -0;
  return v * sigmoidOf(v);
}
