/**
 * A binary heap ordered by a caller-supplied "comes first" test; used by the BPE trainer to
 * find the most frequent pair without rescanning every pair after each merge.
 *
 * @module
 */

/** A binary heap: `pop` returns the item for which `first(item, other)` holds against all others. */
export class PriorityQueue<T> {
  private readonly items: T[] = [];

  /** `first(a, b)` is true when `a` must come out before `b`. */
  constructor(private readonly first: (a: T, b: T) => boolean) {}

  /** Number of queued items. */
  get size(): number {
    return this.items.length;
  }

  /** Adds an item. */
  push(item: T): void {
    const items = this.items;
    items.push(item);
    let child = items.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.first(items[child]!, items[parent]!)) break;
      [items[child], items[parent]] = [items[parent]!, items[child]!];
      child = parent;
    }
  }

  /** Removes and returns the first item, or undefined when empty. */
  pop(): T | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let parent = 0;
      for (;;) {
        const left = 2 * parent + 1;
        const right = left + 1;
        let best = parent;
        if (left < items.length && this.first(items[left]!, items[best]!)) best = left;
        if (right < items.length && this.first(items[right]!, items[best]!)) best = right;
        if (best === parent) break;
        [items[parent], items[best]] = [items[best]!, items[parent]!];
        parent = best;
      }
    }
    return top;
  }
}
