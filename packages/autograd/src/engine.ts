// The tape and reverse pass. Every op announced by @blora/tensor reaches `observe`; when
// recording is on and an input requires grad, a GraphNode is attached to the outputs. The
// node keeps its own views of the tensors its rule reads (so disposing the user's tensors
// does not break backward) and drops them as soon as the rule has run.
import {
  Tensor, add, clone, contiguous, formatShape, isFloatDType, keep, onesLike, setAutogradEngine, setOpObserver, tidy,
  type Attrs, type OpObserver, type OpRecord,
} from '@blora/tensor';
import { getGradient, getSaveSpec, type GradContext, type GradRule, type SaveSpec } from './gradients.js';
import { isGradEnabled, noGrad } from './grad-mode.js';
import { heldViews, holdFor, materialize, type Held } from './recompute.js';

/** One tensor a node keeps for its rule (see `GraphNode.savedTensors`). */
export interface SavedTensor {
  /** The tape's view. */
  readonly tensor: Tensor;
  /** Whether it is an input or an output of the op, and which. */
  readonly role: 'input' | 'output';
  readonly index: number;
  /** True when the op's tensor is rebuilt in backward and this is one of the tensors it is rebuilt from. */
  readonly rebuilt: boolean;
}

/** Where the gradient of one node input goes: an output of an earlier node, or a leaf tensor. */
export interface Edge {
  readonly node: GraphNode | null;
  readonly outputIndex: number;
  readonly leaf: Tensor | null;
}

let nextSeq = 0;

/**
 * One recorded op on the tape (stored in `tensor.gradFn`). Nodes are numbered in creation
 * order, which is a topological order: an op's inputs exist before the op runs.
 */
export class GraphNode {
  /** Creation order. */
  readonly seq = nextSeq++;
  /** Ids of the tensors this op produced, to find which output a tensor is. */
  readonly outputIds: readonly number[];
  /** What the rule sees: the tape's own views of saved tensors, the original objects otherwise. */
  private inputs: readonly Tensor[];
  private outputs: readonly Tensor[];
  private edges: readonly (Edge | null)[];
  private saved: Tensor[];
  /** Saved tensors rebuilt from their recipes when the rule runs, by input / output index. */
  private readonly rebuiltInputs = new Map<number, Held>();
  private readonly rebuiltOutputs = new Map<number, Held>();
  private freed = false;

  constructor(
    /** Name of the recorded op. */
    readonly op: string,
    inputs: readonly Tensor[],
    outputs: readonly Tensor[],
    /** The op's recorded attributes. */
    readonly attrs: Attrs,
    private readonly rule: GradRule,
    save: SaveSpec | undefined,
  ) {
    this.outputIds = outputs.map((t) => t.id);
    this.edges = inputs.map((t) => (t.requiresGrad && isFloatDType(t.dtype) ? edgeTo(t) : null));
    this.saved = [];
    const needsGrad = this.edges.map((e) => e !== null);
    const own = (t: Tensor) => {
      const handle = keep(Tensor.view(t, t.shape, t.strides, t.offset));
      this.saved.push(handle);
      return handle;
    };
    const hold = (list: readonly Tensor[], spec: SaveSpec['inputs'], rebuilt: Map<number, Held>) => {
      const which = typeof spec === 'function' ? spec(needsGrad) : spec;
      return list.map((t, i) => {
        if (which && !which.includes(i)) return t;
        const held = holdFor(t, own);
        if (held.kind === 'view') return held.tensor;
        // Rebuilt before the rule runs; until then only its shape, dtype and device are read.
        rebuilt.set(i, held);
        return t;
      });
    };
    this.inputs = hold(inputs, save?.inputs, this.rebuiltInputs);
    this.outputs = hold(outputs, save?.outputs, this.rebuiltOutputs);
  }

  /** True once backward has run through this node and released what it saved. */
  get isFreed(): boolean {
    return this.freed;
  }

  /** Number of tensors this node keeps alive for its rule (sources of rebuilt tensors included). */
  get savedCount(): number {
    return this.saved.length;
  }

  /**
   * The tape's views of the tensors this node keeps alive for its rule (empty once freed),
   * with which input or output each one is; for a tensor rebuilt in backward (see
   * `recomputeForBackward`), the sources it is rebuilt from. For measuring what a graph holds.
   */
  savedTensors(): SavedTensor[] {
    const out: SavedTensor[] = [];
    const saved = new Set(this.saved);
    const list = (tensors: readonly Tensor[], rebuilt: ReadonlyMap<number, Held>, role: 'input' | 'output') => {
      tensors.forEach((t, index) => {
        const held = rebuilt.get(index);
        if (held) for (const v of heldViews(held)) out.push({ tensor: v, role, index, rebuilt: true });
        else if (saved.has(t)) out.push({ tensor: t, role, index, rebuilt: false });
      });
    };
    list(this.inputs, this.rebuiltInputs, 'input');
    list(this.outputs, this.rebuiltOutputs, 'output');
    return out;
  }

  /** @internal The nodes whose outputs feed this one. */
  parents(): GraphNode[] {
    const out: GraphNode[] = [];
    for (const e of this.edges) if (e?.node) out.push(e.node);
    return out;
  }

  /** @internal Runs the rule; returns the gradient for each input that needs one, paired with its edge. */
  run(outputGrads: readonly (Tensor | null)[]): { edge: Edge; grad: Tensor }[] {
    // Tensors saved as recipes are rebuilt now and freed once the rule has run.
    const made: Tensor[] = [];
    try {
      const rebuild = (list: readonly Tensor[], rebuilt: ReadonlyMap<number, Held>) =>
        rebuilt.size === 0 ? list : list.map((t, i) => {
          const held = rebuilt.get(i);
          return held ? noGrad(() => materialize(held, made)) : t;
        });
      return this.runRule(rebuild(this.inputs, this.rebuiltInputs), rebuild(this.outputs, this.rebuiltOutputs), outputGrads);
    } finally {
      for (const t of made) t.dispose();
    }
  }

  private runRule(inputs: readonly Tensor[], outputs: readonly Tensor[], outputGrads: readonly (Tensor | null)[]): { edge: Edge; grad: Tensor }[] {
    const ctx: GradContext = {
      inputs,
      outputs,
      attrs: this.attrs,
      outputGrads,
      needsGrad: this.edges.map((e) => e !== null),
    };
    // tidy frees every temporary the rule creates; what it returns survives.
    const grads = tidy(() => this.rule(ctx));
    if (!Array.isArray(grads) || grads.length !== inputs.length) {
      throw new Error(`backward: the rule of '${this.op}' returned ${Array.isArray(grads) ? grads.length : typeof grads} ` +
        `gradients for ${inputs.length} inputs`);
    }
    // The engine owns every gradient it routes. A rule may return an output gradient itself,
    // the same tensor twice, or a saved tensor: those get their own view so that each routed
    // gradient can be disposed independently.
    const foreign = new Set<Tensor>([...inputs, ...outputs]);
    const routed = new Set<Tensor>();
    const result: { edge: Edge; grad: Tensor }[] = [];
    grads.forEach((g, i) => {
      const edge = this.edges[i];
      if (!g || !edge) return;
      this.check(i, g);
      const own = routed.has(g) || foreign.has(g) ? aliasOf(g) : g;
      routed.add(g);
      result.push({ edge, grad: own });
    });
    for (const g of grads) if (g && !routed.has(g) && !foreign.has(g) && !outputGrads.includes(g)) g.dispose();
    for (const g of outputGrads) if (g && !routed.has(g)) g.dispose();
    return result;
  }

  private check(i: number, g: Tensor): void {
    const x = this.inputs[i]!;
    if (!(g as { isTensor?: boolean }).isTensor) throw new TypeError(`backward: the rule of '${this.op}' returned a non-tensor for input ${i}`);
    if (g.shape.length !== x.shape.length || g.shape.some((d, k) => d !== x.shape[k])) {
      throw new Error(`backward: the rule of '${this.op}' returned a gradient of shape ${formatShape(g.shape)} ` +
        `for input ${i} of shape ${formatShape(x.shape)}`);
    }
    if (g.dtype !== x.dtype || g.device !== x.device) {
      throw new Error(`backward: the rule of '${this.op}' returned a ${g.describe()} gradient for input ${i}, a ${x.describe()}`);
    }
  }

  /** @internal Drops everything the node holds; a later backward through it fails clearly. */
  free(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.rebuiltInputs.clear();
    this.rebuiltOutputs.clear();
    this.inputs = [];
    this.outputs = [];
    this.edges = [];
    this.freed = true;
  }
}

function edgeTo(t: Tensor): Edge {
  const fn = t.gradFn;
  if (fn instanceof GraphNode) return { node: fn, outputIndex: fn.outputIds.indexOf(t.id), leaf: null };
  return { node: null, outputIndex: 0, leaf: t };
}

function aliasOf(t: Tensor): Tensor {
  return Tensor.view(t, t.shape, t.strides, t.offset);
}

/**
 * Attaches a node computed by `rule` to `outputs` when recording is on and some float
 * input requires grad; returns the node, or null when nothing was recorded. This is how
 * ops announced by @blora/tensor are taped, and how composite functions with a hand-written
 * backward (such as `checkpoint`) join the graph.
 */
export function recordNode(
  op: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  rule: GradRule,
  options: {
    attrs?: Attrs;
    save?: SaveSpec;
    /** Record even when no input requires grad (the rule reaches other leaves itself, as `checkpoint` does). */
    always?: boolean;
  } = {},
): GraphNode | null {
  if (!isGradEnabled()) return null;
  if (!options.always && !inputs.some((t) => t.requiresGrad && isFloatDType(t.dtype))) return null;
  // Integer results (casts to int, comparisons) carry no gradient.
  if (!outputs.some((o) => isFloatDType(o.dtype))) return null;
  const node = new GraphNode(op, inputs, outputs, options.attrs ?? {}, rule, options.save);
  for (const o of outputs) {
    if (!isFloatDType(o.dtype) || inputs.includes(o)) continue;
    o.requiresGrad = true;
    o.gradFn = node;
  }
  return node;
}

/** Tracks, while recording is off, whether some op read a tensor that requires grad. */
let probe: { touched: boolean } | null = null;

/** @internal Runs `fn` without recording and reports whether it used any tensor that requires grad. */
export function runUnrecorded<T>(fn: () => T): { result: T; touchedGrad: boolean } {
  const prev = probe;
  const mine = { touched: false };
  probe = mine;
  try {
    const result = noGrad(fn);
    return { result, touchedGrad: mine.touched };
  } finally {
    probe = prev;
    if (prev && mine.touched) prev.touched = true;
  }
}

function observe(rec: OpRecord): void {
  const rule = getGradient(rec.op);
  if (!rule) return;
  if (!isGradEnabled()) {
    if (probe && !probe.touched && rec.inputs.some((t) => t.requiresGrad)) probe.touched = true;
    return;
  }
  recordNode(rec.op, rec.inputs, rec.outputs, rule, { attrs: rec.attrs, save: getSaveSpec(rec.op) });
}

/** Options of `backward`. */
export interface BackwardOptions {
  /** Keep the graph (and what it saved) so backward can run through it again. Default false. */
  retainGraph?: boolean;
}

/**
 * Reverse-mode differentiation: accumulates d(root)/d(leaf) into `leaf.grad` for every leaf
 * tensor that requires grad. `grad` is the gradient of some scalar loss with respect to
 * `root`; it may be omitted when `root` has one element (it is then 1). The graph is freed
 * afterwards unless `retainGraph` is set.
 */
export function backward(root: Tensor, grad?: Tensor | null, options: BackwardOptions = {}): void {
  backwardMany([root], [grad ?? null], options);
}

/** `backward` from several roots at once, each with its own output gradient (null = ones for one-element roots). */
export function backwardMany(roots: readonly Tensor[], grads: readonly (Tensor | null)[], options: BackwardOptions = {}): void {
  if (grads.length !== roots.length) throw new Error(`backward: got ${grads.length} gradients for ${roots.length} roots`);
  noGrad(() => tidy(() => runBackward(roots, grads, options.retainGraph ?? false)));
}

function seedGradient(root: Tensor, grad: Tensor | null): Tensor {
  root.assertAlive('backward');
  if (!root.requiresGrad) {
    throw new Error(`backward: tensor ${root.describe()} does not require grad (no input of the ops that made it ` +
      'requires grad, or it was computed under noGrad)');
  }
  if (grad === null) {
    if (root.numel !== 1) {
      throw new Error(`backward: a gradient can only be implied for a one-element tensor, got ${root.describe()}; pass grad`);
    }
    return onesLike(root);
  }
  grad.assertAlive('backward');
  if (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i])) {
    throw new Error(`backward: grad of shape ${formatShape(grad.shape)} does not match the tensor's shape ${formatShape(root.shape)}`);
  }
  if (grad.dtype !== root.dtype || grad.device !== root.device) {
    throw new Error(`backward: grad ${grad.describe()} must have the dtype and device of the tensor, ${root.describe()}`);
  }
  return aliasOf(grad);
}

function runBackward(roots: readonly Tensor[], rootGrads: readonly (Tensor | null)[], retainGraph: boolean): void {
  const buffers = new Map<GraphNode, (Tensor | null)[]>();
  const leafGrads = new Map<Tensor, Tensor>();
  const sum = (a: Tensor | null | undefined, b: Tensor): Tensor => {
    if (!a) return b;
    const s = add(a, b);
    a.dispose();
    b.dispose();
    return s;
  };
  const route = (edge: Edge, g: Tensor): void => {
    if (edge.node) {
      let buf = buffers.get(edge.node);
      if (!buf) buffers.set(edge.node, (buf = edge.node.outputIds.map(() => null)));
      buf[edge.outputIndex] = sum(buf[edge.outputIndex], g);
    } else {
      leafGrads.set(edge.leaf!, sum(leafGrads.get(edge.leaf!), g));
    }
  };

  const starts: GraphNode[] = [];
  const seeded = roots.map((r, i) => seedGradient(r, rootGrads[i]!));
  roots.forEach((r, i) => {
    route(edgeTo(r), seeded[i]!);
    if (r.gradFn instanceof GraphNode) starts.push(r.gradFn);
  });

  const order = collectNodes(starts);
  for (const node of order) {
    const outGrads = buffers.get(node) ?? node.outputIds.map(() => null);
    buffers.delete(node);
    if (outGrads.some((g) => g !== null)) for (const { edge, grad } of node.run(outGrads)) route(edge, grad);
    if (!retainGraph) node.free();
  }

  for (const [leaf, g] of leafGrads) {
    if (leaf.isDisposed) {
      g.dispose();
      continue;
    }
    const owned = ownDense(g);
    const total = leaf.grad ? sum(leaf.grad, owned) : owned;
    leaf.grad = keep(ownDense(total));
  }
}

/** A gradient that owns exactly its own contiguous memory (not a view into a larger buffer). */
function ownDense(g: Tensor): Tensor {
  if (g.isContiguous && g.offset === 0 && g.storage.numel === g.numel) return g;
  const c = g.isContiguous ? clone(g) : contiguous(g);
  g.dispose();
  return c;
}

/** Every node reachable from `starts`, latest first (reverse topological order). */
function collectNodes(starts: readonly GraphNode[]): GraphNode[] {
  const seen = new Set<GraphNode>();
  const stack = [...starts];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    if (n.isFreed) {
      throw new Error(`backward: the graph through op '${n.op}' was already freed by an earlier backward() ` +
        '(pass { retainGraph: true } to the first call to go through it twice)');
    }
    seen.add(n);
    for (const p of n.parents()) if (!seen.has(p)) stack.push(p);
  }
  return [...seen].sort((a, b) => b.seq - a.seq);
}

/**
 * Frees the graph behind `t` without running backward: every node reachable from it drops
 * what it saved. Use it when a result that requires grad will not be differentiated (such
 * graphs are otherwise only reclaimed by garbage collection).
 */
export function releaseGraph(t: Tensor): void {
  const start = t.gradFn instanceof GraphNode ? t.gradFn : null;
  if (!start) return;
  const seen = new Set<GraphNode>();
  const stack = [start];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n) || n.isFreed) continue;
    seen.add(n);
    stack.push(...n.parents());
    n.free();
  }
}

/**
 * Marks a leaf tensor as requiring grad (or not) and returns it, so ops on it are recorded
 * and `backward()` fills its `.grad`. Only floating-point tensors can require grad; a
 * tensor produced by a recorded op always does (use `detach` to cut it from the graph).
 */
export function requiresGrad<T extends Tensor>(t: T, flag = true): T {
  t.assertAlive('requiresGrad');
  if (flag && !isFloatDType(t.dtype)) throw new TypeError(`requiresGrad: only floating-point tensors can require grad, got ${t.describe()}`);
  if (!flag && t.gradFn instanceof GraphNode) {
    throw new Error(`requiresGrad: ${t.describe()} was produced by '${t.gradFn.op}' on the tape; use detach(t) for a copy that does not require grad`);
  }
  t.requiresGrad = flag;
  return t;
}

/** A view of `t` sharing its memory that is cut from the graph: it does not require grad. */
export function detach(t: Tensor): Tensor {
  t.assertAlive('detach');
  return Tensor.view(t, t.shape, t.strides, t.offset);
}

/** The name of the op that produced `t` on the tape, or null for leaves and untracked tensors. */
export function gradFnName(t: Tensor): string | null {
  return t.gradFn instanceof GraphNode ? t.gradFn.op : null;
}

let previousObserver: OpObserver | null = null;
let installed = false;

/** Installs the tape recorder and the `tensor.backward()` engine. Called when the package loads; idempotent. */
export function installAutograd(): void {
  if (installed) return;
  installed = true;
  previousObserver = setOpObserver((rec) => {
    observe(rec);
    previousObserver?.(rec);
  });
  setAutogradEngine({ backward: (root, grad) => backward(root, grad ?? null) });
}
