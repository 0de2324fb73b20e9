// Modules: registration, modes, Linear / Embedding / Dropout, initialisation, state dicts.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { Generator, memoryStats, SafetensorsReader, serializeSafetensors, tensor, type Tensor } from '@blora/tensor';
import { Dropout, Embedding, gradcheck, kaimingUniform, Linear, Module, normal, uniform } from '../src/index.js';
import { values } from './helpers.js';

class Block extends Module {
  readonly fc: Linear;
  readonly drop: Dropout;
  readonly scale: Tensor;
  constructor(gen: Generator) {
    super();
    this.fc = this.registerModule('fc', new Linear(3, 2, { generator: gen }));
    this.drop = this.registerModule('drop', new Dropout(0.5, gen));
    this.scale = this.registerBuffer('scale', tensor([2]));
  }
}

class Net extends Module {
  readonly emb: Embedding;
  readonly blocks: Block[];
  readonly gain: Tensor;
  constructor(seed = 1) {
    super();
    const gen = new Generator(seed);
    this.emb = this.registerModule('emb', new Embedding(5, 3, { generator: gen }));
    this.blocks = [0, 1].map((i) => this.registerModule(`block${i}`, new Block(gen)));
    this.gain = this.registerParameter('gain', tensor([1, 1]));
  }
}

describe('Module', () => {
  it('names parameters, buffers and modules by nesting', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual([
      'gain', 'emb.weight', 'block0.fc.weight', 'block0.fc.bias', 'block1.fc.weight', 'block1.fc.bias',
    ]);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['block0.scale', 'block1.scale']);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', 'emb', 'block0', 'block0.fc', 'block0.drop', 'block1', 'block1.fc', 'block1.drop']);
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
    expect(net.namedBuffers().every(([, b]) => !b.requiresGrad)).toBe(true);
    expect(net.numParameters()).toBe(2 + 15 + 2 * (6 + 2));
    expect(Object.keys(net.stateDict())).toHaveLength(8);
  });

  it('train / eval reach every descendant; setRequiresGrad freezes', () => {
    const net = new Net();
    net.eval();
    expect(net.namedModules().every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect(net.blocks[1]!.drop.training).toBe(true);
    net.setRequiresGrad(false);
    expect(net.parameters().some((p) => p.requiresGrad)).toBe(false);
  });

  it('rejects bad and duplicate names', () => {
    class Bad extends Module {
      constructor(name: string, twice = false) {
        super();
        this.registerParameter(name, tensor([1]));
        if (twice) this.registerBuffer(name, tensor([1]));
      }
    }
    expect(() => new Bad('a.b')).toThrow(/Bad: invalid parameter name 'a.b'/);
    expect(() => new Bad('w', true)).toThrow(/Bad: the name 'w' is already registered/);
  });

  it('zeroGrad drops gradients', () => {
    const net = new Net();
    T.sum(net.gain).backward();
    expect(net.gain.grad).not.toBeNull();
    net.zeroGrad();
    expect(net.gain.grad).toBeNull();
  });
});

describe('state dicts', () => {
  it('round-trips through safetensors bytes, in place', () => {
    const a = new Net(1);
    const b = new Net(2);
    const weightObject = b.emb.weight;
    expect(values(a.emb.weight)).not.toEqual(values(b.emb.weight));
    const bytes = serializeSafetensors(a.stateDict());
    const reader = SafetensorsReader.fromBytes(bytes);
    const loaded = Object.fromEntries(reader.names().map((n) => [n, reader.readTensor(n)]));
    expect(b.loadStateDict(loaded)).toEqual({ missing: [], unexpected: [] });
    for (const [name, t] of Object.entries(a.stateDict())) expect(values(b.stateDict()[name]!)).toEqual(values(t));
    expect(b.emb.weight).toBe(weightObject);
  });

  it('converts dtypes on load', () => {
    const a = new Net(1);
    const halves = Object.fromEntries(Object.entries(a.stateDict()).map(([k, t]) => [k, T.cast(t, 'float64')]));
    const b = new Net(2);
    b.loadStateDict(halves);
    expect(b.gain.dtype).toBe('float32');
    expect(values(b.blocks[0]!.fc.weight)).toEqual(values(a.blocks[0]!.fc.weight));
  });

  it('strict loading names every missing, unexpected and mis-shaped entry and changes nothing', () => {
    const a = new Net(1);
    const b = new Net(2);
    const before = values(b.emb.weight);
    const state = { ...a.stateDict() };
    delete state['block1.fc.bias'];
    state['extra.weight'] = tensor([1]);
    state['gain'] = tensor([1, 2, 3]);
    let message = '';
    try {
      b.loadStateDict(state);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("loadStateDict (Net): shape mismatch for 'gain': state dict has [3], the module has [2]");
    expect(message).toContain('missing keys: block1.fc.bias');
    expect(message).toContain('unexpected keys: extra.weight');
    expect(values(b.emb.weight)).toEqual(before);
  });

  it('non-strict loading reports what did not match; shapes must still match', () => {
    const a = new Net(1);
    const b = new Net(2);
    const state = { ...a.stateDict() };
    delete state['gain'];
    state['other'] = tensor([1]);
    expect(b.loadStateDict(state, { strict: false })).toEqual({ missing: ['gain'], unexpected: ['other'] });
    expect(values(b.emb.weight)).toEqual(values(a.emb.weight));
    state['emb.weight'] = tensor([1]);
    expect(() => b.loadStateDict(state, { strict: false })).toThrow(/shape mismatch for 'emb.weight'/);
  });
});

describe('Linear', () => {
  it('computes x W^T + b (checked with loops), on batched inputs', () => {
    const lin = new Linear(4, 3, { generator: new Generator(3) });
    const x = tensor(Array.from({ length: 2 * 5 * 4 }, (_, i) => Math.sin(i)), { shape: [2, 5, 4] });
    const y = lin.forward(x);
    expect(y.shape).toEqual([2, 5, 3]);
    const W = values(lin.weight), b = values(lin.bias!), X = values(x), Y = values(y);
    for (let r = 0; r < 10; r++) {
      for (let o = 0; o < 3; o++) {
        let s = b[o]!;
        for (let i = 0; i < 4; i++) s += X[r * 4 + i]! * W[o * 4 + i]!;
        expect(Y[r * 3 + o]).toBeCloseTo(s, 5);
      }
    }
    expect(() => lin.forward(tensor([1, 2, 3]))).toThrow(/Linear: expected input \[\.\.\., 4\], got float32\[3\]/);
  });

  it('initialises as PyTorch: uniform within 1/sqrt(in) for weight and bias', () => {
    const lin = new Linear(64, 128, { generator: new Generator(5) });
    const bound = 1 / 8;
    const w = values(lin.weight);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    const variance = w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length;
    expect(Math.abs(mean)).toBeLessThan(0.005);
    expect(variance).toBeGreaterThan(0.9 * bound * bound / 3);
    expect(variance).toBeLessThan(1.1 * bound * bound / 3);
    expect(Math.max(...values(lin.bias!).map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(new Linear(2, 2, { bias: false }).bias).toBeNull();
    expect(() => new Linear(0, 2)).toThrow(/Linear: inFeatures must be a positive integer, got 0/);
  });

  it('differentiates with respect to input, weight and bias', () => {
    const lin = new Linear(3, 2, { dtype: 'float64', generator: new Generator(4) });
    const x = tensor([[0.1, -0.2, 0.3], [0.5, 0.4, -0.6]], { dtype: 'float64' });
    x.requiresGrad = true;
    gradcheck((input, w, bias) => T.add(T.matmul(input, T.transpose(w)), bias), [x, lin.weight, lin.bias!]);
    gradcheck((input) => lin.forward(input), [x, lin.weight, lin.bias!]);
  });
});

describe('Embedding and Dropout modules', () => {
  it('Embedding looks rows up by id, initialised standard normal', () => {
    const emb = new Embedding(1000, 8, { generator: new Generator(6) });
    const w = values(emb.weight);
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(std).toBeGreaterThan(0.95);
    expect(std).toBeLessThan(1.05);
    const out = emb.forward(tensor([[3, 999]], { dtype: 'int32' }));
    expect(out.shape).toEqual([1, 2, 8]);
    expect(values(out).slice(8)).toEqual(w.slice(999 * 8));
  });

  it('Dropout follows train / eval', () => {
    const drop = new Dropout(0.5, new Generator(1));
    const x = T.ones([100]);
    const y = values(drop.forward(x));
    expect(y.some((v) => v === 0)).toBe(true);
    expect(y.every((v) => v === 0 || v === 2)).toBe(true);
    drop.eval();
    expect(drop.forward(x)).toBe(x);
    expect(() => new Dropout(1)).toThrow(/Dropout: p must be in \[0, 1\), got 1/);
  });

  it('initialisers: bounds, moments, dtypes', () => {
    const gen = new Generator(9);
    const k = values(kaimingUniform([50, 20], { generator: gen, a: 0 }));
    const bound = Math.sqrt(6 / 20);
    expect(Math.max(...k.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...k.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    const u = uniform([1000], 2, 3, { generator: gen, dtype: 'bfloat16' });
    expect(u.dtype).toBe('bfloat16');
    expect(values(u).every((v) => v >= 2 && v <= 3)).toBe(true);
    const n = values(normal([4000], 5, 0.5, { generator: gen, dtype: 'float64' }));
    expect(n.reduce((a, v) => a + v, 0) / n.length).toBeCloseTo(5, 1);
    expect(() => kaimingUniform([3])).toThrow(/fanIn: needs a weight of rank >= 2/);
  });

  it('initialisers leave only the tensor they return alive', () => {
    const gen = new Generator(10);
    for (const make of [
      () => normal([64, 32], 0, 0.02, { generator: gen }),
      () => uniform([64, 32], -1, 1, { generator: gen, dtype: 'bfloat16' }),
      () => kaimingUniform([64, 32], { generator: gen }),
    ]) {
      const before = memoryStats();
      const t = make();
      const after = memoryStats();
      expect(after.liveTensors - before.liveTensors).toBe(1);
      expect(after.bytes - before.bytes).toBe(t.numel * (t.dtype === 'bfloat16' ? 2 : 4));
      t.dispose();
    }
  });
});
