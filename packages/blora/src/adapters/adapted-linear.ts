// A frozen base layer plus an adapter: y = base(x) + Δy.
import { add, type Tensor } from '@blora/tensor';
import { Module } from '@blora/autograd';
import type { FrozenLinear } from '../layers/frozen-linear.js';
import { QuantizedBase } from '../layers/quantized-base.js';
import type { Adapter } from './adapter.js';
import { fusedQuantizedAdapter, type FusedAdapterParts } from './fused-quantized.js';

/**
 * Replaces a linear layer in a model: `y = base_layer(x) + adapter(x)`. Children are named
 * `base_layer` (frozen) and `adapter` (trainable), so parameter names read
 * `<layer>.adapter.lora_A`, `<layer>.base_layer.weight`, ...
 */
export class AdaptedLinear extends Module {
  /**
   * Whether adapters on a quantized base ride inside its product (`fusedQuantizedAdapter`),
   * for every layer of the process. Default true; the environment variable
   * BLORA_FUSE_QUANTIZED_ADAPTER=0 starts it false (to compare with the unfused composition).
   */
  static fuseQuantizedBase = process.env['BLORA_FUSE_QUANTIZED_ADAPTER'] !== '0';

  /** The frozen layer. */
  readonly base: FrozenLinear;
  /** The trainable update. */
  readonly adapter: Adapter;
  /** When false, the layer computes the base alone (to compare with and without the adapter). */
  adapterEnabled = true;

  constructor(base: FrozenLinear, adapter: Adapter) {
    super();
    adapter.checkBase(base);
    this.base = this.registerModule('base_layer', base);
    this.adapter = this.registerModule('adapter', adapter);
  }

  /** Size of the input's last dim. */
  get inFeatures(): number {
    return this.base.inFeatures;
  }

  /** Size of the output's last dim. */
  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /**
   * base(x) + adapter(x) for `x` `[..., inFeatures]`. On a quantized base the adapter's update
   * rides into the base's product (`fusedQuantizedAdapter`: added in the fused GEMM's epilogue,
   * forward and backward) unless the adapter drops out; elsewhere it goes through
   * `Adapter.addTo` (the fused adapter products where the device has them). The base output is
   * freed as soon as the sum exists (the tape keeps its own views of what it needs).
   */
  forward(x: Tensor): Tensor {
    if (this.adapterEnabled && AdaptedLinear.fuseQuantizedBase && this.base instanceof QuantizedBase) {
      const parts = this.adapter.fusedParts(x.device);
      if (parts) return this.fusedForward(x, this.base, parts);
    }
    const y = this.base.forward(x);
    if (!this.adapterEnabled) return y;
    const sum = this.adapter.addTo(y, x);
    if (y !== x) y.dispose();
    return sum;
  }

  /** A quantized base and its adapter as one product each way (`fusedQuantizedAdapter`), then the bias. */
  private fusedForward(x: Tensor, base: QuantizedBase, parts: FusedAdapterParts): Tensor {
    base.checkInput(x);
    const y = fusedQuantizedAdapter(x, base.quantized, parts);
    if (!base.bias) return y;
    const sum = add(y, base.bias);
    y.dispose();
    return sum;
  }
}
