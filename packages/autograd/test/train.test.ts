// End to end: a character-level MLP trained on real English text, a leak check over many
// training steps, and activation checkpointing.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { Generator, memoryStats, tensor, tidy, type Tensor } from '@blora/tensor';
import {
  AdamW, checkpoint, clipGradNorm, constantWithWarmup, Dropout, Embedding, Linear, LRScheduler, Module, noGrad,
} from '../src/index.js';
import { ALPHABET, brownCharIds, unigramEntropy } from './corpus.js';
import { values } from './helpers.js';

const CONTEXT = 4;
const VOCAB = ALPHABET.length;

/** Predicts the next character from the previous CONTEXT: embed, concatenate, MLP. */
class CharMLP extends Module {
  readonly emb: Embedding;
  readonly hidden: Linear;
  readonly drop: Dropout;
  readonly out: Linear;
  constructor(gen: Generator, p = 0) {
    super();
    this.emb = this.registerModule('emb', new Embedding(VOCAB, 12, { generator: gen }));
    this.hidden = this.registerModule('hidden', new Linear(CONTEXT * 12, 96, { generator: gen }));
    this.drop = this.registerModule('drop', new Dropout(p, gen));
    this.out = this.registerModule('out', new Linear(96, VOCAB, { generator: gen }));
  }

  /** Mean negative log-likelihood of `targets` [B] given `contexts` [B, CONTEXT]. */
  loss(contexts: Tensor, targets: Tensor): Tensor {
    const x = T.reshape(this.emb.forward(contexts), [contexts.shape[0]!, CONTEXT * 12]);
    const h = this.drop.forward(T.tanh(this.hidden.forward(x)));
    const logp = T.logSoftmax(this.out.forward(h), -1);
    const picked = T.gather(logp, 1, T.unsqueeze(targets, 1));
    return T.neg(T.mean(picked));
  }
}

/** A batch of (context, next char) pairs starting at the given positions. */
function batch(ids: Int32Array, starts: readonly number[]): [Tensor, Tensor] {
  const ctx = new Int32Array(starts.length * CONTEXT);
  const next = new Int32Array(starts.length);
  starts.forEach((s, b) => {
    for (let j = 0; j < CONTEXT; j++) ctx[b * CONTEXT + j] = ids[s + j]!;
    next[b] = ids[s + CONTEXT]!;
  });
  return [tensor(ctx, { dtype: 'int32', shape: [starts.length, CONTEXT] }), tensor(next, { dtype: 'int32' })];
}

function randomStarts(rnd: () => number, limit: number, n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(rnd() * limit));
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

describe('training on real text', () => {
  it('a character MLP learns English text well below the unigram entropy', () => {
    const ids = brownCharIds(['ca01', 'ca02', 'ca03']);
    const split = Math.floor(ids.length * 0.9);
    const train = ids.subarray(0, split);
    const heldOut = ids.subarray(split);
    const entropy = unigramEntropy(train, VOCAB);
    expect(entropy).toBeGreaterThan(2.5); // about 2.9 nats for English characters

    const model = new CharMLP(new Generator(1));
    const opt = new AdamW(model.parameters(), { lr: 0.01, weightDecay: 0.01 });
    const sched = new LRScheduler(opt, constantWithWarmup(10));
    const rnd = seeded(7);
    for (let step = 0; step < 400; step++) {
      tidy(() => {
        const [ctx, next] = batch(train, randomStarts(rnd, train.length - CONTEXT - 1, 64));
        model.loss(ctx, next).backward();
      });
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      sched.step();
    }
    const starts = Array.from({ length: Math.floor((heldOut.length - CONTEXT - 1) / 3) }, (_, i) => i * 3);
    const evalLoss = noGrad(() => tidy(() => model.loss(...batch(heldOut, starts)).item()));
    // Measured on text the model never saw.
    expect(evalLoss).toBeLessThan(entropy - 0.5);
  });
});

describe('memory over many steps', () => {
  it('live tensors and bytes stay flat over 50 training steps (dropout, clipping, AdamW, schedule)', () => {
    const ids = brownCharIds(['ca04']);
    const model = new CharMLP(new Generator(2), 0.1);
    const opt = new AdamW(model.parameters(), { lr: 0.01 });
    const sched = new LRScheduler(opt, constantWithWarmup(5));
    const rnd = seeded(3);
    const samples: { liveTensors: number; bytes: number }[] = [];
    for (let step = 0; step < 50; step++) {
      tidy(() => {
        const [ctx, next] = batch(ids, randomStarts(rnd, ids.length - CONTEXT - 1, 32));
        model.loss(ctx, next).backward();
        clipGradNorm(model.parameters(), 1);
        opt.step();
        opt.zeroGrad();
        sched.step();
      });
      const { liveTensors, bytes } = memoryStats();
      samples.push({ liveTensors, bytes });
    }
    // After the first step created the optimizer state, nothing accumulates.
    for (const s of samples.slice(1)) expect(s).toEqual(samples[1]);
  });
});

describe('activation checkpointing', () => {
  const gen = () => new Generator(5);

  it('gives the same gradients as running the block directly, dropout included', () => {
    const run = (useCheckpoint: boolean) => {
      const g = gen();
      const l1 = new Linear(6, 10, { generator: g, dtype: 'float64' });
      const l2 = new Linear(10, 6, { generator: g, dtype: 'float64' });
      const dropGen = new Generator(9);
      const drop = new Dropout(0.3, dropGen);
      const f = (x: Tensor) => T.add(x, l2.forward(drop.forward(T.silu(l1.forward(x)))));
      const x = T.randn([4, 6], { generator: new Generator(3), dtype: 'float64' });
      x.requiresGrad = true;
      const h = useCheckpoint ? checkpoint(f, [x], { generators: [dropGen] }) : f(x);
      const y = useCheckpoint ? checkpoint(f, [h], { generators: [dropGen] }) : f(h);
      T.sum(T.square(y)).backward();
      return [x.grad!, l1.weight.grad!, l1.bias!.grad!, l2.weight.grad!, l2.bias!.grad!].map(values);
    };
    const direct = run(false);
    const recomputed = run(true);
    expect(recomputed).toEqual(direct);
  });

  it('reaches parameters when no input requires grad, and keeps less memory alive before backward', () => {
    const measure = (useCheckpoint: boolean) => {
      const g = gen();
      const l1 = new Linear(32, 256, { generator: g });
      const l2 = new Linear(256, 32, { generator: g });
      const f = (x: Tensor) => l2.forward(T.tanh(T.exp(T.tanh(l1.forward(x)))));
      const x = T.randn([64, 32], { generator: new Generator(1) });
      const base = memoryStats().bytes;
      const loss = tidy(() => T.sum(useCheckpoint ? checkpoint(f, [x]) : f(x)));
      const held = memoryStats().bytes - base;
      loss.backward();
      return { held, grads: [l1.weight, l1.bias!, l2.weight, l2.bias!].map((p) => values(p.grad!)) };
    };
    const direct = measure(false);
    const recomputed = measure(true);
    expect(recomputed.grads).toEqual(direct.grads);
    // Without checkpointing, three [64, 256] activations are held for backward.
    expect(direct.held - recomputed.held).toBeGreaterThanOrEqual(2 * 64 * 256 * 4);
  });

  it('blocks with several inputs and outputs', () => {
    const f = (a: Tensor, b: Tensor) => [T.mul(T.sin(a), b), T.exp(T.sub(a, b))] as const;
    const grads = (useCheckpoint: boolean) => {
      const a = T.randn([3, 4], { generator: new Generator(1), dtype: 'float64' });
      const b = T.randn([3, 4], { generator: new Generator(2), dtype: 'float64' });
      a.requiresGrad = true;
      b.requiresGrad = true;
      const [u, v] = useCheckpoint ? checkpoint(f, [a, b]) : f(a, b);
      T.sum(T.add(T.square(u), v)).backward();
      return [values(a.grad!), values(b.grad!)];
    };
    expect(grads(true)).toEqual(grads(false));
  });

  it('records nothing under noGrad and returns the plain result', () => {
    const l = new Linear(3, 3, { generator: gen() });
    const y = noGrad(() => checkpoint((x) => l.forward(x), [T.ones([2, 3])]));
    expect(y.requiresGrad).toBe(false);
  });
});
