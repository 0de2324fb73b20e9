// The update every adapter of this package computes: pool the input over runs of λin features,
// drop out, map through a small matrix C (a factor pair B·A or one matrix M), scale, and repeat
// every output feature λout times. LoRA is the case λin = λout = 1 with C = B·A.
//
//   Δy = s · repeatInterleave(C · dropout(avgPool_λin(x)), λout)
//   ΔW[i, k] = (s / λin) · C[⌊i / λout⌋, ⌊k / λin⌋]          (constant on λout x λin tiles)
//
// `addTo` adds Δy to the base layer's output with the fused products poolLinear and
// repeatLinear where the device has them, which spares the output-sized float32 temporaries
// of the plain composition.
import {
  add, avgPool1d, cast, clone, findKernel, formatShape, matmul, mul, poolLinear, repeatInterleave, repeatLinear, tidy, transpose,
  zeros, type DType, type Generator, type Tensor,
} from '@blora/tensor';
import { Dropout, kaimingUniform, Module, noGrad, recomputeForBackward } from '@blora/autograd';
import type { FrozenLinear } from '../layers/frozen-linear.js';
import type { FusedAdapterParts } from './fused-quantized.js';

/** The adapter methods. */
export type AdapterMethod = 'lora' | 'qblora' | 'qablora';

/** Every method name, for validation messages. */
export const ADAPTER_METHODS: readonly AdapterMethod[] = ['lora', 'qblora', 'qablora'];

/** How the small matrix C is parameterised: a factor pair B·A, or one matrix M. */
export type AdapterForm = 'factors' | 'matrix';

/** Display names of the methods. */
export const METHOD_LABELS: Readonly<Record<AdapterMethod, string>> = { lora: 'LoRA', qblora: 'Q-BLoRA', qablora: 'QA-BLoRA' };

/** Hyperparameters and initialisation shared by every adapter. */
export interface AdapterOptions {
  /** Nominal rank r: sets the scaling s = α / r (α / √r with rsLoRA) and the factor rank r · λin. */
  r: number;
  /** α (PEFT's `lora_alpha`). */
  alpha: number;
  /** Dropout probability on the (pooled) adapter input (default 0). */
  dropout?: number;
  /** Scale by α / √r instead of α / r (rank-stabilised LoRA). */
  useRslora?: boolean;
  /** Parameter dtype (default float32). Inputs of another dtype are cast to it and back. */
  dtype?: DType;
  /** Device of the parameters (default 'cpu'). */
  device?: string;
  /** Random stream of the initial values of A (default: @blora/tensor's default generator). */
  generator?: Generator;
  /** Random stream of the dropout masks (default: @blora/tensor's default generator). */
  dropoutGenerator?: Generator;
  /** The adapted layer's module path, for error messages. */
  layerName?: string;
}

/** The shape of an adapter: layer sizes, pooling and repeat factors, and the form of C. */
export interface AdapterGeometry {
  /** Input features of the adapted layer. */
  inFeatures: number;
  /** Output features of the adapted layer. */
  outFeatures: number;
  /** Input factor: avgPool kernel over consecutive input features (λ1 in QA-BLoRA). */
  lambdaIn: number;
  /** Output factor: each output of C is repeated this many times (λ2 in QA-BLoRA). */
  lambdaOut: number;
  /** How C is parameterised. */
  form: AdapterForm;
}

function positiveInteger(value: unknown, what: string, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${where}: ${what} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * A trainable low-rank update added to a frozen linear layer (see `AdaptedLinear`).
 * Parameters: `lora_A` `[rank, in/λin]` (kaiming-uniform, a = √5) and `lora_B`
 * `[out/λout, rank]` (zeros) for the factor form, with rank = r · λin; or `lora_M`
 * `[out/λout, in/λin]` (zeros) for the matrix form. Either way the update starts at 0.
 */
export abstract class Adapter extends Module {
  /** Input features of the adapted layer. */
  readonly inFeatures: number;
  /** Output features of the adapted layer. */
  readonly outFeatures: number;
  /** Pooling factor of the input (1 for LoRA). */
  readonly lambdaIn: number;
  /** Repeat factor of the output (1 for LoRA). */
  readonly lambdaOut: number;
  /** Factor pair B·A or single matrix M. */
  readonly form: AdapterForm;
  /** Nominal rank (sets the scaling). */
  readonly r: number;
  /** Rank of B·A (r · λin), or 0 for the matrix form. */
  readonly rank: number;
  /** α of the scaling. */
  readonly alpha: number;
  /** Whether the scaling is α / √r. */
  readonly useRslora: boolean;
  /** s = α / r, or α / √r with rsLoRA. */
  readonly scaling: number;
  /** Parameter dtype. */
  readonly dtype: DType;
  /** The adapted layer's module path ('' when unnamed). */
  readonly layerName: string;
  /** Dropout on the pooled input (a module, so train() / eval() switch it). */
  readonly dropout: Dropout;
  /** A `[rank, in/λin]`, or null for the matrix form. */
  readonly loraA: Tensor | null;
  /** B `[out/λout, rank]`, or null for the matrix form. */
  readonly loraB: Tensor | null;
  /** M `[out/λout, in/λin]`, or null for the factor form. */
  readonly loraM: Tensor | null;

  protected constructor(
    /** Which method this adapter implements. */
    readonly method: AdapterMethod,
    geometry: AdapterGeometry,
    options: AdapterOptions,
  ) {
    super();
    this.layerName = options.layerName ?? '';
    const where = `${METHOD_LABELS[method]}${this.layerName ? ` on layer '${this.layerName}'` : ''}`;
    this.inFeatures = positiveInteger(geometry.inFeatures, 'in_features', where);
    this.outFeatures = positiveInteger(geometry.outFeatures, 'out_features', where);
    this.lambdaIn = positiveInteger(geometry.lambdaIn, 'λin', where);
    this.lambdaOut = positiveInteger(geometry.lambdaOut, 'λout', where);
    if (this.inFeatures % this.lambdaIn !== 0) {
      throw new RangeError(`${where}: λin = ${this.lambdaIn} does not divide in_features = ${this.inFeatures} ` +
        `(the input is pooled over runs of λin consecutive features)`);
    }
    if (this.outFeatures % this.lambdaOut !== 0) {
      throw new RangeError(`${where}: λout = ${this.lambdaOut} does not divide out_features = ${this.outFeatures} ` +
        `(each output of the adapter is repeated λout times)`);
    }
    if (geometry.form !== 'factors' && geometry.form !== 'matrix') {
      throw new TypeError(`${where}: form must be 'factors' or 'matrix', got '${String(geometry.form)}'`);
    }
    this.form = geometry.form;
    this.r = positiveInteger(options.r, 'r', where);
    if (typeof options.alpha !== 'number' || !Number.isFinite(options.alpha)) {
      throw new RangeError(`${where}: alpha must be a finite number, got ${String(options.alpha)}`);
    }
    this.alpha = options.alpha;
    this.useRslora = options.useRslora ?? false;
    this.scaling = this.useRslora ? this.alpha / Math.sqrt(this.r) : this.alpha / this.r;
    this.dtype = options.dtype ?? 'float32';
    const p = options.dropout ?? 0;
    if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`${where}: dropout must be in [0, 1), got ${String(p)}`);
    this.dropout = this.registerModule('lora_dropout', new Dropout(p, options.dropoutGenerator));

    const pooledIn = this.inFeatures / this.lambdaIn;
    const pooledOut = this.outFeatures / this.lambdaOut;
    const init = { dtype: this.dtype, device: options.device ?? 'cpu', ...(options.generator ? { generator: options.generator } : {}) };
    if (this.form === 'factors') {
      this.rank = this.r * this.lambdaIn;
      // PEFT's init: kaiming-uniform with a = √5 over A's fan-in, B zero, so ΔW starts at 0.
      this.loraA = this.registerParameter('lora_A', kaimingUniform([this.rank, pooledIn], { ...init, a: Math.sqrt(5) }));
      this.loraB = this.registerParameter('lora_B', zeros([pooledOut, this.rank], init));
      this.loraM = null;
    } else {
      this.rank = 0;
      this.loraA = null;
      this.loraB = null;
      this.loraM = this.registerParameter('lora_M', zeros([pooledOut, pooledIn], init));
    }
  }

  /** Display name of the method ('LoRA', 'Q-BLoRA', 'QA-BLoRA'). */
  get label(): string {
    return METHOD_LABELS[this.method];
  }

  /**
   * Throws a clear error when this adapter cannot sit on `base` (the default accepts every
   * base; QA-BLoRA checks the quantization blocks against its tiles).
   */
  checkBase(base: FrozenLinear): void {
    if (base.inFeatures !== this.inFeatures || base.outFeatures !== this.outFeatures) {
      throw new RangeError(`${this.where()}: the adapter is for [${this.outFeatures}, ${this.inFeatures}] but the base layer is ` +
        `[${base.outFeatures}, ${base.inFeatures}]`);
    }
  }

  /** The update Δy `[..., out]` for `x` `[..., in]` (without the base layer's output). */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    // Each temporary is freed as soon as the next one exists (the tape holds its own views of
    // what backward reads, so freeing never takes anything from it); x belongs to the caller.
    const then = (prev: Tensor, next: Tensor): Tensor => {
      if (prev !== next && prev !== x) prev.dispose();
      return next;
    };
    const z = this.adapterInput(x);
    let small: Tensor;
    if (this.form === 'factors') {
      const down = then(z, matmul(z, transpose(this.loraA!)));
      small = then(down, matmul(down, transpose(this.loraB!)));
    } else {
      small = then(z, matmul(z, transpose(this.loraM!)));
    }
    // Scaling before the repeat touches λout times fewer elements and gives the same values.
    const scaled = then(small, mul(small, this.scaling));
    const out = this.lambdaOut > 1 ? then(scaled, repeatInterleave(scaled, this.lambdaOut, -1)) : scaled;
    return out.dtype === x.dtype ? out : then(out, cast(out, x.dtype));
  }

  /**
   * `y + Δy`: the base layer's output `y` `[..., out]` plus this adapter's update for its input
   * `x` `[..., in]`, as a new tensor of y's dtype (y and x stay the caller's). When the device
   * has kernels for the fused products `poolLinear` and `repeatLinear` and the parameters are
   * float32 or float64, the pooling and cast of x go with the product with A, and the scaling,
   * repeat, cast and sum with y with the product with B (each device runs them in as few passes
   * as its kernels allow). An active dropout (training, p > 0) sits between the pool and A, and
   * the matrix form has no A: then x is pooled first and only the product with B (or M) is
   * fused. Elsewhere it computes `add(y, forward(x))`.
   */
  addTo(y: Tensor, x: Tensor): Tensor {
    this.checkInput(x);
    if (!this.hasFusedKernels(x.device)) {
      const delta = tidy(() => this.forward(x));
      const sum = add(y, delta);
      delta.dispose();
      return sum;
    }
    return tidy(() => {
      const options = { lambda: this.lambdaOut, scale: this.scaling, base: y };
      if (this.form === 'factors' && !this.dropping()) {
        // poolLinear reads x itself in backward: no cast or pool of x is kept or rebuilt.
        return repeatLinear(poolLinear(x, this.loraA!, this.lambdaIn), this.loraB!, options);
      }
      const z = this.adapterInput(x);
      if (this.form === 'matrix') return repeatLinear(z, this.loraM!, options);
      const down = matmul(z, transpose(this.loraA!));
      if (z !== x) z.dispose();
      return repeatLinear(down, this.loraB!, options);
    });
  }

  /**
   * What `fusedQuantizedAdapter` needs to add this adapter inside a quantized base's product
   * for inputs on `device`, or null where that path does not apply: parameters other than
   * float32 / float64, a device without the fused products, or an active dropout (its mask
   * sits between the pool and the first product).
   */
  fusedParts(device: string): FusedAdapterParts | null {
    if (!this.hasFusedKernels(device) || this.dropping()) return null;
    const params = this.form === 'factors' ? [this.loraA!, this.loraB!] as const : [this.loraM!] as const;
    return { params, lambdaIn: this.lambdaIn, lambdaOut: this.lambdaOut, scale: this.scaling };
  }

  /** Whether `device` has the kernels of the fused path and the parameters have a dtype they take. */
  private hasFusedKernels(device: string): boolean {
    return (this.dtype === 'float32' || this.dtype === 'float64') &&
      findKernel('poolLinear', device) !== undefined && findKernel('repeatLinear', device) !== undefined;
  }

  /** Whether a dropout mask applies (training with p > 0). */
  private dropping(): boolean {
    return this.dropout.training && this.dropout.p > 0;
  }

  /** Throws unless `x` is `[..., in]`. */
  private checkInput(x: Tensor): void {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new RangeError(`${this.where()}: expected input [..., ${this.inFeatures}], got ${formatShape(x.shape)}`);
    }
  }

  /** dropout(avgPool_λin(cast(x))) `[..., in/λin]` in the parameters' dtype (x itself when nothing changes it). */
  private adapterInput(x: Tensor): Tensor {
    // The pool casts as it reads (one pass over x).
    const prepare = (t: Tensor): Tensor => {
      if (this.lambdaIn > 1) return avgPool1d(t, this.lambdaIn, { dtype: this.dtype });
      return t.dtype === this.dtype ? t : cast(t, this.dtype);
    };
    // The product after this keeps its input for backward. When that input is a cast (and pool)
    // of x and no dropout mask comes in between, backward redoes the cast from x instead: x is
    // narrower and shared by the projections that read it, where each float copy is not.
    const dropping = this.dropping();
    const pooled = x.dtype !== this.dtype && !dropping ? recomputeForBackward([x], prepare) : prepare(x);
    const z = this.dropout.forward(pooled);
    if (z !== pooled && pooled !== x) pooled.dispose();
    return z;
  }

  /** C `[out/λout, in/λin]`: B·A for the factor form, a copy of M for the matrix form. */
  coreMatrix(): Tensor {
    return noGrad(() => (this.form === 'factors' ? matmul(this.loraB!, this.loraA!) : clone(this.loraM!)));
  }

  /** The value of ΔW on each λout x λin tile: (s / λin) · C, `[out/λout, in/λin]`. */
  tileDelta(): Tensor {
    return noGrad(() => {
      const core = this.coreMatrix();
      const tiles = mul(core, this.scaling / this.lambdaIn);
      core.dispose();
      return tiles;
    });
  }

  /** The equivalent dense update ΔW `[out, in]` = (s / λin) · kron(C, ones(λout, λin)). */
  deltaWeight(): Tensor {
    return noGrad(() => {
      const tiles = this.tileDelta();
      const rows = this.lambdaOut > 1 ? repeatInterleave(tiles, this.lambdaOut, 0) : tiles;
      const full = this.lambdaIn > 1 ? repeatInterleave(rows, this.lambdaIn, 1) : rows;
      if (rows !== tiles) rows.dispose();
      if (full !== tiles) tiles.dispose();
      return full;
    });
  }

  /** The adapter's tensors under their file-name suffixes (`lora_A.weight`, `lora_B.weight` or `lora_M.weight`). */
  fileTensors(): Record<string, Tensor> {
    return this.form === 'factors'
      ? { 'lora_A.weight': this.loraA!, 'lora_B.weight': this.loraB! }
      : { 'lora_M.weight': this.loraM! };
  }

  /** Makes the adapter's parameters trainable (true) or frozen (false). Returns `this`. */
  setTrainable(flag: boolean): this {
    return this.setRequiresGrad(flag);
  }

  /** E.g. `Q-BLoRA λin 2, λout 2, rank 16 (r 8, α 16, s 2)`. */
  describe(): string {
    const lambdas = this.method === 'lora' ? '' : ` λin ${this.lambdaIn}, λout ${this.lambdaOut},`;
    const shape = this.form === 'factors' ? ` rank ${this.rank}` : ` matrix ${formatShape(this.loraM!.shape)}`;
    return `${this.label}${lambdas}${shape} (r ${this.r}, α ${this.alpha}, s ${+this.scaling.toPrecision(6)}${this.useRslora ? ', rsLoRA' : ''})`;
  }

  /** The prefix of this adapter's error messages. */
  protected where(): string {
    return `${this.label}${this.layerName ? ` on layer '${this.layerName}'` : ''}`;
  }
}
