// adamwStep on cuda updates param, m and v in place with exactly the CPU's float64 arithmetic:
// bit-identical results for every parameter dtype, float32 and float64 moments, and gradients
// of another dtype or a strided layout. A plain-loop reference (Math.fround for float32
// storage) gives the same bits for float32 and float64 parameters.
import { adamwStep, tensor, type DType, type Tensor } from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { FLOAT_DTYPES, makeTensor, roundTo, valuesFor, type Layout } from './helpers.js';

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Stores `v` as a float32 or float64 storage element would. */
function store(v: number, dtype: DType): number {
  return dtype === 'float32' ? Math.fround(v) : v;
}

/** Plain-loop AdamW over `steps` steps from zero moments (float32 or float64 params and moments). */
function adamwReference(param: Float64Array, grads: Float64Array[], h: Hyper, dtype: DType, momentDType: DType): Float64Array {
  const p = Float64Array.from(param);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  grads.forEach((g, s) => {
    const step = s + 1;
    const stepSize = h.lr / (1 - h.beta1 ** step);
    const c2 = Math.sqrt(1 - h.beta2 ** step);
    for (let i = 0; i < p.length; i++) {
      m[i] = store(h.beta1 * m[i]! + (1 - h.beta1) * g[i]!, momentDType);
      v[i] = store(h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!, momentDType);
      p[i] = store(p[i]! * (1 - h.lr * h.weightDecay) - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / c2 + h.eps), dtype);
    }
  });
  return p;
}

/** Runs `grads.length` steps on `device`; returns the final param, m and v storage. */
function run(device: string, param: Float64Array, grads: Float64Array[], h: Hyper, dtype: DType, gradDType: DType, momentDType: DType, gradLayout: Layout): number[][] {
  const shape = [5, 13];
  const p = tensor(param, { shape, dtype, device });
  const m = tensor(new Float64Array(param.length), { shape, dtype: momentDType, device });
  const v = tensor(new Float64Array(param.length), { shape, dtype: momentDType, device });
  grads.forEach((g, s) => {
    const grad = makeTensor(g, shape, gradDType, device, gradLayout);
    adamwStep(p, grad, m, v, { ...h, step: s + 1 });
    grad.dispose();
  });
  const out = [p, m, v].map((t: Tensor) => Array.from(t.toTypedArray()));
  for (const t of [p, m, v]) t.dispose();
  return out;
}

const HYPER: Hyper = { lr: 3e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

describe.skipIf(!cudaAvailable())('adamwStep on cuda', () => {
  it('is bit-identical to the CPU for every param, grad and moment dtype and grad layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const momentDType of ['float32', 'float64'] as DType[]) {
        for (const gradDType of [dtype, 'float32' as DType]) {
          for (const layout of ['contiguous', 'transposed', 'strided'] as Layout[]) {
            const param = roundTo(valuesFor(dtype, 65, 1), dtype);
            const grads = [2, 3, 4].map((seed) => roundTo(valuesFor(gradDType, 65, seed, -3, 3), gradDType));
            const cuda = run('cuda', param, grads, HYPER, dtype, gradDType, momentDType, layout);
            const cpu = run('cpu', param, grads, HYPER, dtype, gradDType, momentDType, layout);
            expect(cuda).toEqual(cpu);
          }
        }
      }
    }
  });

  it('matches a plain-loop float64 reference bit for bit for float32 and float64 params', () => {
    for (const dtype of ['float32', 'float64'] as DType[]) {
      const param = roundTo(valuesFor(dtype, 65, 5), dtype);
      const grads = [6, 7, 8, 9].map((seed) => roundTo(valuesFor(dtype, 65, seed, -1, 1), dtype));
      for (const h of [HYPER, { lr: 1e-3, beta1: 0, beta2: 0.5, eps: 1e-3, weightDecay: 0 }]) {
        const [p] = run('cuda', param, grads, h, dtype, dtype, dtype, 'contiguous');
        expect(p).toEqual(Array.from(adamwReference(param, grads, h, dtype, dtype)));
      }
    }
  });

  it('updates an empty parameter without error', () => {
    const p = tensor(new Float64Array(0), { shape: [0, 4], device: 'cuda' });
    const m = tensor(new Float64Array(0), { shape: [0, 4], device: 'cuda' });
    const v = tensor(new Float64Array(0), { shape: [0, 4], device: 'cuda' });
    const g = tensor(new Float64Array(0), { shape: [0, 4], device: 'cuda' });
    expect(() => adamwStep(p, g, m, v, { ...HYPER, step: 1 })).not.toThrow();
    for (const t of [p, m, v, g]) t.dispose();
  });
});
