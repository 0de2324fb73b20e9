import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../src/index.js';

// The tokenizer shipped with the embedded model (trained by scripts/data/train-tokenizer.mjs).
// Expected ids were produced by Hugging Face tokenizers 0.23 loading the same file.
const assets = new URL('../../blora/assets/', import.meta.url);
const tok = Tokenizer.fromFile(fileURLToPath(new URL('tiny-llama/tokenizer.json', assets)));

describe('shipped tiny-llama tokenizer', () => {
  it('has a 4096-token vocabulary with the Llama special tokens', () => {
    expect(tok.vocabSize).toBe(4096);
    expect([tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2, 3]);
    expect(tok.specialTokens).toEqual({ bos: '<s>', eos: '</s>', pad: '<pad>', unk: '<unk>' });
  });

  it('encodes like the reference implementation', () => {
    expect(tok.encode('hello world', { addBos: true })).toEqual([1, 262, 591, 115, 1078]);
    expect(tok.encode('Ünïcödé — “quotes” 🤗 中文 tabs\there\r\nand  x  ')).toEqual([
      199, 160, 114, 199, 179, 103, 199, 186, 104, 199, 173, 36, 230, 132, 152, 36, 230, 132, 160, 375, 319, 285, 230,
      132, 161, 36, 244, 163, 168, 155, 36, 232, 188, 177, 234, 154, 139, 260, 385, 119, 13, 1167, 17, 14, 386, 36, 36,
      124, 36, 36,
    ]);
  });

  it('round-trips the held-out corpus exactly', () => {
    const heldout = readFileSync(new URL('corpus/heldout.txt', assets), 'utf8');
    const ids = tok.encode(heldout);
    expect(ids.length).toBe(85743);
    expect(tok.decode(ids)).toBe(heldout);
  });
});
