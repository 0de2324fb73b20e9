// The low-rank addend of the quantized products (RepeatedAddend.factor): values [rows, r] times
// factorᵀ ([width, r]) formed on the host, for kernels that add a dense addend.

/**
 * `values · factorᵀ` as a dense `[rows, width]` addend (rows = values.length / rank, width =
 * factor.length / rank): each r-long dot product summed in float64, then rounded once to
 * float32 when `float32` (the addend's dtype).
 */
export function denseLowRankAddend(values: ArrayLike<number>, factor: ArrayLike<number>, rank: number, float32: boolean): Float64Array {
  const rows = rank === 0 ? 0 : values.length / rank;
  const width = rank === 0 ? 0 : factor.length / rank;
  const out = new Float64Array(rows * width);
  for (let m = 0; m < rows; m++) {
    for (let j = 0; j < width; j++) {
      let sum = 0;
      for (let k = 0; k < rank; k++) sum += values[m * rank + k]! * factor[j * rank + k]!;
      out[m * width + j] = float32 ? Math.fround(sum) : sum;
    }
  }
  return out;
}
