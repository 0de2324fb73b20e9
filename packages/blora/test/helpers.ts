// Float64 references written with plain loops, and fixtures shared by the tests.
import { setOpObserver, tensor, type DType, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { assignInPlace } from '@blora/autograd';
import type { Adapter } from '../src/index.js';

/** Row-major values of a tensor as a plain array. */
export function values(t: Tensor): number[] {
  return Array.from(t.toFloat64Array());
}

/** y = x · Wᵀ for `rows` rows of x [rows, inF] and W [outF, inF]. */
export function refMatmulT(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[r * inF + k]! * w[o * inF + k]!;
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** C = B · A for B [m, rank], A [rank, n]. */
export function refProduct(b: ArrayLike<number>, a: ArrayLike<number>, m: number, rank: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += b[i * rank + k]! * a[k * n + j]!;
      c[i * n + j] = s;
    }
  }
  return c;
}

/** The small matrix C [out/λout, in/λin] of an adapter, from its parameter values. */
export function refCore(adapter: Adapter): Float64Array {
  const pooledOut = adapter.outFeatures / adapter.lambdaOut;
  const pooledIn = adapter.inFeatures / adapter.lambdaIn;
  if (adapter.form === 'matrix') return adapter.loraM!.toFloat64Array();
  return refProduct(adapter.loraB!.toFloat64Array(), adapter.loraA!.toFloat64Array(), pooledOut, adapter.rank, pooledIn);
}

/** ΔW[i, k] = (s / λin) · C[⌊i / λout⌋, ⌊k / λin⌋], written out element by element. */
export function refDeltaWeight(adapter: Adapter): Float64Array {
  const { inFeatures: inF, outFeatures: outF, lambdaIn, lambdaOut, scaling } = adapter;
  const core = refCore(adapter);
  const pooledIn = inF / lambdaIn;
  const dw = new Float64Array(outF * inF);
  for (let i = 0; i < outF; i++) {
    for (let k = 0; k < inF; k++) dw[i * inF + k] = (scaling / lambdaIn) * core[Math.floor(i / lambdaOut) * pooledIn + Math.floor(k / lambdaIn)]!;
  }
  return dw;
}

/**
 * Δy by the adapter's own recipe, in loops: average each run of λin inputs, multiply by C,
 * scale by s, repeat each output λout times (no dropout).
 */
export function refAdapterOutput(adapter: Adapter, x: ArrayLike<number>, rows: number): Float64Array {
  const { inFeatures: inF, outFeatures: outF, lambdaIn, lambdaOut, scaling } = adapter;
  const pooledIn = inF / lambdaIn;
  const pooledOut = outF / lambdaOut;
  const core = refCore(adapter);
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const pooled = new Float64Array(pooledIn);
    for (let j = 0; j < pooledIn; j++) {
      let s = 0;
      for (let t = 0; t < lambdaIn; t++) s += x[r * inF + j * lambdaIn + t]!;
      pooled[j] = s / lambdaIn;
    }
    for (let o = 0; o < pooledOut; o++) {
      let s = 0;
      for (let j = 0; j < pooledIn; j++) s += core[o * pooledIn + j]! * pooled[j]!;
      for (let t = 0; t < lambdaOut; t++) y[r * outF + o * lambdaOut + t] = scaling * s;
    }
  }
  return y;
}

/** Gives every adapter parameter seeded random values in [-scale, scale) (B and M start at zero otherwise). */
export function randomizeAdapter(adapter: Adapter, seed: number, scale = 0.5): void {
  adapter.parameters().forEach((p, i) => {
    const v = tensor(randomValues(p.numel, seed + 101 * i, -scale, scale), { shape: p.shape, dtype: p.dtype });
    assignInPlace(p, v);
    v.dispose();
  });
}

/** A seeded tensor of `shape` in [-1, 1). */
export function seeded(shape: number[], seed: number, dtype: DType = 'float32'): Tensor {
  return tensor(randomValues(shape.reduce((a, b) => a * b, 1), seed), { shape, dtype });
}

/** Largest |a - b| / max(1, |b|) over the elements. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return worst;
}

/** Names of the ops that `fn` runs (the tape keeps recording: the observer passes every op on to the one it replaces). */
export function opsOf(fn: () => unknown): string[] {
  const seen: string[] = [];
  const prev = setOpObserver((r) => {
    seen.push(r.op);
    prev?.(r);
  });
  try {
    fn();
  } finally {
    setOpObserver(prev);
  }
  return seen;
}
