// CPU matrix multiply: out[..., m, n] = a[..., m, k] @ b[..., k, n] with equal batch dims.
//
// Cache-blocked in the GotoBLAS style: a KC x NC panel of B and an MC x KC block of A are
// packed into reusable scratch buffers as 4-wide slivers, and a 4 x 4 register-blocked
// micro-kernel multiplies a sliver of A by a sliver of B. Packing reads the operands through
// their strides, so transposed (column-major) and broadcast views are never copied first;
// each packing loop walks the operand's contiguous direction.
//
// Values are packed in the compute type (float32 for float32/float16/bfloat16, float64 for
// float64). The micro-kernel sums one KC-long run in JS numbers and adds it into the output,
// which is stored in the compute type after every run.
import { registerKernel } from '../dispatch.js';
import type { TypedArray } from '../dtype.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '../half.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, storageOf } from './access.js';

/** Rows of A and columns of B per sliver: the micro-tile is SLIVER x SLIVER. */
const SLIVER = 4;
/** Depth (shared dimension) packed at once. */
const KC = 256;
/** Rows of A packed at once (a multiple of SLIVER). */
const MC = 64;
/** Columns of B packed at once (a multiple of SLIVER). */
const NC = 512;

type FloatArray = Float32Array | Float64Array;

/** Packing buffers of one compute type; they grow when needed and are reused by every call. */
interface Scratch {
  a: FloatArray;
  b: FloatArray;
}

const scratch32: Scratch = { a: new Float32Array(0), b: new Float32Array(0) };
const scratch64: Scratch = { a: new Float64Array(0), b: new Float64Array(0) };

function scratchFor(f64: boolean, aSize: number, bSize: number): Scratch {
  const s = f64 ? scratch64 : scratch32;
  if (s.a.length < aSize) s.a = f64 ? new Float64Array(aSize) : new Float32Array(aSize);
  if (s.b.length < bSize) s.b = f64 ? new Float64Array(bSize) : new Float32Array(bSize);
  return s;
}

/** @internal Elements held by the packing buffers (float32 and float64); lets tests see that calls reuse them. */
export function matmulScratchElements(): { float32: number; float64: number } {
  return { float32: scratch32.a.length + scratch32.b.length, float64: scratch64.a.length + scratch64.b.length };
}

// Decoding 16-bit floats through a table keeps the packing loops free of function calls.
const halfTables = new Map<string, Float32Array>();

function decodeTable(dtype: string): Float32Array | null {
  if (dtype !== 'float16' && dtype !== 'bfloat16') return null;
  let table = halfTables.get(dtype);
  if (!table) {
    table = new Float32Array(65536);
    const decode = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
    for (let bits = 0; bits < 65536; bits++) table[bits] = decode(bits);
    halfTables.set(dtype, table);
  }
  return table;
}

/**
 * Packs `lines` lines of `depth` values into slivers of SLIVER lines:
 * dst[s * depth * SLIVER + k * SLIVER + r] = element (line SLIVER*s + r, depth k), where the
 * element sits at src[offset + line * lineStride + k * depthStride]. Missing lines of the last
 * sliver are zero, so the micro-kernel always works on full tiles. For A the lines are rows;
 * for B they are columns.
 */
function packSlivers(
  dst: FloatArray, src: TypedArray, table: Float32Array | null,
  offset: number, lineStride: number, depthStride: number, lines: number, depth: number,
): void {
  // Read along whichever direction is closer to contiguous in memory.
  const alongDepth = Math.abs(depthStride) <= Math.abs(lineStride);
  let d = 0;
  for (let l0 = 0; l0 < lines; l0 += SLIVER, d += depth * SLIVER) {
    const have = Math.min(SLIVER, lines - l0);
    if (alongDepth) {
      for (let r = 0; r < SLIVER; r++) {
        let o = offset + (l0 + r) * lineStride;
        if (r >= have) for (let k = 0; k < depth; k++) dst[d + k * SLIVER + r] = 0;
        else if (table) for (let k = 0; k < depth; k++, o += depthStride) dst[d + k * SLIVER + r] = table[src[o]!]!;
        else for (let k = 0; k < depth; k++, o += depthStride) dst[d + k * SLIVER + r] = src[o]!;
      }
    } else {
      let o = offset + l0 * lineStride;
      for (let k = 0; k < depth; k++, o += depthStride) {
        const row = d + k * SLIVER;
        for (let r = 0; r < SLIVER; r++) {
          dst[row + r] = r >= have ? 0 : table ? table[src[o + r * lineStride]!]! : src[o + r * lineStride]!;
        }
      }
    }
  }
}

const edgeTile = new Float64Array(SLIVER * SLIVER);

/**
 * c[co + r * ldc + q] += sum over k of ap[pa + 4k + r] * bp[pb + 4k + q], for r < rows and
 * q < cols. The sixteen sums live in locals (registers) for the whole run over k.
 */
function microKernel(
  ap: FloatArray, pa: number, bp: FloatArray, pb: number, depth: number,
  c: FloatArray, co: number, ldc: number, rows: number, cols: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let k = 0; k < depth; k++, pa += SLIVER, pb += SLIVER) {
    const a0 = ap[pa]!, a1 = ap[pa + 1]!, a2 = ap[pa + 2]!, a3 = ap[pa + 3]!;
    let b = bp[pb]!;
    c00 += a0 * b; c10 += a1 * b; c20 += a2 * b; c30 += a3 * b;
    b = bp[pb + 1]!;
    c01 += a0 * b; c11 += a1 * b; c21 += a2 * b; c31 += a3 * b;
    b = bp[pb + 2]!;
    c02 += a0 * b; c12 += a1 * b; c22 += a2 * b; c32 += a3 * b;
    b = bp[pb + 3]!;
    c03 += a0 * b; c13 += a1 * b; c23 += a2 * b; c33 += a3 * b;
  }
  if (rows === SLIVER && cols === SLIVER) {
    let o = co;
    c[o] += c00; c[o + 1] += c01; c[o + 2] += c02; c[o + 3] += c03;
    o += ldc;
    c[o] += c10; c[o + 1] += c11; c[o + 2] += c12; c[o + 3] += c13;
    o += ldc;
    c[o] += c20; c[o + 1] += c21; c[o + 2] += c22; c[o + 3] += c23;
    o += ldc;
    c[o] += c30; c[o + 1] += c31; c[o + 2] += c32; c[o + 3] += c33;
    return;
  }
  const t = edgeTile;
  t[0] = c00; t[1] = c01; t[2] = c02; t[3] = c03;
  t[4] = c10; t[5] = c11; t[6] = c12; t[7] = c13;
  t[8] = c20; t[9] = c21; t[10] = c22; t[11] = c23;
  t[12] = c30; t[13] = c31; t[14] = c32; t[15] = c33;
  for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) c[co + r * ldc + q] += t[r * SLIVER + q]!;
}

/** A matrix inside raw storage: element (i, j) is data[offset + i * rowStride + j * colStride]. */
interface MatrixRef {
  data: TypedArray;
  /** Decoding table for 16-bit float storage, null otherwise. */
  table: Float32Array | null;
  offset: number;
  rowStride: number;
  colStride: number;
}

/** c[cOffset + i * n + j] += (A @ B)[i, j] for an m x k matrix A and a k x n matrix B. */
function multiplyInto(a: MatrixRef, b: MatrixRef, c: FloatArray, cOffset: number, m: number, k: number, n: number, s: Scratch): void {
  for (let n0 = 0; n0 < n; n0 += NC) {
    const nb = Math.min(NC, n - n0);
    for (let k0 = 0; k0 < k; k0 += KC) {
      const kb = Math.min(KC, k - k0);
      packSlivers(s.b, b.data, b.table, b.offset + k0 * b.rowStride + n0 * b.colStride, b.colStride, b.rowStride, nb, kb);
      for (let m0 = 0; m0 < m; m0 += MC) {
        const mb = Math.min(MC, m - m0);
        packSlivers(s.a, a.data, a.table, a.offset + m0 * a.rowStride + k0 * a.colStride, a.rowStride, a.colStride, mb, kb);
        // One sliver of B stays in L1 while it meets every sliver of the packed A block.
        for (let j0 = 0; j0 < nb; j0 += SLIVER) {
          const cols = Math.min(SLIVER, nb - j0);
          const cCol = cOffset + m0 * n + n0 + j0;
          for (let i0 = 0; i0 < mb; i0 += SLIVER) {
            microKernel(s.a, i0 * kb, s.b, j0 * kb, kb, c, cCol + i0 * n, n, Math.min(SLIVER, mb - i0), cols);
          }
        }
      }
    }
  }
}

/** Storage offset of the first element of each batch matrix, batch dims in row-major order. */
function batchOffsets(t: Tensor, batchRank: number, count: number): Int32Array {
  const out = new Int32Array(count);
  const idx = new Array<number>(batchRank).fill(0);
  let off = t.offset;
  for (let i = 0; i < count; i++) {
    out[i] = off;
    for (let d = batchRank - 1; d >= 0; d--) {
      idx[d]! += 1;
      off += t.strides[d]!;
      if (idx[d]! < t.shape[d]!) break;
      off -= t.strides[d]! * t.shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * The stride with which dims 0..rank-2 of `t` (batch dims and rows) walk memory as one
 * merged dim, or null when they cannot be merged. Size-1 dims never matter.
 */
function mergedRowStride(t: Tensor): number | null {
  let stride: number | null = null;
  let expected = 0;
  for (let d = t.rank - 2; d >= 0; d--) {
    const size = t.shape[d]!;
    if (size === 1) continue;
    if (stride === null) stride = t.strides[d]!;
    else if (t.strides[d] !== expected) return null;
    expected = t.strides[d]! * size;
  }
  return stride ?? 1;
}

registerKernel('matmul', 'cpu', ([a, b], [out]) => {
  const rank = out!.rank;
  const batchRank = rank - 2;
  const m = a!.shape[rank - 2]!;
  const k = a!.shape[rank - 1]!;
  const n = b!.shape[rank - 1]!;
  const c = outputValues(out!) as FloatArray;
  c.fill(0);
  if (c.length === 0 || k === 0) {
    commitValues(out!, c);
    return;
  }
  let batch = 1;
  for (let d = 0; d < batchRank; d++) batch *= out!.shape[d]!;
  const ref = (t: Tensor, offset: number, rowStride: number): MatrixRef => ({
    data: storageOf(t), table: decodeTable(t.dtype), offset, rowStride, colStride: t.strides[rank - 1]!,
  });
  // x[..., m, k] @ w[k, n] broadcast over the batch: one tall product when a's batch dims fold into its rows.
  const bShared = b!.strides.every((s, d) => d >= batchRank || s === 0 || b!.shape[d] === 1);
  const folded = batch > 1 && bShared ? mergedRowStride(a!) : null;
  const rowsPerProduct = folded === null ? m : batch * m;
  const f64 = out!.dtype === 'float64';
  const s = scratchFor(
    f64,
    Math.ceil(Math.min(rowsPerProduct, MC) / SLIVER) * SLIVER * Math.min(k, KC),
    Math.ceil(Math.min(n, NC) / SLIVER) * SLIVER * Math.min(k, KC),
  );
  const bRowStride = b!.strides[rank - 2]!;
  if (folded !== null) {
    multiplyInto(ref(a!, a!.offset, folded), ref(b!, b!.offset, bRowStride), c, 0, rowsPerProduct, k, n, s);
  } else {
    const aOffsets = batchOffsets(a!, batchRank, batch);
    const bOffsets = batchOffsets(b!, batchRank, batch);
    const aRowStride = a!.strides[rank - 2]!;
    for (let i = 0; i < batch; i++) {
      multiplyInto(ref(a!, aOffsets[i]!, aRowStride), ref(b!, bOffsets[i]!, bRowStride), c, i * m * n, m, k, n, s);
    }
  }
  commitValues(out!, c);
});
