// A frozen base layer plus an adapter: y = base(x) + Δy.
import type { Tensor } from '@blora/tensor';
import { Module } from '@blora/autograd';
import type { FrozenLinear } from '../layers/frozen-linear.js';
import type { Adapter } from './adapter.js';

/**
 * Replaces a linear layer in a model: `y = base_layer(x) + adapter(x)`. Children are named
 * `base_layer` (frozen) and `adapter` (trainable), so parameter names read
 * `<layer>.adapter.lora_A`, `<layer>.base_layer.weight`, ...
 */
export class AdaptedLinear extends Module {
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
   * base(x) + adapter(x) for `x` `[..., inFeatures]`, through `Adapter.addTo` (the fused
   * adapter products where the device has them). The base output is freed as soon as the sum
   * exists (the tape keeps its own views of what it needs).
   */
  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    if (!this.adapterEnabled) return y;
    const sum = this.adapter.addTo(y, x);
    if (y !== x) y.dispose();
    return sum;
  }
}
