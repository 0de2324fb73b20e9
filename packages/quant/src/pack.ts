// Two 4-bit codes per byte, bitsandbytes' order: element 2j in the HIGH nibble, element 2j+1
// in the low nibble. An odd count leaves the last low nibble zero.

/** Number of bytes holding `count` 4-bit codes. */
export function packedLength(count: number): number {
  return Math.ceil(count / 2);
}

/** Packs 4-bit codes (each 0..15) two per byte. */
export function packNibbles(codes: ArrayLike<number>): Uint8Array {
  const n = codes.length;
  const out = new Uint8Array(packedLength(n));
  for (let i = 0; i + 1 < n; i += 2) out[i >> 1] = ((codes[i]! & 15) << 4) | (codes[i + 1]! & 15);
  if (n % 2 === 1) out[n >> 1] = (codes[n - 1]! & 15) << 4;
  return out;
}

/** The 4-bit code of element `index` in packed bytes. */
export function nibbleAt(packed: Uint8Array, index: number): number {
  const byte = packed[index >> 1]!;
  return index & 1 ? byte & 15 : byte >> 4;
}

/** Unpacks `count` 4-bit codes. */
export function unpackNibbles(packed: Uint8Array, count: number): Uint8Array {
  if (packed.length < packedLength(count)) {
    throw new RangeError(`unpackNibbles: ${packed.length} bytes cannot hold ${count} codes (need ${packedLength(count)})`);
  }
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = nibbleAt(packed, i);
  return out;
}
