// CPU kernels of attention and attentionBackward (see ops/nn/attention.ts for the contract).
// Both walk one query row at a time; the only scratch beyond the outputs is one row of
// S probabilities, so memory stays linear in the sequence lengths.
import { getKernel, registerKernel, type Attrs } from '../../dispatch.js';
import { Tensor } from '../../tensor.js';
import { commitValues, outputValues, readValues } from '../access.js';

interface Mask {
  causal: boolean;
  window: number | null;
}

/** Keys [lo, hi) that query row t of T may attend among S keys (end-aligned mask). */
function keyRange(t: number, bigT: number, s: number, mask: Mask): [number, number] {
  const last = t + s - bigT; // the key aligned with this query
  const hi = mask.causal ? Math.min(s, last + 1) : s;
  const lo = mask.window === null ? 0 : Math.max(0, last - mask.window + 1);
  return [lo, hi];
}

function maskOf(attrs: Attrs): Mask {
  return { causal: attrs.causal as boolean, window: (attrs.window as number | null) ?? null };
}

/** Sizes, heads per key/value head, scale and mask of one attention call (q [b, h, t, d], k [b, hkv, s, d], v [b, hkv, s, dv]). */
function dimsOf(q: Tensor, k: Tensor, v: Tensor, attrs: Attrs) {
  const [b, h, t, d] = q.shape as [number, number, number, number];
  const [, hkv, s] = k.shape as [number, number, number, number];
  return { b, h, t, d, hkv, s, dv: v.shape[3]!, group: h / hkv, scale: attrs.scale as number, mask: maskOf(attrs) };
}

registerKernel('attention', 'cpu', ([q, k, v, keyLength], [o, lse], attrs) => {
  if (keyLength) {
    // Only the first keyLength keys and values: the same kernel on views of them.
    const live = Math.min(k!.shape[2]!, Math.max(0, readValues(keyLength)[0]!));
    const views = [k!, v!].map((x) => Tensor.view(x, [x.shape[0]!, x.shape[1]!, live, x.shape[3]!], x.strides, x.offset));
    try {
      getKernel('attention', 'cpu')([q!, views[0]!, views[1]!], [o!, lse!], attrs);
    } finally {
      for (const x of views) x.dispose();
    }
    return;
  }
  const { b, h, t, d, hkv, s, dv, group, scale, mask } = dimsOf(q!, k!, v!, attrs);
  const qv = readValues(q!);
  const kv = readValues(k!);
  const vv = readValues(v!);
  const ov = outputValues(o!);
  const lv = outputValues(lse!);
  const probs = new Float64Array(s);
  const acc = new Float64Array(dv);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const kvHead = bi * hkv + Math.floor(hi / group);
      const kBase = kvHead * s * d;
      const vBase = kvHead * s * dv;
      for (let ti = 0; ti < t; ti++) {
        const row = (bi * h + hi) * t + ti;
        const qBase = row * d;
        const oBase = row * dv;
        const [lo, end] = keyRange(ti, t, s, mask);
        if (lo >= end) {
          ov.fill(0, oBase, oBase + dv);
          lv[row] = -Infinity;
          continue;
        }
        let max = -Infinity;
        for (let si = lo; si < end; si++) {
          let dot = 0;
          const kRow = kBase + si * d;
          for (let c = 0; c < d; c++) dot += qv[qBase + c]! * kv[kRow + c]!;
          const score = dot * scale;
          probs[si] = score;
          if (score > max) max = score;
        }
        let sum = 0;
        acc.fill(0);
        for (let si = lo; si < end; si++) {
          const p = Math.exp(probs[si]! - max);
          sum += p;
          const vRow = vBase + si * dv;
          for (let c = 0; c < dv; c++) acc[c]! += p * vv[vRow + c]!;
        }
        for (let c = 0; c < dv; c++) ov[oBase + c] = acc[c]! / sum;
        lv[row] = max + Math.log(sum);
      }
    }
  }
  commitValues(o!, ov);
  commitValues(lse!, lv);
});

// With P = softmax(S), S = scale q k^T and D_t = dO_t . o_t:
// dv_s += P_ts dO_t, dS_ts = P_ts (dO_t . v_s - D_t), dq_t += scale dS_ts k_s, dk_s += scale dS_ts q_t.
registerKernel('attentionBackward', 'cpu', ([dO, q, k, v, o, lse], [dq, dk, dvOut], attrs) => {
  const { b, h, t, d, hkv, s, dv, group, scale, mask } = dimsOf(q!, k!, v!, attrs);
  const dov = readValues(dO!);
  const qv = readValues(q!);
  const kv = readValues(k!);
  const vv = readValues(v!);
  const ovals = readValues(o!);
  const lv = readValues(lse!);
  // Key/value gradients collect contributions from every query head of their group.
  const dkAcc = new Float64Array(k!.numel);
  const dvAcc = new Float64Array(v!.numel);
  const dqv = outputValues(dq!);
  const dqRow = new Float64Array(d);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const kvHead = bi * hkv + Math.floor(hi / group);
      const kBase = kvHead * s * d;
      const vBase = kvHead * s * dv;
      for (let ti = 0; ti < t; ti++) {
        const row = (bi * h + hi) * t + ti;
        const qBase = row * d;
        const oBase = row * dv;
        const [lo, end] = keyRange(ti, t, s, mask);
        dqRow.fill(0);
        if (lo < end) {
          const rowLse = lv[row]!;
          let delta = 0;
          for (let c = 0; c < dv; c++) delta += dov[oBase + c]! * ovals[oBase + c]!;
          for (let si = lo; si < end; si++) {
            const kRow = kBase + si * d;
            const vRow = vBase + si * dv;
            let dot = 0;
            for (let c = 0; c < d; c++) dot += qv[qBase + c]! * kv[kRow + c]!;
            const p = Math.exp(dot * scale - rowLse);
            let dp = 0;
            for (let c = 0; c < dv; c++) {
              dp += dov[oBase + c]! * vv[vRow + c]!;
              dvAcc[vRow + c]! += p * dov[oBase + c]!;
            }
            const ds = p * (dp - delta) * scale;
            for (let c = 0; c < d; c++) {
              dqRow[c]! += ds * kv[kRow + c]!;
              dkAcc[kRow + c]! += ds * qv[qBase + c]!;
            }
          }
        }
        for (let c = 0; c < d; c++) dqv[qBase + c] = dqRow[c]!;
      }
    }
  }
  commitValues(dq!, dqv);
  const dkv = outputValues(dk!);
  dkv.set(dkAcc);
  commitValues(dk!, dkv);
  const dvv = outputValues(dvOut!);
  dvv.set(dvAcc);
  commitValues(dvOut!, dvv);
});
