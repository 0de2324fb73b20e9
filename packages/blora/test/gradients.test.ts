// Gradients through the adapters (finite differences in float64) and the rules of the
// quantized matmul ops: dx = dy · dequant(W), nothing for the weight, no activation kept.
import { describe, expect, it } from 'vitest';
import { Generator, mul, sum, tensor, type Tensor } from '@blora/tensor';
import { assertClose, nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { gradcheck, GraphNode, listGradients } from '@blora/autograd';
import { quantizeLinear, type QuantizeOptions } from '@blora/quant';
import {
  AdaptedLinear, DenseBase, LoraAdapter, QABLoraAdapter, QBLoraAdapter, QuantizedBase, QUANTIZED_GRADIENT_OPS, type Adapter,
} from '../src/index.js';
import { randomizeAdapter, seeded } from './helpers.js';

const opts = { dtype: 'float64' as const };

/** gradcheck of base + adapter with respect to x and every adapter parameter; dropout masks are redrawn identically. */
function checkLayer(layer: AdaptedLinear, x: Tensor, gen?: Generator): void {
  x.requiresGrad = true;
  const params = layer.adapter.parameters();
  const result = gradcheck((input) => {
    gen?.manualSeed(5);
    return layer.forward(input);
  }, [x, ...params], { atol: 1e-6, rtol: 1e-5 });
  expect(result.ok).toBe(true);
  expect(result.checked).toBe(x.numel + params.reduce((n, p) => n + p.numel, 0));
}

describe('gradcheck through each adapter (float64, dense base)', () => {
  const cases: [string, (gen: Generator) => Adapter][] = [
    ['LoRA', (gen) => new LoraAdapter(6, 5, { r: 2, alpha: 3, dropout: 0.3, dropoutGenerator: gen, ...opts })],
    ['Q-BLoRA λ = 2', (gen) => new QBLoraAdapter(6, 4, { lambda: 2 }, { r: 2, alpha: 3, dropout: 0.3, dropoutGenerator: gen, ...opts })],
    ['Q-BLoRA λin 3, λout 2', (gen) => new QBLoraAdapter(6, 4, { lambdaIn: 3, lambdaOut: 2 }, { r: 1, alpha: 2, dropout: 0.2, dropoutGenerator: gen, ...opts })],
    ['QA-BLoRA matrix', (gen) => new QABLoraAdapter(8, 6, { lambdaIn: 2, lambdaOut: 3 }, { r: 2, alpha: 2, dropout: 0.25, dropoutGenerator: gen, ...opts })],
    ['QA-BLoRA factors', () => new QABLoraAdapter(8, 6, { lambdaIn: 4, lambdaOut: 2, form: 'factors' }, { r: 1, alpha: 2, ...opts })],
  ];
  for (const [name, make] of cases) {
    it(`${name}: x, A, B / M; the base weight gets nothing`, () => {
      const gen = new Generator(5);
      const adapter = make(gen);
      randomizeAdapter(adapter, 3);
      const base = new DenseBase(seeded([adapter.outFeatures, adapter.inFeatures], 4, 'float64'), seeded([adapter.outFeatures], 6, 'float64'));
      const layer = new AdaptedLinear(base, adapter);
      const x = nonContiguousTensor(randomValues(3 * adapter.inFeatures, 7), [3, adapter.inFeatures], 'float64');
      checkLayer(layer, x, gen);
      mul(sum(layer.forward(x)), 1).backward();
      expect(base.weight.grad).toBeNull();
      expect(base.bias!.grad).toBeNull();
      for (const p of adapter.parameters()) expect(p.grad).not.toBeNull();
    });
  }
});

describe('gradient rules of the quantized matmul ops', () => {
  it('are registered for every quantized matmul op', () => {
    expect(QUANTIZED_GRADIENT_OPS).toEqual(['nf4Matmul', 'int4Matmul', 'int8Matmul']);
    for (const op of QUANTIZED_GRADIENT_OPS) expect(listGradients()).toContain(op);
  });

  const formats: [string, QuantizeOptions][] = [
    ['nf4, blocksize 32', { format: 'nf4', blocksize: 32, doubleQuant: false }],
    ['nf4 double-quantized', { format: 'nf4', blocksize: 64 }],
    ['fp4', { format: 'fp4', blocksize: 32, doubleQuant: false }],
    ['int4 blocks 2 x 4', { format: 'int4', blockRows: 2, blockCols: 4, scaleDType: 'float32' }],
    ['int8 groups of 8', { format: 'int8', groupSize: 8 }],
  ];
  for (const [name, format] of formats) {
    it(`${name}: dx = dy · dequant(W) (loops), no gradient for the weight or bias`, () => {
      const [outF, inF] = [6, 24];
      const w = seeded([outF, inF], 1);
      const base = new QuantizedBase(quantizeLinear(w, format), seeded([outF], 2));
      const wq = base.denseWeight('float64').toFloat64Array();
      const xv = randomValues(2 * 3 * inF, 3);
      const x = nonContiguousTensor(xv, [2, 3, inF], 'float32');
      x.requiresGrad = true;
      const y = base.forward(x);
      const dyv = randomValues(2 * 3 * outF, 4);
      y.backward(tensor(dyv, { shape: [2, 3, outF] }));
      const expected = new Float64Array(6 * inF);
      for (let r = 0; r < 6; r++) {
        for (let k = 0; k < inF; k++) {
          let s = 0;
          for (let o = 0; o < outF; o++) s += dyv[r * outF + o]! * wq[o * inF + k]!;
          expected[r * inF + k] = s;
        }
      }
      assertClose(x.grad!, expected, { rtol: 1e-5, atol: 1e-5 });
      expect(base.bias!.grad).toBeNull();
    });
  }

  it('the matmul node keeps the three weight tensors and not the activation', () => {
    const base = new QuantizedBase(quantizeLinear(seeded([4, 32], 1), { format: 'nf4', blocksize: 32, doubleQuant: false }));
    const x = seeded([3, 32], 2);
    x.requiresGrad = true;
    const y = base.forward(x);
    expect(y.gradFn).toBeInstanceOf(GraphNode);
    expect((y.gradFn as GraphNode).op).toBe('nf4Matmul');
    expect((y.gradFn as GraphNode).savedCount).toBe(3);
  });

  it('a low-rank addend gives dx only: asking for its values\' or factor\'s gradient throws', () => {
    const q = quantizeLinear(seeded([4, 32], 11), { format: 'nf4', blocksize: 32, doubleQuant: false });
    const x = seeded([3, 32], 12);
    x.requiresGrad = true;
    const [values, factor] = [seeded([3, 2], 13), seeded([4, 2], 14)];
    const dx = (() => {
      const y = q.matmul(x, { values, factor, lambda: 1 });
      sum(y).backward();
      return x.grad!.toFloat64Array();
    })();
    x.grad = null;
    assertClose(dx, (() => {
      sum(q.matmul(x)).backward();
      return x.grad!.toFloat64Array();
    })(), { rtol: 1e-6, atol: 1e-6 });
    values.requiresGrad = true;
    expect(() => sum(q.matmul(x, { values, factor, lambda: 1 })).backward()).toThrow(/a low-rank addend \(values and factor\) has no gradient/);
  });

  it('gradcheck of x through NF4 + Q-BLoRA and INT4 + QA-BLoRA in float64', () => {
    const nf4 = new QuantizedBase(quantizeLinear(seeded([8, 16], 5), { format: 'nf4', blocksize: 32 }));
    const qb = new QBLoraAdapter(16, 8, { lambda: 2 }, { r: 2, alpha: 4, ...opts });
    randomizeAdapter(qb, 6);
    checkLayer(new AdaptedLinear(nf4, qb), seeded([3, 16], 7, 'float64'));
    const int4 = new QuantizedBase(quantizeLinear(seeded([8, 16], 8), { format: 'int4', blockRows: 2, blockCols: 4 }));
    const qa = new QABLoraAdapter(16, 8, { lambdaIn: 4, lambdaOut: 2 }, { r: 2, alpha: 4, ...opts });
    randomizeAdapter(qa, 9);
    checkLayer(new AdaptedLinear(int4, qa), seeded([3, 16], 10, 'float64'));
  });
});
