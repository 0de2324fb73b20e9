// A fully connected layer, y = x W^T + b, initialised as PyTorch's nn.Linear.
import { add, isFloatDType, matmul, transpose, type DType, type Generator, type Tensor } from '@blora/tensor';
import { kaimingUniform, uniform } from './init.js';
import { Module } from './module.js';

/** Options of `Linear`. */
export interface LinearOptions {
  /** Add a learned bias (default true). */
  bias?: boolean;
  /** Parameter dtype (default float32). */
  dtype?: DType;
  /** Device (default 'cpu'). */
  device?: string;
  /** Random stream for the initial values (default: @blora/tensor's default generator). */
  generator?: Generator;
  /**
   * Use this float tensor `[outFeatures, inFeatures]` as the weight instead of drawing one (a
   * loaded checkpoint's, say); the layer takes it as its parameter. `dtype` and `device`, when
   * given too, must match it.
   */
  weight?: Tensor;
}

/**
 * `y = x W^T + b` over the last dim of `x`. The weight is `[outFeatures, inFeatures]`
 * (PyTorch's layout, so checkpoints load unchanged), initialised kaiming-uniform with
 * a = sqrt(5); the bias is uniform in [-1/sqrt(inFeatures), 1/sqrt(inFeatures)].
 */
export class Linear extends Module {
  /** `[outFeatures, inFeatures]`. */
  readonly weight: Tensor;
  /** `[outFeatures]`, or null without bias. */
  readonly bias: Tensor | null;

  constructor(
    /** Size of the input's last dim. */
    readonly inFeatures: number,
    /** Size of the output's last dim. */
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`Linear: ${what} must be a positive integer, got ${n}`);
    }
    const given = options.weight;
    if (given) {
      given.assertAlive('Linear');
      if (given.rank !== 2 || given.shape[0] !== outFeatures || given.shape[1] !== inFeatures || !isFloatDType(given.dtype)) {
        throw new RangeError(`Linear: weight must be a float tensor [${outFeatures}, ${inFeatures}], got ${given.describe()}`);
      }
      if ((options.dtype && options.dtype !== given.dtype) || (options.device && options.device !== given.device)) {
        throw new TypeError(`Linear: the given weight ${given.describe()} does not match dtype ${options.dtype ?? given.dtype} on ${options.device ?? given.device}`);
      }
    }
    const init = {
      dtype: options.dtype ?? given?.dtype ?? 'float32',
      device: options.device ?? given?.device ?? 'cpu',
      ...(options.generator ? { generator: options.generator } : {}),
    };
    this.weight = this.registerParameter('weight', given ?? kaimingUniform([outFeatures, inFeatures], { ...init, a: Math.sqrt(5) }));
    const bound = 1 / Math.sqrt(inFeatures);
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniform([outFeatures], -bound, bound, init));
  }

  /** Applies the layer to `x` of shape `[..., inFeatures]`, giving `[..., outFeatures]`. */
  forward(x: Tensor): Tensor {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new RangeError(`Linear: expected input [..., ${this.inFeatures}], got ${x.describe()}`);
    }
    const y = matmul(x, transpose(this.weight));
    return this.bias ? add(y, this.bias) : y;
  }
}
