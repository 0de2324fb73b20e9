import { describe, expect, it } from 'vitest';
import { tensor } from '@blora/tensor';
import { compareFormats, errorStats, quantizationError, quantizeLinear } from '../src/index.js';
import { normalFloat32, studentTValues } from './helpers.js';

describe('error statistics', () => {
  it('computes RMSE, max error and SQNR', () => {
    const s = errorStats([1, -2, 3, 0], [1.5, -2, 2, 0]);
    expect(s.count).toBe(4);
    expect(s.rmse).toBeCloseTo(Math.sqrt((0.25 + 1) / 4), 15);
    expect(s.meanAbsError).toBeCloseTo(1.5 / 4, 15);
    expect(s.maxAbsError).toBe(1);
    expect(s.maxErrorIndex).toBe(2);
    expect(s.signalRms).toBeCloseTo(Math.sqrt(14 / 4), 15);
    expect(s.sqnrDb).toBeCloseTo(10 * Math.log10(14 / 1.25), 12);
    expect(errorStats([1, 2], [1, 2]).sqnrDb).toBe(Infinity);
    expect(() => errorStats([1, 2], [1])).toThrow(/2 original values but 1 approximations/);
    expect(() => errorStats([1, 2], [1, NaN])).toThrow(/NaN at flat index 1/);
  });

  it('measures a quantized weight against its source', () => {
    const w = tensor(normalFloat32(8 * 64, 1), { shape: [8, 64] });
    const q = quantizeLinear(w, { format: 'int8', groupSize: 64 });
    const s = quantizationError(w, q);
    const dense = q.dequantize().toFloat64Array();
    const orig = w.toFloat64Array();
    let se = 0;
    for (let i = 0; i < orig.length; i++) se += (dense[i]! - orig[i]!) ** 2;
    expect(s.rmse).toBeCloseTo(Math.sqrt(se / orig.length), 15);
    expect(() => quantizationError(tensor(normalFloat32(64, 1), { shape: [1, 64] }), q)).toThrow(/weight \[1, 64\] does not match int8 \[8, 64\]/);
    q.dispose();
  });

  it('ranks formats as expected on normal and heavy-tailed weights', () => {
    for (const values of [normalFloat32(64 * 64, 2), studentTValues(64 * 64, 3).map((v) => Math.fround(v * 0.02))]) {
      const w = tensor(values, { shape: [64, 64] });
      const rows = compareFormats(w, [
        { format: 'nf4', doubleQuant: false },
        { format: 'nf4' },
        { format: 'fp4', doubleQuant: false },
        { format: 'int4', groupSize: 64 },
        { format: 'int8', groupSize: 64 },
      ]);
      const [nf4, nf4dq, fp4, int4, int8] = rows.map((r) => r.stats);
      expect(rows.map((r) => r.bitsPerParameter)).toEqual([4.5, 4 + 8 / 64 + 32 / (64 * 256), 4.5, 4.5, 8.5]);
      expect(nf4!.rmse).toBeLessThan(fp4!.rmse);
      expect(nf4dq!.rmse).toBeLessThan(nf4!.rmse * 1.05); // double quantization costs little
      expect(int8!.rmse).toBeLessThan(int4!.rmse / 8);
      expect(int8!.sqnrDb).toBeGreaterThan(nf4!.sqnrDb + 15);
      expect(rows[0]!.description).toBe('nf4 [64, 64] blocksize 64 on cpu');
    }
  });
});
