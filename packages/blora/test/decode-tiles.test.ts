import { describe, expect, it } from 'vitest';
import { createLlama, llamaConfig, toDType } from '@blora/models';
import { FourBitLinear, IntBlockLinear } from '@blora/quant';
import { DenseBase, QuantizedBase, quantizeModel, useDecodeTiles } from '../src/index.js';

/** A tiny Llama with hidden 64 and MLP 256: only the MLP's down projections (in = 256) fit the decode tile layout. */
function model() {
  const config = llamaConfig({ vocabSize: 32, hiddenSize: 64, intermediateSize: 256, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
  return createLlama(config, { seed: 3, linearFactory: (_name, weight, context) => new DenseBase(toDType(weight, context.dtype)) });
}

function fourBitBases(m: ReturnType<typeof model>): [string, FourBitLinear][] {
  return m.namedModules().flatMap(([name, mod]) =>
    mod instanceof QuantizedBase && mod.quantized instanceof FourBitLinear ? [[name, mod.quantized] as [string, FourBitLinear]] : []);
}

describe('useDecodeTiles', () => {
  it('switches the NF4 bases whose weight fits the layout, and back (freeing the tiles)', () => {
    const m = model();
    quantizeModel(m, { format: 'nf4', blocksize: 64 });
    expect(useDecodeTiles(m)).toBe(2);
    const on = fourBitBases(m).filter(([, q]) => q.useDecodeTiles).map(([name]) => name);
    expect(on).toEqual(['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
    const [, down] = fourBitBases(m).find(([, q]) => q.useDecodeTiles)!;
    const tiles = down.decodeTiles();
    expect(useDecodeTiles(m, false)).toBe(2);
    expect(fourBitBases(m).some(([, q]) => q.useDecodeTiles)).toBe(false);
    expect(tiles.codes.isDisposed).toBe(true);
    m.dispose();
  });

  it('switches the INT4 bases in blocks of 1 x 64 that fit, and leaves groups of 32 alone', () => {
    const m = model();
    quantizeModel(m, { format: 'int4', groupSize: 64 });
    expect(useDecodeTiles(m)).toBe(2);
    const on = m.namedModules().flatMap(([name, mod]) =>
      mod instanceof QuantizedBase && mod.quantized instanceof IntBlockLinear && mod.quantized.useDecodeTiles ? [name] : []);
    expect(on).toEqual(['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
    expect(useDecodeTiles(m, false)).toBe(2);
    m.dispose();
    for (const format of [{ format: 'int4', groupSize: 32 }, { format: 'nf4', blocksize: 32 }] as const) {
      const other = model();
      quantizeModel(other, format);
      expect(useDecodeTiles(other)).toBe(0);
      other.dispose();
    }
  });
});
