// The gated MLP of Llama-family blocks: SwiGLU (LLaMA, Mistral) or GeGLU (Gemma).
import { gelu, mul, siluMul, type Tensor } from '@blora/tensor';
import { Module, recomputeForBackward } from '@blora/autograd';
import type { LlamaConfig, MlpActivation } from './config.js';
import type { LinearModule } from './layers.js';

/** The three projections of an MLP, by Hugging Face name. */
export interface MlpProjections {
  gate_proj: LinearModule;
  up_proj: LinearModule;
  down_proj: LinearModule;
}

/** Applies a GELU gate activation (SwiGLU's silu goes into siluMul with the product). */
function activate(x: Tensor, act: MlpActivation): Tensor {
  return gelu(x, act === 'gelu_tanh' ? 'tanh' : 'none');
}

/** `down_proj(act(gate_proj(x)) * up_proj(x))`. */
export class LlamaMLP extends Module {
  /** hidden -> intermediate, through the activation. */
  readonly gate_proj: LinearModule;
  /** hidden -> intermediate. */
  readonly up_proj: LinearModule;
  /** intermediate -> hidden. */
  readonly down_proj: LinearModule;
  /** The gate activation. */
  readonly activation: MlpActivation;

  constructor(config: LlamaConfig, projections: MlpProjections) {
    super();
    const { hiddenSize: d, intermediateSize: m } = config;
    const expect: Record<keyof MlpProjections, [number, number]> = { gate_proj: [d, m], up_proj: [d, m], down_proj: [m, d] };
    for (const [name, [inF, outF]] of Object.entries(expect) as [keyof MlpProjections, [number, number]][]) {
      const p = projections[name];
      if (p.inFeatures !== inF || p.outFeatures !== outF) {
        throw new RangeError(`LlamaMLP: ${name} must map ${inF} -> ${outF} features, got ${p.inFeatures} -> ${p.outFeatures}`);
      }
    }
    this.activation = config.hiddenAct;
    this.gate_proj = this.registerModule('gate_proj', projections.gate_proj);
    this.up_proj = this.registerModule('up_proj', projections.up_proj);
    this.down_proj = this.registerModule('down_proj', projections.down_proj);
  }

  /**
   * `x` `[..., hidden]` -> `[..., hidden]`. Backward keeps the gate and up projections only:
   * the activation and the product are rebuilt from them (elementwise, cheap) when a gradient
   * rule needs their values.
   */
  forward(x: Tensor): Tensor {
    const swiglu = this.activation === 'silu';
    const gate = this.gate_proj.forward(x);
    // GeGLU: the activation, then the product; SwiGLU: both in one op (siluMul).
    const act = swiglu ? gate : recomputeForBackward([gate], (g) => activate(g, this.activation));
    const up = this.up_proj.forward(x);
    const product = swiglu ? recomputeForBackward([gate, up], (g, u) => siluMul(g, u)) : recomputeForBackward([act, up], (a, u) => mul(a, u));
    const out = this.down_proj.forward(product);
    // Freed once down_proj has run (the tape, which holds its own views of what backward reads,
    // finds the product's sources alive when it saves the product); not at the scope's end.
    for (const t of new Set([gate, act, up, product])) if (t !== x && t !== out) t.dispose();
    return out;
  }
}
