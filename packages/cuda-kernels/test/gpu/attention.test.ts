// attention and attentionBackward on cuda (flash-style kernels): grouped-query heads,
// end-aligned causal masks with T < S, sliding windows, custom scales, D != Dv, several key
// tiles, head dims up to 256, empty sequences, strided / transposed / head-permuted inputs,
// every float dtype, against a float64 plain-loop reference and the CPU kernels.
import { execute, permute, statsDTypeOf, tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { FLOAT_DTYPES, makeTensor, roundTo, sizeOf, valuesFor } from './helpers.js';

interface Problem {
  b: number;
  h: number;
  hkv: number;
  t: number;
  s: number;
  d: number;
  dv: number;
  causal: boolean;
  window: number | null;
  scale: number;
}

/** How q, k, v, o and dO are laid out: dense, last two dims transposed, or [B, T, H, D] permuted to [B, H, T, D]. */
type AttnLayout = 'contiguous' | 'transposed' | 'heads';

function make(values: ArrayLike<number>, shape: number[], dtype: DType, device: string, layout: AttnLayout): Tensor {
  if (layout !== 'heads') return makeTensor(values, shape, dtype, device, layout);
  const [b, h, t, d] = shape as [number, number, number, number];
  const physical = new Float64Array(values.length);
  for (let i = 0; i < b; i++) for (let j = 0; j < h; j++) for (let p = 0; p < t; p++) for (let c = 0; c < d; c++) {
    physical[((i * t + p) * h + j) * d + c] = values[((i * h + j) * t + p) * d + c]!;
  }
  const base = tensor(physical, { shape: [b, t, h, d], dtype, device });
  const view = permute(base, [0, 2, 1, 3]);
  base.dispose();
  return view;
}

/** Keys [lo, hi) visible to query t. */
function keyRange(p: Problem, t: number): [number, number] {
  const last = t + p.s - p.t;
  const hi = p.causal ? Math.min(p.s, last + 1) : p.s;
  const lo = p.window === null ? 0 : Math.max(0, last - p.window + 1);
  return [lo, hi];
}

/** Float64 forward and backward: [o, lse, dq, dk, dv]. */
function reference(p: Problem, q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array): number[][] {
  const o = new Array<number>(p.b * p.h * p.t * p.dv).fill(0);
  const lse = new Array<number>(p.b * p.h * p.t).fill(-Infinity);
  const dq = new Array<number>(q.length).fill(0);
  const dk = new Array<number>(k.length).fill(0);
  const dvv = new Array<number>(v.length).fill(0);
  const group = p.h / p.hkv;
  for (let bi = 0; bi < p.b; bi++) {
    for (let hi = 0; hi < p.h; hi++) {
      const kvh = bi * p.hkv + Math.floor(hi / group);
      for (let ti = 0; ti < p.t; ti++) {
        const row = (bi * p.h + hi) * p.t + ti;
        const [lo, end] = keyRange(p, ti);
        if (lo >= end) continue;
        const scores: number[] = [];
        for (let si = lo; si < end; si++) {
          let dot = 0;
          for (let c = 0; c < p.d; c++) dot += q[row * p.d + c]! * k[(kvh * p.s + si) * p.d + c]!;
          scores.push(dot * p.scale);
        }
        const max = Math.max(...scores);
        const sum = scores.reduce((acc, sc) => acc + Math.exp(sc - max), 0);
        const probs = scores.map((sc) => Math.exp(sc - max) / sum);
        lse[row] = max + Math.log(sum);
        for (let c = 0; c < p.dv; c++) {
          o[row * p.dv + c] = probs.reduce((acc, pr, i) => acc + pr * v[(kvh * p.s + lo + i) * p.dv + c]!, 0);
        }
        let delta = 0;
        for (let c = 0; c < p.dv; c++) delta += dO[row * p.dv + c]! * o[row * p.dv + c]!;
        probs.forEach((pr, i) => {
          const key = kvh * p.s + lo + i;
          let dp = 0;
          for (let c = 0; c < p.dv; c++) {
            dp += dO[row * p.dv + c]! * v[key * p.dv + c]!;
            dvv[key * p.dv + c]! += pr * dO[row * p.dv + c]!;
          }
          const ds = pr * (dp - delta) * p.scale;
          for (let c = 0; c < p.d; c++) {
            dq[row * p.d + c]! += ds * k[key * p.d + c]!;
            dk[key * p.d + c]! += ds * q[row * p.d + c]!;
          }
        });
      }
    }
  }
  return [o, lse, dq, dk, dvv];
}

function tolerance(dtype: DType, scale = 1): Tolerance {
  switch (dtype) {
    case 'float64': return { rtol: 1e-10, atol: 1e-12 * scale };
    case 'float32': return { rtol: 5e-5, atol: 5e-6 * scale };
    case 'float16': return { rtol: 5e-3, atol: 2e-3 * scale };
    default: return { rtol: 3e-2, atol: 1.5e-2 * scale };
  }
}

function run(device: string, p: Problem, dtype: DType, layout: AttnLayout, values: Float64Array[], saved: [Float64Array, Float64Array]): Float64Array[] {
  const [qv, kv, vv, dOv] = values as [Float64Array, Float64Array, Float64Array, Float64Array];
  const stats = statsDTypeOf(dtype);
  const q = make(qv, [p.b, p.h, p.t, p.d], dtype, device, layout);
  const k = make(kv, [p.b, p.hkv, p.s, p.d], dtype, device, layout === 'heads' ? 'transposed' : layout);
  const v = make(vv, [p.b, p.hkv, p.s, p.dv], dtype, device, 'contiguous');
  const dO = make(dOv, [p.b, p.h, p.t, p.dv], dtype, device, layout);
  const attrs = { causal: p.causal, window: p.window, scale: p.scale };
  const [o, lse] = execute('attention', [q, k, v], [{ shape: [p.b, p.h, p.t, p.dv], dtype }, { shape: [p.b, p.h, p.t], dtype: stats }], attrs);
  expect(o!.device).toBe(device);
  // The backward reads the reference's o and lse, so both devices get the same inputs.
  const oSaved = make(saved[0], [p.b, p.h, p.t, p.dv], dtype, device, layout);
  const lseSaved = tensor(saved[1], { shape: [p.b, p.h, p.t], dtype: stats, device });
  const grads = execute('attentionBackward', [dO, q, k, v, oSaved, lseSaved],
    [{ shape: q.shape, dtype }, { shape: k.shape, dtype }, { shape: v.shape, dtype }], attrs);
  const out = [o!, lse!, ...grads].map((t) => t.toFloat64Array());
  for (const t of [q, k, v, dO, o!, lse!, oSaved, lseSaved, ...grads]) t.dispose();
  return out;
}

function check(p: Problem, dtype: DType, layout: AttnLayout): void {
  const shapes = [[p.b, p.h, p.t, p.d], [p.b, p.hkv, p.s, p.d], [p.b, p.hkv, p.s, p.dv], [p.b, p.h, p.t, p.dv]];
  const values = shapes.map((s, i) => roundTo(valuesFor(dtype, sizeOf(s), 80 + i, -1.5, 1.5), dtype));
  const expected = reference(p, values[0]!, values[1]!, values[2]!, values[3]!);
  const saved: [Float64Array, Float64Array] = [roundTo(expected[0]!, dtype), roundTo(expected[1]!, statsDTypeOf(dtype))];
  const cuda = run('cuda', p, dtype, layout, values, saved);
  const cpu = run('cpu', p, dtype, layout, values, saved);
  const tols = [tolerance(dtype), tolerance(statsDTypeOf(dtype)), tolerance(dtype, 4), tolerance(dtype, 4), tolerance(dtype, 4)];
  const outDTypes = [dtype, statsDTypeOf(dtype), dtype, dtype, dtype];
  cuda.forEach((values, i) => {
    assertClose(values, roundTo(expected[i]!, outDTypes[i]!), tols[i]!);
    assertClose(values, cpu[i]!, tols[i]!);
  });
}

const base: Problem = { b: 2, h: 6, hkv: 2, t: 7, s: 7, d: 12, dv: 8, causal: false, window: null, scale: 1 / Math.sqrt(12) };

describe.skipIf(!cudaAvailable())('attention on cuda', () => {
  it('grouped heads, causal and sliding-window masks, every float dtype and layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const layout of ['contiguous', 'transposed', 'heads'] as AttnLayout[]) {
        for (const causal of [false, true]) {
          for (const window of [null, 3]) check({ ...base, causal, window }, dtype, layout);
        }
      }
    }
  });

  it('fewer queries than keys (a KV cache) with the mask aligned to the end, and a custom scale', () => {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      check({ ...base, t: 5, s: 11, causal: true, window: 4, scale: 0.3 }, dtype, 'contiguous');
      check({ ...base, t: 5, s: 11, causal: false, window: null, h: 4, hkv: 4 }, dtype, 'heads');
    }
  });

  it('many query and key tiles, head dims 64 and 130, float32 and bfloat16', () => {
    check({ ...base, b: 1, h: 2, hkv: 1, t: 70, s: 70, d: 64, dv: 64, causal: true, scale: 0.125 }, 'float32', 'heads');
    check({ ...base, b: 1, h: 2, hkv: 1, t: 70, s: 70, d: 64, dv: 64, causal: true, window: 20, scale: 0.125 }, 'bfloat16', 'contiguous');
    check({ ...base, b: 1, h: 3, hkv: 3, t: 3, s: 40, d: 130, dv: 130, scale: 0.05 }, 'float32', 'contiguous');
  });

  it('says which head dims it supports', () => {
    const q = makeTensor(new Float64Array(2 * 300), [1, 1, 2, 300], 'float32', 'cuda', 'contiguous');
    const v = makeTensor(new Float64Array(2 * 8), [1, 1, 2, 8], 'float32', 'cuda', 'contiguous');
    expect(() => execute('attention', [q, q, v], [{ shape: [1, 1, 2, 8], dtype: 'float32' }, { shape: [1, 1, 2], dtype: 'float32' }],
      { causal: false, window: null, scale: 1 })).toThrow(/cuda attention .*head dims up to 256 are supported on cuda, got D = 300/);
    q.dispose();
    v.dispose();
  });

  it('empty query or key sequences: zero outputs, lse -Infinity, zero gradients', () => {
    check({ ...base, t: 0 }, 'float32', 'contiguous');
    check({ ...base, s: 0 }, 'float32', 'contiguous');
    check({ ...base, t: 4, s: 9, causal: true, window: 1 }, 'float64', 'transposed');
  });
});
