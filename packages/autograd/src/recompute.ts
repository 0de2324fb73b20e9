// Tensors the tape rebuilds in backward instead of keeping. A cheap, deterministic function of
// tensors that backward keeps anyway (an upcast and pool of an activation, an activation of a
// kept pre-activation, a layout copy of a kept output) does not need its own memory: a node that
// saves it keeps the function's inputs, and calls the function again right before its rule runs.
// The function is the same ops on the same values, so the rule sees the same numbers.
import { Tensor, tidy, type DType, type Storage } from '@blora/tensor';
import { isGradEnabled } from './grad-mode.js';

/** How to rebuild the storage of a tensor made by `recomputeForBackward`. */
interface Recipe {
  readonly sources: readonly Tensor[];
  readonly fn: (...sources: Tensor[]) => Tensor;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** Keyed by the result's storage, so every view of the result finds its recipe. */
const recipes = new WeakMap<Storage, Recipe>();

/**
 * Runs `fn(...sources)` (recorded on the tape as usual) and returns its result. When grad is
 * recorded, ops that save the result for backward keep `sources` instead, and rebuild the result
 * with `fn` when their rule runs; the memory of the result is then freed as soon as the forward
 * code drops it. `fn` must be deterministic and cheap, must return a new dense tensor (not a
 * view of a source), and its sources should be tensors backward keeps anyway. Sources may
 * themselves come from `recomputeForBackward`: rebuilding then goes down the chain. The
 * sources must not be disposed before the ops that read the result have run (an op that
 * saves the result when a source is gone keeps the result itself, as without this function).
 */
export function recomputeForBackward(sources: readonly Tensor[], fn: (...sources: Tensor[]) => Tensor): Tensor {
  const result = fn(...sources);
  const dense = result.isContiguous && result.offset === 0 && result.storage.numel === result.numel;
  if (isGradEnabled() && dense && !sources.some((s) => s.storage === result.storage)) {
    recipes.set(result.storage, { sources: [...sources], fn, shape: [...result.shape], dtype: result.dtype });
  }
  return result;
}

/** What a tape node holds for one saved tensor: its own view, or what rebuilds it. */
export type Held =
  | { readonly kind: 'view'; readonly tensor: Tensor }
  | { readonly kind: 'recipe'; readonly recipe: Recipe; readonly sources: readonly Held[]; readonly layout: Layout };

/** Where a saved view sits in its storage (plain numbers: holding a tensor would keep the storage alive). */
interface Layout {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * What to hold so that `t`'s values can be read in backward: `t`'s recipe with its sources
 * (held the same way, recursively) when it has one whose sources are alive, else a view of `t`.
 * `own` makes the tape's own view of a tensor.
 */
export function holdFor(t: Tensor, own: (t: Tensor) => Tensor): Held {
  const recipe = recipes.get(t.storage);
  if (recipe && recipe.sources.every((s) => !s.isDisposed)) {
    return { kind: 'recipe', recipe, sources: recipe.sources.map((s) => holdFor(s, own)), layout: { shape: [...t.shape], strides: [...t.strides], offset: t.offset } };
  }
  return { kind: 'view', tensor: own(t) };
}

/** The views a held value keeps alive (its sources' views for a recipe). */
export function heldViews(h: Held): Tensor[] {
  return h.kind === 'view' ? [h.tensor] : h.sources.flatMap(heldViews);
}

/**
 * The values of a held tensor, as a tensor with the saved shape, strides and offset. For a
 * recipe the result and the rebuilt intermediates are new tensors, listed in `made` for the
 * caller to dispose once the rule has run.
 */
export function materialize(h: Held, made: Tensor[]): Tensor {
  if (h.kind === 'view') return h.tensor;
  const inputs = h.sources.map((s) => materialize(s, made));
  // The scope frees what `fn` makes on the way (it runs inside the backward's own scope).
  const full = tidy(() => h.recipe.fn(...inputs));
  made.push(full);
  if (full.dtype !== h.recipe.dtype || full.shape.length !== h.recipe.shape.length || full.shape.some((d, i) => d !== h.recipe.shape[i])) {
    throw new Error(`backward: recomputing a saved tensor gave ${full.describe()}, expected ${h.recipe.dtype} [${h.recipe.shape.join(', ')}]`);
  }
  const dense = full.isContiguous && full.offset === 0 ? full : null;
  if (!dense) throw new Error(`backward: recomputing a saved tensor gave a non-dense ${full.describe()}`);
  const view = Tensor.view(full, h.layout.shape, h.layout.strides, h.layout.offset);
  made.push(view);
  return view;
}
