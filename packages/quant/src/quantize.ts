// One entry point for every format.
import type { Tensor } from '@blora/tensor';
import { FourBitLinear, type FourBitOptions } from './four-bit-linear.js';
import { IntBlockLinear, type IntOptions } from './int-linear.js';
import { QUANT_FORMATS, type QuantFormat, type QuantizedLinear } from './quantized-linear.js';

/** Options of `quantizeLinear`: the format plus that format's options. */
export type QuantizeOptions =
  | ({ format: 'nf4' | 'fp4' } & Omit<FourBitOptions, 'format'>)
  | ({ format: 'int4' | 'int8' } & Omit<IntOptions, 'format'>);

/**
 * Quantizes a float weight [out, in] to `options.format`:
 * - 'nf4' / 'fp4': bitsandbytes block-wise absmax (blocksize 64, double quantization by default);
 * - 'int4' / 'int8': α·q + β per block (groups of 32 input columns, float16 α/β by default).
 */
export function quantizeLinear(weight: Tensor, options: QuantizeOptions): QuantizedLinear {
  const format = (options as { format?: unknown }).format as QuantFormat;
  if (format === 'nf4' || format === 'fp4') return FourBitLinear.quantize(weight, options as FourBitOptions);
  if (format === 'int4' || format === 'int8') return IntBlockLinear.quantize(weight, options as IntOptions);
  throw new TypeError(`quantizeLinear: unknown format '${String(format)}'; expected one of ${QUANT_FORMATS.join(', ')}`);
}
