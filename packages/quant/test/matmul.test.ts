import { afterAll, describe, expect, it } from 'vitest';
import {
  expand, getKernel, registerBackend, registerKernel, setOpObserver, storageArrayCtor, tensor, transpose,
  type Backend, type DType, type OpRecord, type Tensor,
} from '@blora/tensor';
import { assertClose, nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import {
  FourBitLinear, IntBlockLinear, SCRATCH_ELEMENTS, nf4Matmul, quantizeLinear, type QuantizeOptions,
} from '../src/index.js';
import { normalFloat32, refMatmul, refMatmulT, refWeight } from './helpers.js';

const cases: { name: string; out: number; inF: number; options: QuantizeOptions }[] = [
  { name: 'nf4, double-quantized, blocks across rows, short last block', out: 7, inF: 96, options: { format: 'nf4', blocksize: 64 } },
  { name: 'fp4, blocksize 32', out: 5, inF: 64, options: { format: 'fp4', blocksize: 32, doubleQuant: false } },
  { name: 'int4, groups of 32', out: 6, inF: 64, options: { format: 'int4', groupSize: 32 } },
  { name: 'int4, tiles 8 x 4', out: 16, inF: 12, options: { format: 'int4', blockRows: 8, blockCols: 4, scaleDType: 'float32' } },
  { name: 'int8, tiles 8 x 8', out: 8, inF: 24, options: { format: 'int8', blockRows: 8, blockCols: 8 } },
];

/** Activation operands of many layouts: [label, tensor, rows]. */
function activations(inF: number, dtype: DType = 'float32'): [string, Tensor, number][] {
  const v5 = randomValues(5 * inF, 31);
  const base = tensor(randomValues(inF * 5, 32), { shape: [inF, 5], dtype });
  return [
    ['odd batch [5, in]', tensor(v5, { shape: [5, inF], dtype }), 5],
    ['3-D [3, 1, in]', tensor(randomValues(3 * inF, 33), { shape: [3, 1, inF], dtype }), 3],
    ['vector [in]', tensor(randomValues(inF, 34), { shape: [inF], dtype }), 1],
    ['empty [0, in]', tensor(new Float64Array(0), { shape: [0, inF], dtype }), 0],
    ['strided', nonContiguousTensor(v5, [5, inF], dtype), 5],
    ['transposed view', transpose(base), 5],
    ['broadcast view', expand(tensor(randomValues(inF, 35), { shape: [1, inF], dtype }), [4, inF]), 4],
  ];
}

describe('fused matmul against dequantize-then-matmul', () => {
  for (const c of cases) {
    it(`${c.name}: matmul and matmulTransposed`, () => {
      const q = quantizeLinear(tensor(normalFloat32(c.out * c.inF, c.out, 0.5), { shape: [c.out, c.inF] }), c.options);
      const w = refWeight(q);
      expect(Array.from(q.dequantize().toFloat64Array())).toEqual(Array.from(w));
      for (const [label, x, rows] of activations(c.inF)) {
        const y = q.matmul(x);
        expect(y.shape, label).toEqual([...x.shape.slice(0, -1), c.out]);
        expect(y.dtype).toBe('float32');
        assertClose(y, refMatmul(x.toFloat64Array(), w, rows, c.out, c.inF), { rtol: 1e-5, atol: 1e-5 });
      }
      for (const [label, dy, rows] of activations(c.out)) {
        const dx = q.matmulTransposed(dy);
        expect(dx.shape, label).toEqual([...dy.shape.slice(0, -1), c.inF]);
        assertClose(dx, refMatmulT(dy.toFloat64Array(), w, rows, c.out, c.inF), { rtol: 1e-5, atol: 1e-5 });
      }
      q.dispose();
    });
  }

  it('keeps float64 and bfloat16 activations in their dtype', () => {
    const q = quantizeLinear(tensor(normalFloat32(6 * 64, 3), { shape: [6, 64] }), { format: 'int4', groupSize: 32 });
    const w = refWeight(q);
    const x64 = tensor(randomValues(3 * 64, 4), { shape: [3, 64], dtype: 'float64' });
    const y64 = q.matmul(x64);
    expect(y64.dtype).toBe('float64');
    assertClose(y64, refMatmul(x64.toFloat64Array(), w, 3, 6, 64), { rtol: 1e-12, atol: 1e-12 });
    const xb = tensor(randomValues(3 * 64, 5), { shape: [3, 64], dtype: 'bfloat16' });
    const yb = q.matmul(xb);
    expect(yb.dtype).toBe('bfloat16');
    assertClose(yb, refMatmul(xb.toFloat64Array(), w, 3, 6, 64), { rtol: 1e-2, atol: 1e-2 });
    const dxb = q.matmulTransposed(tensor(randomValues(2 * 6, 6), { shape: [2, 6], dtype: 'float16' }));
    expect(dxb.dtype).toBe('float16');
    q.dispose();
  });

  it('works through several scratch chunks of rows', () => {
    const inF = 8192;
    expect(Math.floor(SCRATCH_ELEMENTS / inF)).toBeLessThan(5); // 5 rows need more than one chunk
    const q = FourBitLinear.quantize(tensor(normalFloat32(5 * inF, 7), { shape: [5, inF] }), { doubleQuant: false });
    const w = refWeight(q);
    const x = tensor(randomValues(3 * inF, 8), { shape: [3, inF] });
    assertClose(q.matmul(x), refMatmul(x.toFloat64Array(), w, 3, 5, inF), { rtol: 1e-5, atol: 1e-5 });
    const dy = tensor(randomValues(3 * 5, 9), { shape: [3, 5] });
    assertClose(q.matmulTransposed(dy), refMatmulT(dy.toFloat64Array(), w, 3, 5, inF), { rtol: 1e-5, atol: 1e-5 });
    q.dispose();
  });
});

describe('dispatch', () => {
  const hostBackend = (name: string): Backend => ({
    name,
    allocate: (dtype, n) => new (storageArrayCtor(dtype))(n),
    free: () => {},
    fromHost: (_dtype, data) => data.slice(),
    toHost: (handle, _dtype, n) => (handle as Uint8Array).slice(0, n),
    synchronize: () => {},
  });
  const previous = setOpObserver(null);
  afterAll(() => setOpObserver(previous));

  it('announces the op with its packed inputs so autograd can record it', () => {
    const records: OpRecord[] = [];
    setOpObserver((r) => records.push(r));
    const q = FourBitLinear.quantize(tensor(normalFloat32(2 * 64, 1), { shape: [2, 64] }), { doubleQuant: false });
    const x = tensor(randomValues(64, 2), { shape: [1, 64] });
    const y = q.matmul(x);
    setOpObserver(null);
    const rec = records.find((r) => r.op === 'nf4Matmul')!;
    expect(rec.inputs).toEqual([x, q.packed, q.absmax, q.table]);
    expect(rec.outputs).toEqual([y]);
    expect(rec.attrs).toEqual({ outFeatures: 2, inFeatures: 64, blocksize: 64, settled: false });
    q.dispose();
  });

  it('passes settled from the second product on the same tensors (not after they change, nor for an empty product)', () => {
    const records: OpRecord[] = [];
    const settledOf = (op: string) => records.filter((r) => r.op === op).map((r) => r.attrs['settled']);
    const x = tensor(randomValues(2 * 64, 3), { shape: [2, 64] });
    const empty = tensor(new Float64Array(0), { shape: [0, 64] });
    const nf4 = FourBitLinear.quantize(tensor(normalFloat32(4 * 64, 4), { shape: [4, 64] }), { blocksize: 64 });  // double-quantized
    const int4 = quantizeLinear(tensor(normalFloat32(4 * 64, 5), { shape: [4, 64] }), { format: 'int4', groupSize: 32 }) as IntBlockLinear;
    setOpObserver((r) => records.push(r));
    try {
      for (const input of [empty, x, x]) nf4.matmul(input).dispose();
      nf4.releaseCache();  // the restored absmax is made again by the next product
      for (let i = 0; i < 2; i++) nf4.matmul(x).dispose();
      for (let i = 0; i < 2; i++) int4.matmul(x).dispose();
      int4.addToOffsets(new Float64Array(4 * 2).fill(0.01));
      int4.matmul(x).dispose();
    } finally {
      setOpObserver(null);
    }
    expect(settledOf('nf4Matmul')).toEqual([false, false, true, false, true]);
    expect(settledOf('int4Matmul')).toEqual([false, true, false]);
    for (const t of [x, empty]) t.dispose();
    nf4.dispose();
    int4.dispose();
  });

  it('runs the kernel of the device the tensors live on, and falls back for dequantize', () => {
    registerBackend(hostBackend('mockdev'));
    let calls = 0;
    registerKernel('nf4Matmul', 'mockdev', (inputs, outputs, attrs) => {
      calls++;
      getKernel('nf4Matmul', 'cpu')(inputs, outputs, attrs);
    });
    const q = FourBitLinear.quantize(tensor(normalFloat32(3 * 64, 1), { shape: [3, 64] }));
    const x = tensor(randomValues(2 * 64, 2), { shape: [2, 64] });
    const onDevice = q.to('mockdev');
    expect(onDevice.device).toBe('mockdev');
    const y = onDevice.matmul(x.to('mockdev'));
    expect(calls).toBe(1);
    expect(y.device).toBe('mockdev');
    expect(Array.from(y.toFloat64Array())).toEqual(Array.from(q.matmul(x).toFloat64Array()));
    const dense = onDevice.dequantize(); // no 'nf4Dequantize' kernel on mockdev: computed on the CPU
    expect(dense.device).toBe('mockdev');
    expect(Array.from(dense.toFloat64Array())).toEqual(Array.from(q.dequantize().toFloat64Array()));
    expect(() => onDevice.matmulTransposed(tensor([1, 2, 3]).to('mockdev'))).toThrow(/nf4MatmulT: no kernel registered for device 'mockdev' \(available on: cpu\)/);
    expect(() => onDevice.matmul(x)).toThrow(/all inputs must be on one device/);
    q.dispose();
    onDevice.dispose();
  });
});

describe('errors', () => {
  it('names the op, the shapes and the expectation', () => {
    const q = FourBitLinear.quantize(tensor(normalFloat32(2 * 64, 1), { shape: [2, 64] }), { doubleQuant: false });
    expect(() => q.matmul(tensor(randomValues(63, 1), { shape: [1, 63] }))).toThrow(/nf4Matmul: x \[1, 63\] must have last dimension 64/);
    expect(() => q.matmulTransposed(tensor(randomValues(3, 1), { shape: [1, 3] }))).toThrow(/nf4MatmulT: dy \[1, 3\] must have last dimension 2/);
    expect(() => q.matmul(tensor([[1, 2]], { dtype: 'int32' }))).toThrow(/nf4Matmul: x must be a float tensor, got int32\[1, 2\]/);
    const x = tensor(randomValues(64, 1), { shape: [1, 64] });
    const short = tensor(new Uint8Array(63), { dtype: 'uint8' });
    expect(() => nf4Matmul(x, short, q.absmax!, q.table, q.opAttrs)).toThrow(/nf4Matmul: packed codes has 63 elements, expected 64 for this weight/);
    expect(() => nf4Matmul(x, q.packed, q.absmax!, q.table, { ...q.opAttrs, blocksize: 0 })).toThrow(/attrs.blocksize must be a positive integer, got 0/);
    const i4 = IntBlockLinear.quantize(tensor(normalFloat32(64, 1), { shape: [2, 32] }), { groupSize: 32 });
    expect(() => i4.matmul(tensor(randomValues(31, 1), { shape: [1, 31] }))).toThrow(/int4Matmul: x \[1, 31\] must have last dimension 32/);
    q.dispose();
    i4.dispose();
  });
});
