// Optimizers against their formulas computed by hand, clipping, schedules and exact resume.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import {
  adamwStep, bfloat16BitsToFloat32, float32ToBfloat16Bits, Generator, SafetensorsReader, serializeSafetensors, tensor, type Tensor,
} from '@blora/tensor';
import {
  AdamW, clipGradNorm, constantWithWarmup, cosineWithWarmup, Linear, linearWithWarmup, LRScheduler, SGD, type OptimizerStateDict,
} from '../src/index.js';
import { values } from './helpers.js';

const f32 = Math.fround;

/** A leaf parameter with the given values. */
function param(v: number[], dtype: 'float32' | 'float64' = 'float64'): Tensor {
  const t = tensor(v, { dtype });
  t.requiresGrad = true;
  return t;
}

/** Hand-written AdamW over plain arrays; `round` models the storage precision of params and moments. */
function adamwReference(
  p: number[], grads: number[][], h: { lr: number; b1: number; b2: number; eps: number; wd: number },
  round: (x: number) => number = (x) => x, roundParam: (x: number) => number = round,
): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const out = [...p];
  grads.forEach((g, s) => {
    const step = s + 1;
    for (let i = 0; i < out.length; i++) {
      m[i] = round(h.b1 * m[i]! + (1 - h.b1) * g[i]!);
      v[i] = round(h.b2 * v[i]! + (1 - h.b2) * g[i]! * g[i]!);
      const mhat = m[i]! / (1 - h.b1 ** step);
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - h.b2 ** step) + h.eps;
      out[i] = roundParam(out[i]! * (1 - h.lr * h.wd) - (h.lr * mhat) / denom);
    }
  });
  return out;
}

describe('adamwStep kernel', () => {
  const h = { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1 };
  const attrs = (step: number) => ({ lr: h.lr, beta1: h.b1, beta2: h.b2, eps: h.eps, weightDecay: h.wd, step });

  it('float64 parameters follow the formula for several steps; the gradient may be a strided view', () => {
    const p0 = [0.5, -1.25, 2, 0.001, -0.3];
    const grads = [[0.1, -0.2, 0.3, 0, 5], [-0.4, 0.1, 0.2, 1e-3, -2], [0.3, 0.3, -0.1, 0, 1]];
    const p = tensor(p0, { dtype: 'float64' });
    const m = T.zeros([5], { dtype: 'float64' });
    const v = T.zeros([5], { dtype: 'float64' });
    grads.forEach((g, s) => {
      const wide = tensor(g.flatMap((x) => [x, Number.NaN]), { dtype: 'float64', shape: [5, 2] });
      adamwStep(p, T.squeeze(T.slice(wide, 1, 0, 1), 1), m, v, attrs(s + 1));
    });
    const expected = adamwReference(p0, grads, h);
    values(p).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 14));
  });

  it('float32 and bfloat16 parameters keep float32 moments', () => {
    const p0 = [0.5, -1.25, 2, 0.75];
    const grads = [[0.1, -0.2, 0.3, 0.05], [-0.4, 0.1, 0.2, -0.05]];
    const p = tensor(p0, { dtype: 'float32' });
    const m = T.zeros([4]);
    const v = T.zeros([4]);
    grads.forEach((g, s) => adamwStep(p, tensor(g, { dtype: 'float32' }), m, v, attrs(s + 1)));
    const expected = adamwReference(p0.map(f32), grads.map((g) => g.map(f32)), h, f32);
    values(p).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));

    const bf = (x: number) => bfloat16BitsToFloat32(float32ToBfloat16Bits(x));
    const pb = tensor(p0, { dtype: 'bfloat16' });
    const mb = T.zeros([4]);
    const vb = T.zeros([4]);
    grads.forEach((g, s) => adamwStep(pb, tensor(g, { dtype: 'bfloat16' }), mb, vb, attrs(s + 1)));
    const expectedB = adamwReference(p0.map(bf), grads.map((g) => g.map(bf)), h, f32, bf);
    expect(values(pb)).toEqual(expectedB);
  });

  it('validates its operands', () => {
    const p = T.zeros([3]);
    const g = T.zeros([3]);
    const m = T.zeros([3]);
    const v = T.zeros([3]);
    expect(() => adamwStep(p, T.zeros([4]), m, v, attrs(1))).toThrow(/adamwStep: grad has shape \[4\], param has \[3\]/);
    expect(() => adamwStep(p, g, T.zeros([3], { dtype: 'bfloat16' }), v, attrs(1))).toThrow(/adamwStep: m must be float32 or float64/);
    expect(() => adamwStep(p, g, m, m, attrs(1))).toThrow(/must not share memory/);
    expect(() => adamwStep(p, g, m, v, attrs(0))).toThrow(/adamwStep: step must be an integer >= 1, got 0/);
    expect(() => adamwStep(p, g, m, v, { ...attrs(1), beta1: 1 })).toThrow(/beta1 must be in \[0, 1\)/);
    const strided = T.slice(T.zeros([6]), 0, 0, 6, 2);
    expect(() => adamwStep(strided, g, m, v, attrs(1))).toThrow(/param float32\[3\] on cpu must be contiguous/);
  });
});

describe('AdamW', () => {
  it('matches the hand-computed update over several steps, per group, skipping params without grad', () => {
    const a = param([0.3, -0.7, 1.1]);
    const b = param([2, -2]);
    const c = param([5]);
    const opt = new AdamW([{ params: [a, c] }, { params: [b], lr: 0.05, weightDecay: 0 }], { lr: 0.01, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.2 });
    const gradsA = [[0.1, 0.2, -0.3], [0.5, -0.1, 0.0], [-0.2, 0.4, 0.1], [0.05, 0.05, 0.05]];
    const gradsB = [[1, -1], [0.5, 0.25], [-0.3, 0.9], [0, 2]];
    for (let s = 0; s < 4; s++) {
      a.grad = tensor(gradsA[s]!, { dtype: 'float64' });
      b.grad = tensor(gradsB[s]!, { dtype: 'float64' });
      opt.step();
      opt.zeroGrad();
    }
    const ea = adamwReference([0.3, -0.7, 1.1], gradsA, { lr: 0.01, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.2 });
    const eb = adamwReference([2, -2], gradsB, { lr: 0.05, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0 });
    values(a).forEach((x, i) => expect(x).toBeCloseTo(ea[i]!, 14));
    values(b).forEach((x, i) => expect(x).toBeCloseTo(eb[i]!, 14));
    expect(values(c)).toEqual([5]);
    expect(opt.stateDict().scalars).toMatchObject({ params: 3, '0.step': 4, '2.step': 4 });
  });

  it('keeps float32 moments for bfloat16 parameters', () => {
    const p = tensor([1, 2], { dtype: 'bfloat16' });
    p.requiresGrad = true;
    p.grad = tensor([0.5, 0.5], { dtype: 'bfloat16' });
    const opt = new AdamW([p]);
    opt.step();
    const sd = opt.stateDict();
    expect(sd.tensors['0.exp_avg']!.dtype).toBe('float32');
    expect(sd.tensors['0.exp_avg_sq']!.dtype).toBe('float32');
  });

  it('rejects bad hyperparameters and duplicate parameters', () => {
    const p = param([1]);
    expect(() => new AdamW([p], { betas: [0.9, 1] })).toThrow(/AdamW: group 0: invalid beta2 1/);
    expect(() => new AdamW([p], { lr: -1 })).toThrow(/invalid lr -1/);
    expect(() => new AdamW([p, p])).toThrow(/appears twice/);
    expect(() => new AdamW([])).toThrow(/non-empty list/);
  });
});

describe('SGD', () => {
  function sgdReference(p: number[], grads: number[][], h: { lr: number; mu: number; damp: number; wd: number; nesterov: boolean }): number[] {
    const out = [...p];
    let buf: number[] | null = null;
    for (const g of grads) {
      const d = g.map((x, i) => x + h.wd * out[i]!);
      if (h.mu > 0) {
        buf = buf ? buf.map((b, i) => h.mu * b + (1 - h.damp) * d[i]!) : [...d];
        const step = h.nesterov ? d.map((x, i) => x + h.mu * buf![i]!) : buf;
        step.forEach((x, i) => (out[i] = out[i]! - h.lr * x));
      } else {
        d.forEach((x, i) => (out[i] = out[i]! - h.lr * x));
      }
    }
    return out;
  }

  const grads = [[0.1, -0.5], [0.3, 0.2], [-0.4, 0.1], [0.2, 0.2]];
  const cases = [
    { lr: 0.1, mu: 0, damp: 0, wd: 0, nesterov: false },
    { lr: 0.1, mu: 0.9, damp: 0, wd: 0, nesterov: false },
    { lr: 0.05, mu: 0.8, damp: 0.3, wd: 0.01, nesterov: false },
    { lr: 0.05, mu: 0.9, damp: 0, wd: 0.1, nesterov: true },
  ];
  for (const h of cases) {
    it(`momentum ${h.mu}, dampening ${h.damp}, weight decay ${h.wd}, nesterov ${h.nesterov}`, () => {
      const p = param([1, -1]);
      const opt = new SGD([p], { lr: h.lr, momentum: h.mu, dampening: h.damp, weightDecay: h.wd, nesterov: h.nesterov });
      for (const g of grads) {
        p.grad = tensor(g, { dtype: 'float64' });
        opt.step();
      }
      const expected = sgdReference([1, -1], grads, h);
      values(p).forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 14));
    });
  }

  it('rejects Nesterov without momentum', () => {
    expect(() => new SGD([param([1])], { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum needs momentum > 0 and dampening 0/);
  });
});

describe('clipGradNorm', () => {
  it('returns the total 2-norm and scales gradients above the limit in place', () => {
    const a = param([0]);
    const b = param([0, 0]);
    const c = param([0]);
    a.grad = tensor([3], { dtype: 'float64' });
    b.grad = tensor([0, 4], { dtype: 'float64' });
    const gradObject = b.grad;
    const norm = clipGradNorm([a, b, c], 1);
    expect(norm).toBeCloseTo(5, 14);
    const k = 1 / (5 + 1e-6);
    expect(values(a.grad)[0]).toBeCloseTo(3 * k, 14);
    expect(values(b.grad)[1]).toBeCloseTo(4 * k, 14);
    expect(b.grad).toBe(gradObject);
  });

  it('leaves gradients below the limit alone; other norms; non-finite norms', () => {
    const a = param([0, 0]);
    a.grad = tensor([0.3, -0.4], { dtype: 'float64' });
    expect(clipGradNorm([a], 1)).toBeCloseTo(0.5, 14);
    expect(values(a.grad)).toEqual([0.3, -0.4]);
    expect(clipGradNorm([a], 1, { normType: Infinity })).toBeCloseTo(0.4, 14);
    expect(clipGradNorm([a], 1, { normType: 1 })).toBeCloseTo(0.7, 14);
    expect(clipGradNorm([a], 1, { normType: 3 })).toBeCloseTo((0.3 ** 3 + 0.4 ** 3) ** (1 / 3), 14);
    a.grad = tensor([Number.POSITIVE_INFINITY, 1], { dtype: 'float64' });
    expect(clipGradNorm([a], 1)).toBe(Number.POSITIVE_INFINITY);
    expect(values(a.grad)).toEqual([Number.POSITIVE_INFINITY, 1]);
    expect(() => clipGradNorm([a], 1, { errorIfNonfinite: true })).toThrow(/total gradient norm is Infinity/);
    expect(clipGradNorm([param([1])], 1)).toBe(0);
  });

  it('replaces gradients that are strided views instead of writing through them', () => {
    const p = param([0, 0]);
    const base = tensor([3, 9, 4, 9], { dtype: 'float64' });
    p.grad = T.slice(base, 0, 0, 4, 2);
    expect(clipGradNorm([p], 1)).toBeCloseTo(5, 14);
    expect(values(p.grad)[1]).toBeCloseTo(4 / (5 + 1e-6), 14);
    expect(values(base)).toEqual([3, 9, 4, 9]);
  });

  it('measures half-precision gradients in float32', () => {
    const p = tensor([0, 0], { dtype: 'bfloat16' });
    p.grad = tensor([300, 400], { dtype: 'bfloat16' });
    expect(clipGradNorm([p], 1e9)).toBeCloseTo(500, 3);
  });
});

describe('learning-rate schedules', () => {
  it('constant with warmup (HF convention: rate 0 at step 0)', () => {
    const f = constantWithWarmup(4);
    expect([0, 1, 2, 3, 4, 100].map(f)).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
    expect(constantWithWarmup(0)(0)).toBe(1);
  });

  it('linear decay', () => {
    const f = linearWithWarmup(2, 10);
    expect([0, 1, 2, 6, 10, 12].map(f)).toEqual([0, 0.5, 1, 0.5, 0, 0]);
  });

  it('cosine decay, with a floor', () => {
    const f = cosineWithWarmup(2, 12);
    expect(f(1)).toBe(0.5);
    expect(f(2)).toBe(1);
    expect(f(7)).toBeCloseTo(0.5, 14);
    expect(f(12)).toBeCloseTo(0, 14);
    const g = cosineWithWarmup(0, 10, { minRatio: 0.1 });
    expect(g(10)).toBeCloseTo(0.1, 14);
    expect(g(5)).toBeCloseTo(0.55, 14);
    expect(() => cosineWithWarmup(5, 3)).toThrow(/totalSteps must be an integer >= warmupSteps \(5\), got 3/);
  });

  it('LRScheduler sets each group from its base rate and saves its step', () => {
    const opt = new SGD([{ params: [param([1])] }, { params: [param([1])], lr: 1 }], { lr: 0.1 });
    const sched = new LRScheduler(opt, linearWithWarmup(2, 4));
    expect(sched.lastLr).toEqual([0, 0]);
    sched.step();
    expect(sched.lastLr).toEqual([0.05, 0.5]);
    sched.step();
    sched.step();
    const saved = sched.stateDict();
    expect(saved).toEqual({ step: 3, 'base_lr.0': 0.1, 'base_lr.1': 1 });
    const again = new LRScheduler(new SGD([{ params: [param([1])] }, { params: [param([1])], lr: 1 }], { lr: 0.1 }), linearWithWarmup(2, 4));
    again.loadStateDict(JSON.parse(JSON.stringify(saved)));
    expect(again.lastLr).toEqual(sched.lastLr);
  });
});

describe('optimizer state: exact resume', () => {
  /** A tiny regression problem trained with AdamW + clipping + a schedule. */
  function setup(): { lin: Linear; opt: AdamW; sched: LRScheduler; step: (i: number) => void } {
    const lin = new Linear(3, 2, { generator: new Generator(11) });
    const opt = new AdamW(lin.parameters(), { lr: 0.05, weightDecay: 0.1 });
    const sched = new LRScheduler(opt, constantWithWarmup(3));
    const step = (i: number) => {
      T.tidy(() => {
        const x = tensor([[i % 3, 1, -1], [0.5, -i % 2, 2]]);
        const target = tensor([[1, -1], [0.5, 2]]);
        T.mean(T.square(T.sub(lin.forward(x), target))).backward();
      });
      clipGradNorm(lin.parameters(), 0.5);
      opt.step();
      opt.zeroGrad();
      sched.step();
    };
    return { lin, opt, sched, step };
  }

  it('save after 4 steps, load into a fresh model and optimizer, continue: bit-identical to 8 straight steps', () => {
    const straight = setup();
    for (let i = 0; i < 8; i++) straight.step(i);

    const first = setup();
    for (let i = 0; i < 4; i++) first.step(i);
    const sd = first.opt.stateDict();
    // Through the on-disk formats: safetensors bytes for tensors, JSON for numbers.
    const bytes = serializeSafetensors({ ...sd.tensors, ...Object.fromEntries(Object.entries(first.lin.stateDict()).map(([k, t]) => [`model.${k}`, t])) });
    const json = JSON.stringify({ optimizer: sd.scalars, scheduler: first.sched.stateDict() });

    const second = setup();
    const reader = SafetensorsReader.fromBytes(bytes);
    const restored: OptimizerStateDict = { tensors: {}, scalars: JSON.parse(json).optimizer };
    const model: Record<string, Tensor> = {};
    for (const name of reader.names()) {
      if (name.startsWith('model.')) model[name.slice(6)] = reader.readTensor(name);
      else restored.tensors[name] = reader.readTensor(name);
    }
    second.lin.loadStateDict(model);
    second.opt.loadStateDict(restored);
    second.sched.loadStateDict(JSON.parse(json).scheduler);
    for (let i = 4; i < 8; i++) second.step(i);

    expect(values(second.lin.weight)).toEqual(values(straight.lin.weight));
    expect(values(second.lin.bias!)).toEqual(values(straight.lin.bias!));
  });

  it('a snapshot is not changed by later steps; loading checks counts and shapes', () => {
    const run = setup();
    run.step(0);
    const sd = run.opt.stateDict();
    const snapshot = values(sd.tensors['0.exp_avg']!);
    run.step(1);
    expect(values(sd.tensors['0.exp_avg']!)).toEqual(snapshot);

    const other = new AdamW([param([1, 2])]);
    expect(() => other.loadStateDict(sd)).toThrow(/AdamW.loadStateDict: the state is for 2 parameters, this optimizer has 1/);
    const two = new AdamW([param([1, 2]), param([3])]);
    expect(() => two.loadStateDict(sd)).toThrow(/'0.exp_avg' has shape \[2, 3\], parameter 0 has \[2\]/);
    const missing = { tensors: { ...sd.tensors }, scalars: sd.scalars };
    delete missing.tensors['1.exp_avg_sq'];
    expect(() => setup().opt.loadStateDict(missing)).toThrow(/missing tensor '1.exp_avg_sq'/);
  });
});
