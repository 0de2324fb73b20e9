// Random inputs on the device and spot checks of results: the benchmark times real work on
// random data (never zeros) and confirms, at a few positions, that the work was done right.
import {
  bfloat16BitsToFloat32, clone, contiguous, expand, keep, narrow, randn, reshape, tidy, type Tensor, type TypedArray,
} from '@blora/tensor';

/** The float dtypes the benchmark uses. */
export type BenchDType = 'float32' | 'bfloat16';

// A prime length, so a tiled pattern does not line up with rows of any benchmark shape.
const TILE = 4_194_301;
const tiles = new Map<BenchDType, Tensor>();
let drawn = 0;

/** One block of normal values on `device`, made on the host once per dtype and kept. */
function deviceTile(dtype: BenchDType, device: string): Tensor {
  let tile = tiles.get(dtype);
  if (!tile) {
    tile = keep(tidy(() => randn([TILE], { dtype, seed: 20_240_717 }).to(device)));
    tiles.set(dtype, tile);
  }
  return tile;
}

/**
 * A new contiguous tensor of standard normal values on `device`. Uses the device's own random
 * kernel when it has one; otherwise repeats one host-made block, each tensor starting at a
 * different place in it, so copies of an input hold different values.
 */
export function randomOnDevice(shape: readonly number[], dtype: BenchDType, device = 'cuda'): Tensor {
  drawn += 1;
  try {
    return randn(shape, { dtype, device, seed: drawn });
  } catch {
    // No random kernel on this device: fall through to the tiled host block.
  }
  return tidy(() => {
    const total = shape.reduce((p, d) => p * d, 1);
    const tile = deviceTile(dtype, device);
    const start = (drawn * 7919) % TILE;
    const count = Math.ceil((start + total) / TILE);
    const repeated = reshape(contiguous(expand(reshape(tile, [1, TILE]), [count, TILE])), [count * TILE]);
    return reshape(clone(narrow(repeated, 0, start, total)), shape);
  });
}

/** Decodes element `index` of a host copy in storage representation (bfloat16 as bit patterns). */
function decode(data: TypedArray, dtype: string, index: number): number {
  return dtype === 'bfloat16' ? bfloat16BitsToFloat32(data[index]!) : data[index]!;
}

/** A host copy in storage representation as float64 numbers. */
function decodeAll(data: TypedArray, dtype: string): Float64Array {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = decode(data, dtype, i);
  return out;
}

/** The whole storage of a dense tensor, read back without running any kernel. */
function hostCopy(t: Tensor): TypedArray {
  if (!t.isContiguous || t.offset !== 0 || t.storage.numel !== t.numel) {
    throw new Error(`hostCopy: ${t.describe()} is not a whole dense tensor`);
  }
  return t.toTypedArray();
}

/**
 * Checks out[M,N] = lhs[M,K] . B at a few positions against float64 dot products of the stored
 * operands, where B is `weight` [K, N] (`transposed` false) or the transpose of `weight` [N, K].
 * Every operand is read back whole (no kernel of ours runs for the check).
 * Returns the largest |out - ref| / sum |a_ik b_kj| over the positions.
 */
export function gemmError(lhs: Tensor, weight: Tensor, transposed: boolean, out: Tensor): number {
  const [m, k] = [lhs.shape[0]!, lhs.shape[1]!];
  const n = out.shape[1]!;
  const [a, w, c] = [hostCopy(lhs), hostCopy(weight), hostCopy(out)];
  const positions: [number, number][] = [[0, 0], [m - 1, n - 1], [m >> 1, Math.floor(n / 3)], [7 % m, Math.max(0, n - 2)]];
  let worst = 0;
  for (const [i, j] of positions) {
    let ref = 0;
    let scale = 0;
    for (let p = 0; p < k; p++) {
      const prod = decode(a, lhs.dtype, i * k + p) * decode(w, weight.dtype, transposed ? j * k + p : p * n + j);
      ref += prod;
      scale += Math.abs(prod);
    }
    worst = Math.max(worst, Math.abs(decode(c, out.dtype, i * n + j) - ref) / Math.max(scale, 1e-30));
  }
  return worst;
}

/** Row r of a matrix as float64 numbers, through a fresh copy (offset 0) read back whole. */
function rowValues(t: Tensor, r: number): Float64Array {
  return tidy(() => clone(narrow(t, 0, r, 1)).toFloat64Array());
}

/**
 * Checks a pooling map on a few rows: `expected(inputRow)` gives the output row; returns the
 * largest |out - ref| / max(|ref|, 1e-30).
 */
export function rowMapError(x: Tensor, out: Tensor, expected: (row: Float64Array) => ArrayLike<number>): number {
  let worst = 0;
  for (const r of [0, x.shape[0]! >> 1, x.shape[0]! - 1]) {
    const ref = expected(rowValues(x, r));
    const got = rowValues(out, r);
    for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - ref[k]!) / Math.max(Math.abs(ref[k]!), 1e-30));
  }
  return worst;
}

/** Checks out = a + b on a few rows; returns the largest |out - ref| / (|a| + |b|). */
export function addError(a: Tensor, b: Tensor, out: Tensor): number {
  let worst = 0;
  for (const r of [0, a.shape[0]! >> 1, a.shape[0]! - 1]) {
    const [x, y, z] = [rowValues(a, r), rowValues(b, r), rowValues(out, r)];
    for (let k = 0; k < x.length; k++) {
      worst = Math.max(worst, Math.abs(z[k]! - (x[k]! + y[k]!)) / Math.max(Math.abs(x[k]!) + Math.abs(y[k]!), 1e-30));
    }
  }
  return worst;
}

/** Checks out[r] = sum of row r of x on a few rows; returns the largest |out - ref| / sum |x|. */
export function rowSumError(x: Tensor, out: Tensor): number {
  const sums = decodeAll(hostCopy(out), out.dtype);
  let worst = 0;
  for (const r of [0, x.shape[0]! >> 1, x.shape[0]! - 1]) {
    let ref = 0;
    let scale = 0;
    for (const v of rowValues(x, r)) {
      ref += v;
      scale += Math.abs(v);
    }
    worst = Math.max(worst, Math.abs(sums[r]! - ref) / Math.max(scale, 1e-30));
  }
  return worst;
}

/** Counts the elements where a copy differs from its source (both read back whole, bit for bit). */
export function copyMismatches(src: Tensor, dst: Tensor): number {
  const [x, y] = [hostCopy(src), hostCopy(dst)].map((d) =>
    d.byteLength % 4 === 0 ? new Uint32Array(d.buffer, d.byteOffset, d.byteLength / 4) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  ) as [Uint32Array | Uint8Array, Uint32Array | Uint8Array];
  if (x.length !== y.length) return Math.max(x.length, y.length);
  let bad = 0;
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) bad += 1;
  return bad;
}
