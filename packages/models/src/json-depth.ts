/**
 * A guard for parsed JSON documents read from files: how deeply arrays and objects nest,
 * measured without recursion, so a hostile document nested thousands of levels deep is
 * refused with a clear message instead of overflowing the stack of a later recursive walk
 * (`JSON.stringify`, `structuredClone`, a pipeline builder).
 *
 * @module
 */

/** Nesting deeper than any real config or tokenizer document (they nest fewer than 10 levels). */
export const MAX_JSON_DEPTH = 64;

/**
 * The nesting depth of `value` (0 for a scalar, 1 for a flat array or object), counted
 * up to `limit + 1` at most, so the walk stops early on a document deeper than `limit`.
 */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    const here = depth + 1;
    if (here > deepest) deepest = here;
    if (deepest > limit) return deepest;
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push([child, here]);
  }
  return deepest;
}
