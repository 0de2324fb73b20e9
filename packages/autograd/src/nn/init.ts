// Parameter initialisers (PyTorch's conventions), drawing from seeded generators.
import { add, cast, mul, rand, randn, type DType, type Generator, type Shape, type Tensor } from '@blora/tensor';
import { noGrad } from '../grad-mode.js';

/** Where an initialiser draws from and what it creates. */
export interface InitOptions {
  /** Element type (default float32). Values are drawn in float32 (float64 for float64) and rounded. */
  dtype?: DType;
  /** Device (default 'cpu'). */
  device?: string;
  /** Random stream (default: @blora/tensor's default generator). */
  generator?: Generator;
}

function drawDType(dtype: DType): DType {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Applies `low + (high - low) * u` (or `mean + std * z`) in the draw dtype, then rounds to `dtype`. */
function affine(draw: Tensor, scale: number, shift: number, dtype: DType): Tensor {
  const multiplied = mul(draw, scale);
  draw.dispose();
  const scaled = add(multiplied, shift);
  multiplied.dispose();
  if (scaled.dtype === dtype) return scaled;
  const out = cast(scaled, dtype);
  scaled.dispose();
  return out;
}

function randomOptions(options: InitOptions, dtype: DType): { dtype: DType; device: string; generator?: Generator } {
  return { dtype: drawDType(dtype), device: options.device ?? 'cpu', ...(options.generator ? { generator: options.generator } : {}) };
}

/** Values uniform in [low, high). */
export function uniform(shape: Shape, low: number, high: number, options: InitOptions = {}): Tensor {
  const dtype = options.dtype ?? 'float32';
  return noGrad(() => affine(rand(shape, randomOptions(options, dtype)), high - low, low, dtype));
}

/** Normally distributed values with the given mean and standard deviation. */
export function normal(shape: Shape, mean = 0, std = 1, options: InitOptions = {}): Tensor {
  const dtype = options.dtype ?? 'float32';
  return noGrad(() => affine(randn(shape, randomOptions(options, dtype)), std, mean, dtype));
}

/**
 * The fan-in of a weight of `shape` as PyTorch computes it: `shape[1]` times the product of
 * the dims after it (the input features of a `[out, in]` linear weight).
 */
export function fanIn(shape: Shape): number {
  if (shape.length < 2) throw new RangeError(`fanIn: needs a weight of rank >= 2, got shape [${shape.join(', ')}]`);
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * Kaiming (He) uniform initialisation for a leaky-ReLU slope `a`: uniform in [-bound, bound]
 * with bound = gain * sqrt(3 / fanIn), gain = sqrt(2 / (1 + a^2)). With a = sqrt(5), the
 * default of PyTorch's Linear and of LoRA's A matrix, the bound is 1 / sqrt(fanIn).
 */
export function kaimingUniform(shape: Shape, options: InitOptions & { a?: number; fanIn?: number } = {}): Tensor {
  const a = options.a ?? Math.sqrt(5);
  const fan = options.fanIn ?? fanIn(shape);
  if (!(fan > 0)) throw new RangeError(`kaimingUniform: fan-in must be positive, got ${fan} for shape [${shape.join(', ')}]`);
  const bound = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fan);
  return uniform(shape, -bound, bound, options);
}
