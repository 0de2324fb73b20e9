// The decode tile layout of @blora/quant on cuda: nf4DecodeTiles / int4DecodeTiles build the CPU's
// layout byte for byte; nf4MatmulTiles / int4MatmulTiles (the tensor-core GEMV on it) against a
// float64 reference and the CPU, with and without an addend; settled products chained behind the
// kernels that wrote their inputs; and FourBitLinear / IntBlockLinear in decoding mode.
import { mul, setOpObserver, tensor, transpose, type OpRecord, type Tensor } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import {
  FourBitLinear, IntBlockLinear, int4DecodeTiles, int4MatmulTiles, intMatmul, nf4DecodeTiles, nf4Matmul, nf4MatmulTiles, type RepeatedAddend,
} from '@blora/quant';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { roundTo, valuesFor } from './helpers.js';
import {
  checkProduct, fourBitTensors, fourBitWeight, HALF_DTYPES, intTensors, intWeight, productRef, productTolerance, type FourBitWeight,
  type IntWeight, type Product,
} from './quant-fixtures.js';

/**
 * A weight in decoding mode (useDecodeTiles) on cuda: each product of 2 rows of a 16-bit dtype runs
 * one `tileOp`, settled from the second on (the first follows the tiles' build), with the result
 * of `plain`.
 */
function checkDecodingMode(q: { matmul(x: Tensor): Tensor }, tileOp: string, plain: (x: Tensor) => Tensor, seed: number): void {
  for (const dtype of HALF_DTYPES) {
    const x = tensor(roundTo(valuesFor(dtype, 2 * 512, seed), dtype), { shape: [2, 512], dtype, device: 'cuda' });
    const records: OpRecord[] = [];
    const previous = setOpObserver((r) => records.push(r));
    let y: Tensor;
    try {
      y = q.matmul(x);
    } finally {
      setOpObserver(previous);
    }
    const tileProducts = records.filter((r) => r.op === tileOp);
    expect(tileProducts.length).toBe(1);
    expect(tileProducts[0]!.attrs['settled']).toBe(dtype !== HALF_DTYPES[0]);
    const expected = plain(x);
    assertClose(y.toFloat64Array(), expected.toFloat64Array(), productTolerance(dtype, 512));
    for (const t of [x, y, expected]) t.dispose();
  }
}

/**
 * A tile product against float64 and the CPU: 1, 5, 16, 17, 40 and 2 x 3 rows (up to three launches
 * of 16) of both 16-bit dtypes, and 9 rows of a transposed (strided) x.
 */
function checkTileProducts(dense: Float64Array, outFeatures: number, inFeatures: number, tilesOn: (device: string) => Tensor[], product: Product): void {
  for (const dtype of HALF_DTYPES) {
    for (const lead of [[1], [5], [16], [17], [40], [2, 3]]) {
      checkProduct(lead, inFeatures, outFeatures, dtype, 'contiguous', dense, outFeatures, inFeatures, false, tilesOn, product);
    }
    checkProduct([9], inFeatures, outFeatures, dtype, 'transposed', dense, outFeatures, inFeatures, false, tilesOn, product);
  }
}

/** A product with an addend, on a weight's tiles as `tilesOn(device)` builds them. */
type AddendProduct = (x: Tensor, tiles: Tensor[], addend: RepeatedAddend) => Tensor;

/**
 * Products with an addend against float64 and the CPU: a float32 addend goes into the GEMV's
 * epilogue, a float64 one through a pass of its own; 1, 3, 17 and 40 rows (up to three launches of
 * 16), λ 1 and 8.
 */
function checkAddends(dense: Float64Array, outFeatures: number, inFeatures: number, tilesOn: (device: string) => Tensor[], product: AddendProduct): void {
  const tiles = new Map(['cuda', 'cpu'].map((device) => [device, tilesOn(device)]));
  for (const rows of [1, 3, 17, 40]) {
    for (const lambda of [1, 8]) {
      for (const addDType of ['float32', 'float64'] as const) {
        const seed = 7 * rows + lambda;
        const xv = roundTo(valuesFor('bfloat16', rows * inFeatures, seed), 'bfloat16');
        const av = roundTo(valuesFor('float32', rows * (outFeatures / lambda), seed + 1, -3, 3), 'float32');
        const scale = 0.75;
        const expected = productRef(xv, dense, outFeatures, inFeatures, false)
          .map((v, i) => v + scale * av[Math.floor(i / outFeatures) * (outFeatures / lambda) + Math.floor((i % outFeatures) / lambda)]!);
        const [gpu, cpu] = ['cuda', 'cpu'].map((device) => {
          const x = tensor(xv, { shape: [rows, inFeatures], dtype: 'bfloat16', device });
          const values = tensor(av, { shape: [rows, outFeatures / lambda], dtype: addDType, device });
          const y = product(x, tiles.get(device)!, { values, lambda, scale });
          const out = y.toFloat64Array();
          for (const t of [x, values, y]) t.dispose();
          return out;
        });
        assertClose(gpu!, expected, productTolerance('bfloat16', inFeatures));
        assertClose(gpu!, cpu!, productTolerance('bfloat16', inFeatures));
      }
    }
  }
  for (const list of tiles.values()) for (const t of list) t.dispose();
}

describe.skipIf(!cudaAvailable())('the NF4 decode tile layout on cuda', () => {
  /** The weight's decode tiles built on `device` (code table last), as nf4MatmulTiles takes them. */
  function tilesOn(w: FourBitWeight, device: string): Tensor[] {
    const [packed, absmax, table] = fourBitTensors(w, device);
    const tiles = nf4DecodeTiles(packed!, absmax!, w.attrs);
    packed!.dispose();
    absmax!.dispose();
    return [tiles.codes, tiles.absmax, table!];
  }
  const run = (w: FourBitWeight): Product => (x, [c, a, t]) => nf4MatmulTiles(x, { codes: c!, absmax: a! }, t!, w.attrs);

  it('nf4DecodeTiles builds the CPU layout byte for byte (few and many row sets, a partial last one)', () => {
    for (const w of [fourBitWeight(40, 512, 64, 81), fourBitWeight(1000, 256, 64, 82)]) {
      const [gpu, cpu] = [tilesOn(w, 'cuda'), tilesOn(w, 'cpu')];
      expect(Array.from(gpu[0]!.toTypedArray() as Uint8Array)).toEqual(Array.from(cpu[0]!.toTypedArray() as Uint8Array));
      expect(Array.from(gpu[1]!.toFloat64Array())).toEqual(Array.from(cpu[1]!.toFloat64Array()));
      for (const t of [...gpu, ...cpu]) t.dispose();
    }
  });

  it('nf4MatmulTiles against float64 and the CPU: 1 to 40 rows (16 a launch), both 16-bit dtypes, strided x', () => {
    // 40 rows: fewer row sets than resident blocks; 8000: more.
    for (const w of [fourBitWeight(40, 512, 64, 83), fourBitWeight(8000, 256, 64, 84)]) {
      checkTileProducts(w.dense, w.attrs.outFeatures, w.attrs.inFeatures, (d) => tilesOn(w, d), run(w));
    }
  });

  it('nf4MatmulTiles with an addend (float32 in the epilogue, float64 in a pass of its own) against float64 and the CPU', () => {
    const w = fourBitWeight(40, 512, 64, 85);
    checkAddends(w.dense, 40, 512, (device) => tilesOn(w, device),
      (x, [c, a, t], addend) => nf4MatmulTiles(x, { codes: c!, absmax: a! }, t!, w.attrs, addend));
  });

  it('says why float32 activations cannot take it on cuda', () => {
    const w = fourBitWeight(16, 256, 64, 88);
    const tiles = tilesOn(w, 'cuda');
    const x = tensor(valuesFor('float32', 256, 89), { shape: [1, 256], device: 'cuda' });
    expect(() => nf4MatmulTiles(x, { codes: tiles[0]!, absmax: tiles[1]! }, tiles[2]!, w.attrs)).toThrow(/bfloat16 or float16 activations/);
    for (const t of [...tiles, x]) t.dispose();
  });

  it('dependent launches read what the kernel just before wrote: a chain of settled products (NF4 and INT4, tiles or not) equals the same chain run step by step', () => {
    // Each product's output is the next one's input (a square weight), right behind it in the
    // stream: a GEMV that read its activations before the kernel ahead finished would see stale
    // values. Read back after every step, each launch waits for the one before; both GEMV paths
    // are deterministic, so the two chains must agree bit for bit.
    const w = fourBitWeight(512, 512, 64, 92);
    const tiles = tilesOn(w, 'cuda');
    const [packed, absmax] = fourBitTensors(w, 'cuda');
    const table = tiles[2]!;
    const iw = intWeight(4, 512, 512, 1, 64, 'float16', 95);
    const [codes, scales, offsets] = intTensors(iw, 'cuda');
    // The INT4 scales as a transposed view: copied into scratch by a kernel just before each of its
    // products, which therefore must not read them early, settled or not.
    const scalesRows = Array.from({ length: 8 * 512 }, (_, i) => iw.scales[(i % 512) * 8 + Math.floor(i / 512)]!);
    const scalesT = tensor(scalesRows, { shape: [8, 512], dtype: 'float16', device: 'cuda' });
    const scalesView = transpose(scalesT);
    const intTiles = int4DecodeTiles(codes!, scales!, offsets!, iw.attrs);
    for (const rows of [1, 12]) {
      const xv = roundTo(valuesFor('bfloat16', rows * 512, 93 + rows), 'bfloat16');
      const chain = (stepwise: boolean): Float64Array[] => {
        const kept: Tensor[] = [];
        const outputs: Float64Array[] = [];
        const step = (t: Tensor): Tensor => {
          if (stepwise) outputs.push(t.toFloat64Array());
          kept.push(t);
          return t;
        };
        let x = step(tensor(xv, { shape: [rows, 512], dtype: 'bfloat16', device: 'cuda' }));
        for (let round = 0; round < 3; round++) {
          const y1 = step(nf4MatmulTiles(x, { codes: tiles[0]!, absmax: tiles[1]! }, table, { ...w.attrs, settled: true }));
          const y2 = step(nf4Matmul(y1, packed!, absmax!, table, { ...w.attrs, settled: true }));
          const y3 = step(intMatmul(4, y2, codes!, scalesView, offsets!, { ...iw.attrs, settled: true }));
          const y4 = step(int4MatmulTiles(y3, intTiles, { ...iw.attrs, settled: true }));
          const y5 = step(nf4MatmulTiles(y4, { codes: tiles[0]!, absmax: tiles[1]! }, table, w.attrs));
          x = step(mul(y5, 1 / 16384));  // keeps the values near 1 (each product scales them by ~8)
        }
        if (!stepwise) outputs.push(...kept.map((t) => t.toFloat64Array()));
        for (const t of kept) t.dispose();
        return outputs;
      };
      const stepwise = chain(true);
      const queued = chain(false);
      expect(queued.length).toBe(stepwise.length);
      for (let i = 0; i < stepwise.length; i++) expect(Array.from(queued[i]!)).toEqual(Array.from(stepwise[i]!));
      const last = stepwise[stepwise.length - 1]!;
      expect(last.some((v) => v !== 0) && last.every(Number.isFinite)).toBe(true);
    }
    for (const t of [...tiles, packed!, absmax!, codes!, scales!, offsets!, scalesView, scalesT, intTiles.codes, intTiles.scales, intTiles.offsets]) {
      t.dispose();
    }
  });

  it('FourBitLinear in decoding mode multiplies through the tiles (settled after the first product), with the same result as nf4Matmul', () => {
    const weight = tensor(valuesFor('float32', 48 * 512, 90, -0.1, 0.1), { shape: [48, 512] });
    const host = FourBitLinear.quantize(weight, { format: 'nf4', blocksize: 64 });
    const q = host.to('cuda');
    q.useDecodeTiles = true;
    checkDecodingMode(q, 'nf4MatmulTiles', (x) => nf4Matmul(x, q.packed, q.absmaxTensor(), q.table, q.opAttrs), 91);
    for (const held of [q, host]) held.dispose();
    weight.dispose();
  });
});

describe.skipIf(!cudaAvailable())('the INT4 decode tile layout on cuda', () => {
  /** The weight's decode tiles built on `device`, as int4MatmulTiles takes them. */
  function tilesOn(w: IntWeight, device: string): Tensor[] {
    const [codes, scales, offsets] = intTensors(w, device);
    const tiles = int4DecodeTiles(codes!, scales!, offsets!, w.attrs);
    for (const t of [codes!, scales!, offsets!]) t.dispose();
    return [tiles.codes, tiles.scales, tiles.offsets];
  }
  const run = (w: IntWeight): Product => (x, [c, s, o]) => int4MatmulTiles(x, { codes: c!, scales: s!, offsets: o! }, w.attrs);

  it('int4DecodeTiles builds the CPU layout byte for byte (float16 and float32 scales, a partial last row set)', () => {
    for (const w of [intWeight(4, 40, 512, 1, 64, 'float16', 101), intWeight(4, 1000, 256, 1, 64, 'float32', 102)]) {
      const [gpu, cpu] = [tilesOn(w, 'cuda'), tilesOn(w, 'cpu')];
      expect(Array.from(gpu[0]!.toTypedArray() as Uint8Array)).toEqual(Array.from(cpu[0]!.toTypedArray() as Uint8Array));
      for (const i of [1, 2]) {
        expect(gpu[i]!.dtype).toBe(w.scaleDType);
        expect(Array.from(gpu[i]!.toFloat64Array())).toEqual(Array.from(cpu[i]!.toFloat64Array()));
      }
      for (const t of [...gpu, ...cpu]) t.dispose();
    }
  });

  it('int4MatmulTiles against float64 and the CPU: 1 to 40 rows, both 16-bit dtypes, both scale dtypes, strided x', () => {
    for (const w of [intWeight(4, 40, 512, 1, 64, 'float16', 103), intWeight(4, 8000, 256, 1, 64, 'float32', 104)]) {
      checkTileProducts(w.dense, w.attrs.outFeatures, w.attrs.inFeatures, (d) => tilesOn(w, d), run(w));
    }
  });

  it('int4MatmulTiles with an addend (float32 in the epilogue, float64 in a pass of its own) against float64 and the CPU', () => {
    const w = intWeight(4, 40, 512, 1, 64, 'float16', 105);
    checkAddends(w.dense, 40, 512, (device) => tilesOn(w, device),
      (x, [c, s, o], addend) => int4MatmulTiles(x, { codes: c!, scales: s!, offsets: o! }, w.attrs, addend));
  });

  it('IntBlockLinear in decoding mode multiplies through the tiles (settled after the first product), with the same result as intMatmul', () => {
    const weight = tensor(valuesFor('float32', 48 * 512, 105, -0.1, 0.1), { shape: [48, 512] });
    const host = IntBlockLinear.quantize(weight, { format: 'int4', groupSize: 64 });
    const q = host.to('cuda');
    q.useDecodeTiles = true;
    checkDecodingMode(q, 'int4MatmulTiles', (x) => intMatmul(4, x, q.codes, q.scaleTensor, q.offsetTensor, q.opAttrs), 106);
    for (const held of [q, host]) held.dispose();
    weight.dispose();
  });
});
