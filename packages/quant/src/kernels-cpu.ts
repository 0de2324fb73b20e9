// CPU kernels of the quantized-weight ops (contract in ops.ts). The matmuls never build the
// dense weight: they dequantize a few rows at a time into a small scratch buffer (about
// SCRATCH_ELEMENTS values) and use each chunk against every activation row.
import { registerKernel, type Attrs, type Tensor } from '@blora/tensor';
import { dequantizeFourBitRange } from './blockwise.js';
import { DECODE_TILE_COLUMNS, decodeTileSizes, tileAbsmaxIndex, tileCodeIndex } from './decode-tiles.js';
import { restoreBlockwise8 } from './double-quant.js';
import { f32 } from './float.js';
import { hostBytes, hostFloats, writeFloats } from './host.js';
import { denseLowRankAddend } from './low-rank-addend.js';
import { dequantizeIntRows, type IntBits, type IntBlockLayout } from './int-blocks.js';
import { QUANT_OPS } from './ops.js';

/** Target size (elements) of the scratch buffer holding dequantized weight rows. */
export const SCRATCH_ELEMENTS = 16384;

/** Writes dequantized weight rows `rowStart .. rowStart + rowCount` (row-major) into `out`. */
type RowDecoder = (rowStart: number, rowCount: number, out: Float64Array) => void;

interface WeightDims {
  outFeatures: number;
  inFeatures: number;
}

function dims(attrs: Attrs): WeightDims {
  return { outFeatures: attrs['outFeatures'] as number, inFeatures: attrs['inFeatures'] as number };
}

function rowsPerChunk({ outFeatures, inFeatures }: WeightDims): number {
  return Math.max(1, Math.min(outFeatures, Math.floor(SCRATCH_ELEMENTS / inFeatures)));
}

/**
 * Adds the op's optional addend (input 4, attrs addLambda / addScale; low-rank with its factor,
 * input 5, and addRank) to the float64 product `y` [rows, n]: y[m, j] += scale · addend[m,
 * floor(j / λ)], the scaled addend computed in the addend's dtype (as the device kernels do).
 */
function addAddend(y: Float64Array, n: number, addend: Tensor | undefined, attrs: Attrs, factor?: Tensor): void {
  if (!addend) return;
  const lambda = attrs['addLambda'] as number;
  const scale = attrs['addScale'] as number;
  const values = factor
    ? denseLowRankAddend(hostFloats(addend), hostFloats(factor), attrs['addRank'] as number, addend.dtype === 'float32')
    : hostFloats(addend);
  const round = addend.dtype === 'float32' ? Math.fround : (v: number) => v;
  const width = n / lambda;
  for (let q = 0; q < values.length; q++) {
    const v = round(scale * values[q]!);
    const start = Math.floor(q / width) * n + (q % width) * lambda;
    for (let e = 0; e < lambda; e++) y[start + e]! += v;
  }
}

/** y[m, r] = Σ_c x[m, c] · W[r, c]. */
function matmulKernel(x: Tensor, out: Tensor, d: WeightDims, decode: RowDecoder, addend?: Tensor, attrs: Attrs = {}, factor?: Tensor): void {
  const { outFeatures, inFeatures } = d;
  const xs = hostFloats(x);
  const rows = xs.length / inFeatures;
  const y = new Float64Array(rows * outFeatures);
  const chunk = rowsPerChunk(d);
  const scratch = new Float64Array(chunk * inFeatures);
  for (let r0 = 0; r0 < outFeatures; r0 += chunk) {
    const count = Math.min(chunk, outFeatures - r0);
    decode(r0, count, scratch);
    for (let m = 0; m < rows; m++) {
      const xBase = m * inFeatures;
      const yBase = m * outFeatures + r0;
      for (let r = 0; r < count; r++) {
        const wBase = r * inFeatures;
        let acc = 0;
        for (let c = 0; c < inFeatures; c++) acc += xs[xBase + c]! * scratch[wBase + c]!;
        y[yBase + r] = acc;
      }
    }
  }
  addAddend(y, outFeatures, addend, attrs, factor);
  writeFloats(out, y);
}

/** dx[m, c] = Σ_r dy[m, r] · W[r, c]. */
function matmulTransposedKernel(dy: Tensor, out: Tensor, d: WeightDims, decode: RowDecoder, addend?: Tensor, attrs: Attrs = {},
  factor?: Tensor): void {
  const { outFeatures, inFeatures } = d;
  const dys = hostFloats(dy);
  const rows = dys.length / outFeatures;
  const dx = new Float64Array(rows * inFeatures);
  const chunk = rowsPerChunk(d);
  const scratch = new Float64Array(chunk * inFeatures);
  for (let r0 = 0; r0 < outFeatures; r0 += chunk) {
    const count = Math.min(chunk, outFeatures - r0);
    decode(r0, count, scratch);
    for (let m = 0; m < rows; m++) {
      const dxBase = m * inFeatures;
      for (let r = 0; r < count; r++) {
        const g = dys[m * outFeatures + r0 + r]!;
        if (g === 0) continue;
        const wBase = r * inFeatures;
        for (let c = 0; c < inFeatures; c++) dx[dxBase + c]! += g * scratch[wBase + c]!;
      }
    }
  }
  addAddend(dx, inFeatures, addend, attrs, factor);
  writeFloats(out, dx);
}

function dequantizeKernel(out: Tensor, d: WeightDims, decode: RowDecoder): void {
  const dense = new Float64Array(d.outFeatures * d.inFeatures);
  decode(0, d.outFeatures, dense);
  writeFloats(out, dense);
}

function fourBitDecoder(packedT: Tensor, absmaxT: Tensor, tableT: Tensor, attrs: Attrs): RowDecoder {
  const packed = hostBytes(packedT);
  const absmax = hostFloats(absmaxT);
  const table = hostFloats(tableT);
  const blocksize = attrs['blocksize'] as number;
  const inFeatures = attrs['inFeatures'] as number;
  return (rowStart, rowCount, out) =>
    dequantizeFourBitRange(packed, absmax, table, blocksize, rowStart * inFeatures, rowCount * inFeatures, out);
}

function intDecoder(bits: IntBits, codesT: Tensor, scalesT: Tensor, offsetsT: Tensor, attrs: Attrs): RowDecoder {
  const codes = hostBytes(codesT);
  const scales = hostFloats(scalesT);
  const offsets = hostFloats(offsetsT);
  const layout: IntBlockLayout = {
    outFeatures: attrs['outFeatures'] as number,
    inFeatures: attrs['inFeatures'] as number,
    blockRows: attrs['blockRows'] as number,
    blockCols: attrs['blockCols'] as number,
  };
  return (rowStart, rowCount, out) => dequantizeIntRows(codes, bits, scales, offsets, layout, rowStart, rowCount, out);
}

registerKernel(QUANT_OPS.nf4Matmul, 'cpu', ([x, packed, absmax, table, addend, factor], [out], attrs) =>
  matmulKernel(x!, out!, dims(attrs), fourBitDecoder(packed!, absmax!, table!, attrs), addend, attrs, factor));
registerKernel(QUANT_OPS.nf4MatmulT, 'cpu', ([dy, packed, absmax, table, addend, factor], [out], attrs) =>
  matmulTransposedKernel(dy!, out!, dims(attrs), fourBitDecoder(packed!, absmax!, table!, attrs), addend, attrs, factor));
registerKernel(QUANT_OPS.nf4Dequantize, 'cpu', ([packed, absmax, table], [out], attrs) =>
  dequantizeKernel(out!, dims(attrs), fourBitDecoder(packed!, absmax!, table!, attrs)));

for (const bits of [4, 8] as const) {
  registerKernel(`int${bits}Matmul`, 'cpu', ([x, codes, scales, offsets, addend, factor], [out], attrs) =>
    matmulKernel(x!, out!, dims(attrs), intDecoder(bits, codes!, scales!, offsets!, attrs), addend, attrs, factor));
  registerKernel(`int${bits}MatmulT`, 'cpu', ([dy, codes, scales, offsets, addend, factor], [out], attrs) =>
    matmulTransposedKernel(dy!, out!, dims(attrs), intDecoder(bits, codes!, scales!, offsets!, attrs), addend, attrs, factor));
  registerKernel(`int${bits}Dequantize`, 'cpu', ([codes, scales, offsets], [out], attrs) =>
    dequantizeKernel(out!, dims(attrs), intDecoder(bits, codes!, scales!, offsets!, attrs)));
}

/** Decodes rows of a 4-bit absmax weight held in the decode tile layout (blocks of 64). */
/**
 * Decodes rows of a weight in the decode tile layout: `value(code, block)` for each code, `block`
 * the index of its group's statistics in the layout (tileAbsmaxIndex).
 */
function tileRowDecoder(codesT: Tensor, attrs: Attrs, value: (code: number, block: number) => number): RowDecoder {
  const codes = hostBytes(codesT);
  const inFeatures = attrs['inFeatures'] as number;
  const groups = inFeatures / DECODE_TILE_COLUMNS;
  return (rowStart, rowCount, out) => {
    for (let r = 0; r < rowCount; r++) {
      const row = rowStart + r;
      for (let c = 0; c < inFeatures; c += 2) {
        const block = tileAbsmaxIndex(row, c >> 6, groups);
        const byte = codes[tileCodeIndex(row, c, groups)]!;
        out[r * inFeatures + c] = value(byte >> 4, block);
        out[r * inFeatures + c + 1] = value(byte & 15, block);
      }
    }
  };
}

/** NF4 / FP4 in the decode tile layout: the same values as fourBitDecoder. */
function tileDecoder(codesT: Tensor, absmaxT: Tensor, tableT: Tensor, attrs: Attrs): RowDecoder {
  const absmax = hostFloats(absmaxT);
  const table = hostFloats(tableT);
  return tileRowDecoder(codesT, attrs, (code, block) => f32(table[code]! * absmax[block]!));
}

registerKernel(QUANT_OPS.nf4DecodeTiles, 'cpu', ([packedT, absmaxT], [codesOut, absmaxOut], attrs) => {
  const { outFeatures, inFeatures } = dims(attrs);
  const packed = hostBytes(packedT!);
  const absmax = hostFloats(absmaxT!);
  const groups = inFeatures / DECODE_TILE_COLUMNS;
  const sizes = decodeTileSizes(outFeatures, inFeatures);
  const codes = new Uint8Array(sizes.codes);
  const tileAbsmax = new Float64Array(sizes.absmax);
  for (let row = 0; row < outFeatures; row++) {
    for (let c = 0; c < inFeatures; c += 2) codes[tileCodeIndex(row, c, groups)] = packed[(row * inFeatures + c) >> 1]!;
    for (let q = 0; q < groups; q++) tileAbsmax[tileAbsmaxIndex(row, q, groups)] = absmax[row * groups + q]!;
  }
  (codesOut!.storage.handle as Uint8Array).set(codes, codesOut!.offset);
  writeFloats(absmaxOut!, tileAbsmax);
});
registerKernel(QUANT_OPS.nf4MatmulTiles, 'cpu', ([x, codes, absmax, table, addend, factor], [out], attrs) =>
  matmulKernel(x!, out!, dims(attrs), tileDecoder(codes!, absmax!, table!, attrs), addend, attrs, factor));

/** INT4 in the decode tile layout: the same values as dequantizeIntRows. */
function intTileDecoder(codesT: Tensor, scalesT: Tensor, offsetsT: Tensor, attrs: Attrs): RowDecoder {
  const scales = hostFloats(scalesT);
  const offsets = hostFloats(offsetsT);
  return tileRowDecoder(codesT, attrs, (code, block) => f32(scales[block]! * code + offsets[block]!));
}

registerKernel(QUANT_OPS.int4DecodeTiles, 'cpu', ([codesT, scalesT, offsetsT], [codesOut, scalesOut, offsetsOut], attrs) => {
  const { outFeatures, inFeatures } = dims(attrs);
  const packed = hostBytes(codesT!);
  const scales = hostFloats(scalesT!);
  const offsets = hostFloats(offsetsT!);
  const groups = inFeatures / DECODE_TILE_COLUMNS;
  const sizes = decodeTileSizes(outFeatures, inFeatures);
  const codes = new Uint8Array(sizes.codes);
  const tileScales = new Float64Array(sizes.absmax);
  const tileOffsets = new Float64Array(sizes.absmax);
  for (let row = 0; row < outFeatures; row++) {
    for (let c = 0; c < inFeatures; c += 2) codes[tileCodeIndex(row, c, groups)] = packed[(row * inFeatures + c) >> 1]!;
    for (let q = 0; q < groups; q++) {
      tileScales[tileAbsmaxIndex(row, q, groups)] = scales[row * groups + q]!;
      tileOffsets[tileAbsmaxIndex(row, q, groups)] = offsets[row * groups + q]!;
    }
  }
  (codesOut!.storage.handle as Uint8Array).set(codes, codesOut!.offset);
  writeFloats(scalesOut!, tileScales);
  writeFloats(offsetsOut!, tileOffsets);
});
registerKernel(QUANT_OPS.int4MatmulTiles, 'cpu', ([x, codes, scales, offsets, addend, factor], [out], attrs) =>
  matmulKernel(x!, out!, dims(attrs), intTileDecoder(codes!, scales!, offsets!, attrs), addend, attrs, factor));

registerKernel(QUANT_OPS.dequantizeBlockwise8, 'cpu', ([codes, absmax, code], [out], attrs) => {
  const restored = restoreBlockwise8(hostBytes(codes!), hostFloats(absmax!), hostFloats(code!),
    attrs['blocksize'] as number, attrs['offset'] as number);
  writeFloats(out!, restored);
});
