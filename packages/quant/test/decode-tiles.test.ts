import { describe, expect, it } from 'vitest';
import { tensor, transpose, type Tensor } from '@blora/tensor';
import { assertClose, nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import {
  FourBitLinear, IntBlockLinear, decodeTileSizes, decodeTilesFit, int4DecodeTiles, int4MatmulTiles, intDecodeTilesFit, intMatmul,
  nf4DecodeTiles, nf4Matmul, nf4MatmulTiles, quantizeLinear, type ScaleDType,
} from '../src/index.js';
import { normalFloat32, refMatmul, refNibble, refWeight } from './helpers.js';

/** An NF4 weight [out, in] (blocks of 64, double-quantized) from seeded normal values. */
function nf4Weight(out: number, inF: number, seed: number): FourBitLinear {
  const q = quantizeLinear(tensor(normalFloat32(out * inF, seed, 0.5), { shape: [out, inF] }), { format: 'nf4', blocksize: 64 });
  if (!(q instanceof FourBitLinear)) throw new Error('expected a 4-bit weight');
  return q;
}

/**
 * Reads the tile layout back without its index helpers: walks every tile byte in storage order
 * (set, group, lane, half, byte) and names the row and columns it must hold.
 */
function untile(codes: Uint8Array, absmax: Float64Array, out: number, inF: number): { nibbles: Int16Array; scales: Float64Array } {
  const groups = inF / 64;
  const nibbles = new Int16Array(Math.ceil(out / 16) * 16 * inF).fill(-1);
  const scales = new Float64Array(Math.ceil(out / 16) * 16 * groups).fill(NaN);
  let i = 0;
  for (let set = 0; set * 16 < out; set++) {
    for (let group = 0; group < groups; group++) {
      for (let lane = 0; lane < 32; lane++) {
        for (let half = 0; half < 2; half++) {
          for (let b = 0; b < 8; b++, i++) {
            const row = set * 16 + (lane >> 2) + 8 * half;
            const col = group * 64 + 16 * (lane & 3) + 2 * b;
            nibbles[row * inF + col] = codes[i]! >> 4;
            nibbles[row * inF + col + 1] = codes[i]! & 15;
          }
        }
      }
    }
  }
  let j = 0;
  for (let set = 0; set * 16 < out; set++) {
    for (let quad = 0; quad < groups / 4; quad++) {
      for (let g = 0; g < 8; g++) {
        for (let half = 0; half < 2; half++) {
          for (let u = 0; u < 4; u++, j++) scales[(set * 16 + g + 8 * half) * groups + 4 * quad + u] = absmax[j]!;
        }
      }
    }
  }
  return { nibbles, scales };
}

describe('the NF4 decode tile layout (nf4DecodeTiles)', () => {
  it('holds every code and absmax of the weight where the layout says, zeros in the padding rows', () => {
    for (const [out, inF] of [[40, 512], [16, 256], [3, 768]] as const) {
      const q = nf4Weight(out, inF, out + inF);
      const tiles = nf4DecodeTiles(q.packed, q.absmaxTensor(), q.opAttrs);
      const sizes = decodeTileSizes(out, inF);
      expect(tiles.codes.shape).toEqual([sizes.codes]);
      expect(tiles.absmax.shape).toEqual([sizes.absmax]);
      expect(tiles.codes.dtype).toBe('uint8');
      expect(tiles.absmax.dtype).toBe('float32');
      const { nibbles, scales } = untile(tiles.codes.toTypedArray() as Uint8Array, tiles.absmax.toFloat64Array(), out, inF);
      const packed = q.packed.toTypedArray() as Uint8Array;
      const absmax = q.absmaxTensor().toFloat64Array();
      const groups = inF / 64;
      for (let r = 0; r < nibbles.length / inF; r++) {
        for (let c = 0; c < inF; c++) {
          const expected = r < out ? refNibble(packed, r * inF + c) : 0;
          if (nibbles[r * inF + c] !== expected) throw new Error(`[${out}, ${inF}] code (${r}, ${c}): ${nibbles[r * inF + c]} != ${expected}`);
        }
        for (let g = 0; g < groups; g++) expect(scales[r * groups + g]).toBe(r < out ? absmax[r * groups + g] : 0);
      }
      for (const t of [tiles.codes, tiles.absmax]) t.dispose();
      q.dispose();
    }
  });

  it('refuses weights the layout cannot hold and tensors of the wrong size', () => {
    expect(decodeTilesFit({ inFeatures: 512, blocksize: 64 })).toBe(true);
    expect(decodeTilesFit({ inFeatures: 320, blocksize: 64 })).toBe(false);
    expect(decodeTilesFit({ inFeatures: 512, blocksize: 32 })).toBe(false);
    const q = nf4Weight(8, 256, 5);
    expect(() => nf4DecodeTiles(q.packed, q.absmaxTensor(), { outFeatures: 8, inFeatures: 256, blocksize: 32 }))
      .toThrow(/blocksize 64 and inFeatures a multiple of 256/);
    const small = nf4Weight(4, 320, 6);
    expect(() => nf4DecodeTiles(small.packed, small.absmaxTensor(), small.opAttrs)).toThrow(/\[4, 320\] blocksize 64/);
    const tiles = nf4DecodeTiles(q.packed, q.absmaxTensor(), q.opAttrs);
    const x = tensor(randomValues(256, 7), { shape: [1, 256] });
    expect(() => nf4MatmulTiles(x, tiles, q.table, { outFeatures: 24, inFeatures: 256 })).toThrow(/tile codes has 2048 elements, expected 4096/);
    expect(() => nf4MatmulTiles(tensor(randomValues(128, 8), { shape: [1, 128] }), tiles, q.table, { outFeatures: 8, inFeatures: 256 }))
      .toThrow(/last dimension 256/);
    for (const t of [x, tiles.codes, tiles.absmax]) t.dispose();
    q.dispose();
    small.dispose();
  });
});

describe('nf4MatmulTiles on the CPU', () => {
  it('is nf4Matmul bit for bit, for every activation layout, with and without an addend', () => {
    const out = 40;
    const inF = 512;
    const q = nf4Weight(out, inF, 11);
    const tiles = q.decodeTiles();
    const w = refWeight(q);
    const base = tensor(randomValues(inF * 3, 12), { shape: [inF, 3] });
    const xs: [string, Tensor, number][] = [
      ['one row', tensor(randomValues(inF, 13), { shape: [1, inF] }), 1],
      ['17 rows, float64', tensor(randomValues(17 * inF, 14), { shape: [17, inF], dtype: 'float64' }), 17],
      ['3-D', tensor(randomValues(6 * inF, 15), { shape: [2, 3, inF] }), 6],
      ['strided', nonContiguousTensor(randomValues(5 * inF, 16), [5, inF], 'float32'), 5],
      ['transposed view', transpose(base), 3],
    ];
    for (const [label, x, rows] of xs) {
      const viaTiles = nf4MatmulTiles(x, tiles, q.table, q.opAttrs);
      const plain = nf4Matmul(x, q.packed, q.absmaxTensor(), q.table, q.opAttrs);
      expect(viaTiles.shape, label).toEqual(plain.shape);
      expect(Array.from(viaTiles.toFloat64Array()), label).toEqual(Array.from(plain.toFloat64Array()));
      assertClose(viaTiles, refMatmul(x.toFloat64Array(), w, rows, out, inF), { rtol: 1e-5, atol: 1e-5 });
      const addend = { values: tensor(randomValues(rows * out / 8, 17), { shape: [...x.shape.slice(0, -1), out / 8] }), lambda: 8, scale: 0.5 };
      const added = nf4MatmulTiles(x, tiles, q.table, { ...q.opAttrs, settled: true }, addend);  // settled changes nothing here
      const plainAdded = nf4Matmul(x, q.packed, q.absmaxTensor(), q.table, q.opAttrs, addend);
      expect(Array.from(added.toFloat64Array()), `${label} + addend`).toEqual(Array.from(plainAdded.toFloat64Array()));
      for (const t of [viaTiles, plain, added, plainAdded, addend.values]) t.dispose();
    }
    q.dispose();
  });

  it('FourBitLinear keeps the tiles until releaseCache, and decodes with them only where it pays (not on the CPU)', () => {
    const q = nf4Weight(16, 256, 21);
    q.useDecodeTiles = true;
    const tiles = q.decodeTiles();
    expect(q.decodeTiles()).toBe(tiles);
    const x = tensor(randomValues(256, 22), { shape: [1, 256], dtype: 'bfloat16' });
    const y = q.matmul(x);
    const plain = nf4Matmul(x, q.packed, q.absmaxTensor(), q.table, q.opAttrs);
    expect(Array.from(y.toFloat64Array())).toEqual(Array.from(plain.toFloat64Array()));
    q.releaseCache();
    expect(tiles.codes.isDisposed && tiles.absmax.isDisposed).toBe(true);
    expect(q.decodeTiles().codes.isDisposed).toBe(false);
    for (const t of [x, y, plain]) t.dispose();
    q.dispose();
  });
});

/** An INT4 weight [out, in] in blocks of 1 x 64 from seeded normal values. */
function int4Weight(out: number, inF: number, scaleDType: ScaleDType, seed: number): IntBlockLinear {
  return IntBlockLinear.quantize(tensor(normalFloat32(out * inF, seed, 0.5), { shape: [out, inF] }), { format: 'int4', groupSize: 64, scaleDType });
}

describe('the INT4 decode tile layout (int4DecodeTiles)', () => {
  it('holds every code, scale and offset where the layout says (the NF4 one), zeros in the padding rows', () => {
    for (const scaleDType of ['float16', 'float32'] as const) {
      for (const [out, inF] of [[40, 512], [3, 768]] as const) {
        const q = int4Weight(out, inF, scaleDType, out + inF);
        const tiles = int4DecodeTiles(q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs);
        const sizes = decodeTileSizes(out, inF);
        expect(tiles.codes.shape).toEqual([sizes.codes]);
        expect([tiles.scales.shape, tiles.offsets.shape]).toEqual([[sizes.absmax], [sizes.absmax]]);
        expect([tiles.scales.dtype, tiles.offsets.dtype]).toEqual([scaleDType, scaleDType]);
        const codes = tiles.codes.toTypedArray() as Uint8Array;
        const { nibbles, scales } = untile(codes, tiles.scales.toFloat64Array(), out, inF);
        const { scales: offsets } = untile(codes, tiles.offsets.toFloat64Array(), out, inF);
        const packed = q.codes.toTypedArray() as Uint8Array;
        const [alpha, beta] = [q.scaleTensor.toFloat64Array(), q.offsetTensor.toFloat64Array()];
        const groups = inF / 64;
        for (let r = 0; r < nibbles.length / inF; r++) {
          for (let c = 0; c < inF; c++) {
            const expected = r < out ? refNibble(packed, r * inF + c) : 0;
            if (nibbles[r * inF + c] !== expected) throw new Error(`[${out}, ${inF}] code (${r}, ${c}): ${nibbles[r * inF + c]} != ${expected}`);
          }
          for (let g = 0; g < groups; g++) {
            expect(scales[r * groups + g]).toBe(r < out ? alpha[r * groups + g] : 0);
            expect(offsets[r * groups + g]).toBe(r < out ? beta[r * groups + g] : 0);
          }
        }
        for (const t of [tiles.codes, tiles.scales, tiles.offsets]) t.dispose();
        q.dispose();
      }
    }
  });

  it('int4MatmulTiles gives the result of int4Matmul bit for bit, and the float64 product (activation layouts, an addend)', () => {
    const [out, inF] = [40, 512];
    for (const scaleDType of ['float16', 'float32'] as const) {
      const q = int4Weight(out, inF, scaleDType, 31);
      const w = refWeight(q);
      const tiles = int4DecodeTiles(q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs);
      const base = tensor(randomValues(inF * 3, 32), { shape: [inF, 3] });
      const xs: [string, Tensor][] = [
        ['one row', tensor(randomValues(inF, 33), { shape: [1, inF] })],
        ['17 rows, float64', tensor(randomValues(17 * inF, 34), { shape: [17, inF], dtype: 'float64' })],
        ['3-D', tensor(randomValues(6 * inF, 35), { shape: [2, 3, inF] })],
        ['strided', nonContiguousTensor(randomValues(5 * inF, 36), [5, inF], 'float32')],
        ['transposed view', transpose(base)],
      ];
      for (const [label, x] of xs) {
        const viaTiles = int4MatmulTiles(x, tiles, { ...q.opAttrs, settled: label === 'strided' });
        const plain = intMatmul(4, x, q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs);
        expect(viaTiles.shape, label).toEqual(plain.shape);
        expect(Array.from(viaTiles.toFloat64Array()), `${scaleDType} ${label}`).toEqual(Array.from(plain.toFloat64Array()));
        const lead = x.shape.slice(0, -1);
        const rows = lead.reduce((p, d) => p * d, 1);
        assertClose(viaTiles, refMatmul(x.toFloat64Array(), w, rows, out, inF), { rtol: 1e-5, atol: 1e-5 });
        const addend = { values: tensor(randomValues(rows * out / 8, 37), { shape: [...lead, out / 8] }), lambda: 8, scale: 0.5 };
        const added = int4MatmulTiles(x, tiles, q.opAttrs, addend);
        const plainAdded = intMatmul(4, x, q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs, addend);
        expect(Array.from(added.toFloat64Array()), `${scaleDType} ${label} + addend`).toEqual(Array.from(plainAdded.toFloat64Array()));
        for (const t of [viaTiles, plain, added, plainAdded, addend.values, x]) t.dispose();
      }
      for (const t of [tiles.codes, tiles.scales, tiles.offsets, base]) t.dispose();
      q.dispose();
    }
  });

  it('refuses weights the layout cannot hold and tiles of the wrong size or dtype', () => {
    expect(intDecodeTilesFit(4, { inFeatures: 512, blockRows: 1, blockCols: 64 })).toBe(true);
    expect(intDecodeTilesFit(8, { inFeatures: 512, blockRows: 1, blockCols: 64 })).toBe(false);
    expect(intDecodeTilesFit(4, { inFeatures: 512, blockRows: 2, blockCols: 64 })).toBe(false);
    expect(intDecodeTilesFit(4, { inFeatures: 512, blockRows: 1, blockCols: 32 })).toBe(false);
    expect(intDecodeTilesFit(4, { inFeatures: 320, blockRows: 1, blockCols: 64 })).toBe(false);
    const narrow = IntBlockLinear.quantize(tensor(normalFloat32(8 * 256, 41), { shape: [8, 256] }), { format: 'int4', groupSize: 32 });
    expect(() => int4DecodeTiles(narrow.codes, narrow.scaleTensor, narrow.offsetTensor, narrow.opAttrs))
      .toThrow(/blocks of 1 x 64 and inFeatures a multiple of 256, got \[8, 256\] in blocks of 1 x 32/);
    const q = int4Weight(8, 256, 'float16', 42);
    const tiles = int4DecodeTiles(q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs);
    const x = tensor(randomValues(256, 43), { shape: [1, 256] });
    expect(() => int4MatmulTiles(x, tiles, { outFeatures: 24, inFeatures: 256 })).toThrow(/tile codes has 2048 elements, expected 4096/);
    const wrongDType = { ...tiles, offsets: tensor(new Float64Array(tiles.offsets.numel), { dtype: 'float32' }) };
    expect(() => int4MatmulTiles(x, wrongDType, q.opAttrs)).toThrow(/tile offsets must be float16/);
    for (const t of [x, tiles.codes, tiles.scales, tiles.offsets, wrongDType.offsets]) t.dispose();
    for (const w of [q, narrow]) w.dispose();
  });
});

describe('IntBlockLinear in decoding mode', () => {
  it('keeps the tiles until releaseCache or addToOffsets, and decodes with them only where it pays (not on the CPU)', () => {
    const q = int4Weight(16, 256, 'float16', 51);
    q.useDecodeTiles = true;
    const tiles = q.decodeTiles();
    expect(q.decodeTiles()).toBe(tiles);
    const x = tensor(randomValues(256, 52), { shape: [1, 256], dtype: 'bfloat16' });
    const y = q.matmul(x);
    const plain = intMatmul(4, x, q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs);
    expect(Array.from(y.toFloat64Array())).toEqual(Array.from(plain.toFloat64Array()));
    q.releaseCache();
    expect(tiles.codes.isDisposed && tiles.scales.isDisposed && tiles.offsets.isDisposed).toBe(true);
    const again = q.decodeTiles();
    q.addToOffsets(new Float64Array(16 * 4).fill(0.125));
    expect(again.offsets.isDisposed).toBe(true);
    const rebuilt = q.decodeTiles();
    expect(Array.from(rebuilt.offsets.toFloat64Array())).toEqual(
      Array.from(int4DecodeTiles(q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs).offsets.toFloat64Array()));
    for (const t of [x, y, plain]) t.dispose();
    q.dispose();
    expect(rebuilt.codes.isDisposed).toBe(true);
  });
});
