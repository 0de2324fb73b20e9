// Input checks shared by the quantizers, with messages that say what was wrong and where.
import { formatShape, type Shape } from '@blora/tensor';

/** Where a flat index falls in a weight of `shape`: `row r, col c` for matrices. */
export function describeIndex(index: number, shape: Shape): string {
  if (shape.length === 2) {
    const cols = shape[1]!;
    return `flat index ${index} (row ${Math.floor(index / cols)}, col ${index % cols})`;
  }
  const coords: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(rest % shape[d]!);
    rest = Math.floor(rest / shape[d]!);
  }
  return `flat index ${index} (position [${coords.join(', ')}])`;
}

/** Throws naming the first NaN or infinite value and its position. */
export function assertFinite(values: ArrayLike<number>, shape: Shape, where: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) {
      throw new RangeError(`${where}: the weight ${formatShape(shape)} holds ${v} at ${describeIndex(i, shape)}; ` +
        'quantization needs finite values');
    }
  }
}

/** Throws unless `blocksize` is a power of two in [32, 4096]. */
export function assertFourBitBlocksize(blocksize: number, where: string): void {
  if (!Number.isInteger(blocksize) || blocksize < 32 || blocksize > 4096 || (blocksize & (blocksize - 1)) !== 0) {
    throw new RangeError(`${where}: blocksize must be a power of two from 32 to 4096, got ${blocksize}`);
  }
}

/** Throws unless `value` is a positive integer. */
export function assertPositiveInteger(value: number, name: string, where: string): void {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${where}: ${name} must be a positive integer, got ${value}`);
}

/** Throws unless `shape` is a 2-D weight shape [out, in] with both sizes positive. */
export function assertWeightShape(shape: Shape, where: string): void {
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(`${where}: expected a weight of shape [out, in] with positive sizes, got ${formatShape(shape)}`);
  }
}
