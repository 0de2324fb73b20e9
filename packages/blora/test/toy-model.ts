// A small Llama-style causal LM with Hugging Face's module names
// (model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj,
// model.norm, lm_head). Its forward calls children through fields, as model code does.
import { add, attention, crossEntropy, Generator, permute, reshape, rope, ropeTables, type Tensor } from '@blora/tensor';
import { Embedding, Linear, Module, RMSNorm, swiglu } from '@blora/autograd';

export interface ToyConfig {
  vocab: number;
  dim: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  layers: number;
  context: number;
}

/** Anything with the linear layer's call signature (a Linear, a frozen base, an adapted layer). */
interface Projection extends Module {
  forward(x: Tensor): Tensor;
}

class Attention extends Module {
  readonly q_proj: Projection;
  readonly k_proj: Projection;
  readonly v_proj: Projection;
  readonly o_proj: Projection;
  constructor(readonly cfg: ToyConfig, generator: Generator) {
    super();
    const headDim = cfg.dim / cfg.heads;
    const linear = (name: string, inF: number, outF: number) => this.registerModule(name, new Linear(inF, outF, { bias: false, generator }));
    this.q_proj = linear('q_proj', cfg.dim, cfg.heads * headDim);
    this.k_proj = linear('k_proj', cfg.dim, cfg.kvHeads * headDim);
    this.v_proj = linear('v_proj', cfg.dim, cfg.kvHeads * headDim);
    this.o_proj = linear('o_proj', cfg.heads * headDim, cfg.dim);
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const [b, t] = x.shape as [number, number, number];
    const headDim = this.cfg.dim / this.cfg.heads;
    const split = (y: Tensor, n: number) => permute(reshape(y, [b, t, n, headDim]), [0, 2, 1, 3]);
    const q = rope(split(this.q_proj.forward(x), this.cfg.heads), cos, sin);
    const k = rope(split(this.k_proj.forward(x), this.cfg.kvHeads), cos, sin);
    const v = split(this.v_proj.forward(x), this.cfg.kvHeads);
    const heads = attention(q, k, v, { causal: true });
    return this.o_proj.forward(reshape(permute(heads, [0, 2, 1, 3]), [b, t, this.cfg.dim]));
  }
}

class Mlp extends Module {
  readonly gate_proj: Projection;
  readonly up_proj: Projection;
  readonly down_proj: Projection;
  constructor(cfg: ToyConfig, generator: Generator) {
    super();
    this.gate_proj = this.registerModule('gate_proj', new Linear(cfg.dim, cfg.hidden, { bias: false, generator }));
    this.up_proj = this.registerModule('up_proj', new Linear(cfg.dim, cfg.hidden, { bias: false, generator }));
    this.down_proj = this.registerModule('down_proj', new Linear(cfg.hidden, cfg.dim, { bias: false, generator }));
  }

  forward(x: Tensor): Tensor {
    return this.down_proj.forward(swiglu(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

class Block extends Module {
  readonly self_attn: Attention;
  readonly mlp: Mlp;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(cfg: ToyConfig, generator: Generator) {
    super();
    this.self_attn = this.registerModule('self_attn', new Attention(cfg, generator));
    this.mlp = this.registerModule('mlp', new Mlp(cfg, generator));
    this.input_layernorm = this.registerModule('input_layernorm', new RMSNorm(cfg.dim, { eps: 1e-5 }));
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', new RMSNorm(cfg.dim, { eps: 1e-5 }));
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), cos, sin));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

class LayerList extends Module {
  readonly items: Block[];
  constructor(blocks: Block[]) {
    super();
    this.items = blocks.map((b, i) => this.registerModule(String(i), b));
  }
}

class Decoder extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: LayerList;
  readonly norm: RMSNorm;
  constructor(cfg: ToyConfig, generator: Generator) {
    super();
    this.embed_tokens = this.registerModule('embed_tokens', new Embedding(cfg.vocab, cfg.dim, { generator }));
    this.layers = this.registerModule('layers', new LayerList(Array.from({ length: cfg.layers }, () => new Block(cfg, generator))));
    this.norm = this.registerModule('norm', new RMSNorm(cfg.dim, { eps: 1e-5 }));
  }
}

/** The toy LM: `model` (the decoder) and `lm_head`, like LlamaForCausalLM. */
export class ToyCausalLM extends Module {
  readonly model: Decoder;
  readonly lm_head: Projection;
  private readonly cos: Tensor;
  private readonly sin: Tensor;

  constructor(readonly cfg: ToyConfig, seed: number) {
    super();
    const generator = new Generator(seed);
    this.model = this.registerModule('model', new Decoder(cfg, generator));
    this.lm_head = this.registerModule('lm_head', new Linear(cfg.dim, cfg.vocab, { bias: false, generator }));
    ({ cos: this.cos, sin: this.sin } = ropeTables(cfg.context, cfg.dim / cfg.heads, 10000));
  }

  /** Logits [B, T, vocab] for token ids [B, T]. */
  logits(ids: Tensor): Tensor {
    let h = this.model.embed_tokens.forward(ids);
    for (const block of this.model.layers.items) h = block.forward(h, this.cos, this.sin);
    return this.lm_head.forward(this.model.norm.forward(h));
  }

  /** Mean next-token cross-entropy of `inputs` [B, T] against `targets` [B * T]. */
  loss(inputs: Tensor, targets: Tensor): Tensor {
    const [b, t] = inputs.shape as [number, number];
    return crossEntropy(reshape(this.logits(inputs), [b * t, this.cfg.vocab]), targets);
  }
}

/** Every linear layer path of the toy model except lm_head, in model order. */
export function blockLinearPaths(layers: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < layers; i++) {
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) out.push(`model.layers.${i}.self_attn.${p}`);
    for (const p of ['gate_proj', 'up_proj', 'down_proj']) out.push(`model.layers.${i}.mlp.${p}`);
  }
  return out;
}
