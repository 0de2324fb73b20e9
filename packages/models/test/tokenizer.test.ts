import { describe, expect, it } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, TokenizerFormatError } from '../src/index.js';

// Hand-written fixtures. Expected ids below are derived by hand from their merge lists
// (BPE repeatedly applies the lowest-ranked merge present in a word, leftmost on ties) and
// agree with what Hugging Face tokenizers 0.23 gives for the same files.
const fixtureDir = new URL('./fixtures/tokenizer/', import.meta.url);
const readFixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(name, fixtureDir), 'utf8')) as Record<string, unknown>;
const sentencePieceJson = readFixture('sentencepiece-bpe.json');
const byteLevelJson = readFixture('byte-level-bpe.json');

describe('SentencePiece-style BPE with byte fallback (Llama-2 layout)', () => {
  const tok = Tokenizer.fromJSON(sentencePieceJson);

  it('encodes words through ranked merges', () => {
    // "▁hello▁the▁cat": h+e (rank 0), ▁+t, ▁t+he, l+l, ▁+he, ll+o, ▁he+llo, a+t, ▁+c, ▁c+at.
    expect(tok.encode('hello the cat')).toEqual([21, 17, 24]);
    expect(tok.tokenize('hello the cat')).toEqual(['▁hello', '▁the', '▁cat']);
    // "▁heat": h+e (rank 0) first, then ▁+he (rank 4) before a+t (rank 7).
    expect(tok.encode('heat')).toEqual([19, 22]);
    // "▁lll": the two l+l candidates tie, the leftmost merges.
    expect(tok.encode('lll')).toEqual([6, 18, 12]);
  });

  it('falls back to byte tokens, and to <unk> when a byte token is missing', () => {
    expect(tok.encode('é')).toEqual([6, 4, 5]); // ▁ <0xC3> <0xA9>
    expect(tok.encode('cé')).toEqual([23, 4, 5]);
    expect(tok.encode('a\nb')).toEqual([6, 7, 3, 8]);
    expect(tok.encode('z')).toEqual([6, 0]); // no <0x7A> in the vocabulary
  });

  it('decodes: "▁" back to spaces, bytes fused into characters, first space stripped', () => {
    expect(tok.decode([21, 17, 24])).toBe('hello the cat');
    expect(tok.decode([23, 4, 5])).toBe('cé');
    expect(tok.decode([6, 7, 3, 8])).toBe('a\nb');
    expect(tok.decode([4])).toBe('\uFFFD'); // a lone lead byte is not valid UTF-8
    expect(tok.decode([])).toBe('');
    for (const text of ['hello the cat', ' hello', 'heat é', 'a\nb\n']) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('matches special tokens verbatim and adds bos / eos only on request', () => {
    expect(tok.encode('<s>hello</s>')).toEqual([1, 21, 2]);
    expect(tok.encode('hello the cat', { addBos: true, addEos: true })).toEqual([1, 21, 17, 24, 2]);
    expect(tok.encode('', { addBos: true })).toEqual([1]);
    expect(tok.decode([1, 21, 2])).toBe('<s> hello</s>');
    expect(tok.decode([1, 21, 2], { skipSpecialTokens: true })).toBe('hello');
  });

  it('reports vocabulary size and special ids', () => {
    expect(tok.vocabSize).toBe(25);
    expect([tok.bosId, tok.eosId, tok.padId, tok.unkId]).toEqual([1, 2, null, 0]);
    expect(tok.tokenToId('▁cat')).toBe(24);
    expect(tok.idToToken(24)).toBe('▁cat');
    expect(tok.idToToken(99)).toBeUndefined();
  });

  it('supports the Metaspace pre-tokenizer layout (prepend only to the first section)', () => {
    const json = structuredClone(sentencePieceJson);
    json.normalizer = null;
    json.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
    const meta = Tokenizer.fromJSON(json);
    expect(meta.encode('hello the cat')).toEqual([21, 17, 24]);
    // After <s> the text is not the first section, so no "▁" is prepended: h+e, l+l, ll+o.
    expect(meta.encode('<s>hello')).toEqual([1, 15, 20]);
  });
});

describe('byte-level BPE (GPT-2 layout)', () => {
  const tok = Tokenizer.fromJSON(byteLevelJson);

  it('splits with the ByteLevel pattern and maps bytes to characters', () => {
    // "hello" | "Ġthe" | "Ġcat" | "'s" | "."
    expect(tok.encode("hello the cat's.")).toEqual([22, 19, 26, 0, 10, 1]);
    // A run of spaces leaves its last space to the next word; "\n" becomes "Ċ".
    expect(tok.tokenize('hello  hello\n')).toEqual(['hello', 'Ġ', 'Ġhello', 'Ċ']);
    // "é" is bytes C3 A9, i.e. "Ã©", merged by the last rule.
    expect(tok.encode('é.')).toEqual([27, 1]);
  });

  it('drops characters it cannot encode when there is no unknown token', () => {
    expect(tok.encode('hello x')).toEqual([22, 14]);
  });

  it('round-trips text exactly', () => {
    for (const text of ["hello the cat's.", 'hello  hello\n', 'é.', ' hello . cat', 'the<|endoftext|>cat']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('treats <|endoftext|> as bos and eos', () => {
    expect(tok.encode('hello<|endoftext|> the')).toEqual([22, 28, 19]);
    expect([tok.bosId, tok.eosId, tok.padId, tok.unkId]).toEqual([28, 28, null, null]);
    expect(tok.encode('the', { addEos: true })).toEqual([11, 18, 28]);
    expect(tok.vocabSize).toBe(29);
  });
});

describe('special tokens from tokenizer_config', () => {
  it('uses the config, accepting added-token objects and explicit nulls', () => {
    const tok = Tokenizer.fromJSON(sentencePieceJson, { bos_token: { content: '</s>' }, eos_token: '</s>', unk_token: null });
    expect([tok.bosId, tok.eosId, tok.unkId]).toEqual([2, 2, null]);
    expect(tok.specialTokens).toEqual({ bos: '</s>', eos: '</s>', pad: null, unk: null });
  });

  it('rejects a config token that is not in the vocabulary', () => {
    expect(() => Tokenizer.fromJSON(sentencePieceJson, { pad_token: '<pad>' })).toThrow(
      /tokenizer_config pad_token "<pad>" is not in the vocabulary/,
    );
  });

  it('errors when bos / eos are asked for but missing', () => {
    const tok = Tokenizer.fromJSON(sentencePieceJson, { bos_token: null, eos_token: null });
    expect(() => tok.encode('hello', { addBos: true })).toThrow(/addBos was asked for but the tokenizer has no bos token/);
    expect(() => tok.encode('hello', { addEos: true })).toThrow(/addEos was asked for but the tokenizer has no eos token/);
  });
});

describe('save, load and copies', () => {
  it('saves and loads the same document, reading tokenizer_config.json beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenizer-'));
    try {
      const tok = Tokenizer.fromJSON(sentencePieceJson);
      const path = join(dir, 'tokenizer.json');
      tok.save(path);
      expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(sentencePieceJson);
      expect(Tokenizer.fromFile(path).encode('hello the cat')).toEqual([21, 17, 24]);
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tok.configJSON(64)));
      expect(tok.configJSON(64)).toMatchObject({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', model_max_length: 64 });
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '</s>' }));
      expect(Tokenizer.fromFile(path).bosId).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is not affected by changes to the source object or to toJSON results', () => {
    const json = structuredClone(byteLevelJson);
    const tok = Tokenizer.fromJSON(json);
    (json.model as { vocab: Record<string, number> }).vocab.hello = 99;
    tok.toJSON().model.vocab.hello = 98;
    expect(tok.toJSON()).toEqual(byteLevelJson);
    expect(tok.encode('hello')).toEqual([22]);
  });
});

describe('malformed tokenizer.json', () => {
  const withModel = (change: (model: Record<string, unknown>) => void): Record<string, unknown> => {
    const json = structuredClone(sentencePieceJson);
    change(json.model as Record<string, unknown>);
    return json;
  };
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [1, 2], /the document must be a JSON object/],
    ['missing model', { added_tokens: [] }, /missing the "model" section/],
    ['unknown model type', withModel((m) => (m.type = 'WordPiece')), /unsupported model type "WordPiece" \(supported: "BPE"\)/],
    ['no model type', withModel((m) => delete m.type), /unsupported model type undefined/],
    ['vocab not an object', withModel((m) => (m.vocab = ['a'])), /model\.vocab must be an object/],
    ['negative id', withModel((m) => ((m.vocab as Record<string, number>).x = -1)), /model\.vocab\["x"\] must be a non-negative integer id/],
    ['duplicate id', withModel((m) => ((m.vocab as Record<string, number>).x = 3)), /gives id 3 to both "<0x0A>" and "x"/],
    ['merges not an array', withModel((m) => (m.merges = 'h e')), /model\.merges must be an array/],
    ['merge with unknown token', withModel((m) => (m.merges as string[]).push('q u')), /merge #10 "q u" references token "q" which is not in model\.vocab/],
    ['merge whose result is unknown', withModel((m) => (m.merges as string[]).push('c a')), /merge #10 "c a" references token "ca"/],
    ['merge without a space', withModel((m) => (m.merges as string[]).push('abc')), /merge #10 "abc" must be two tokens separated by one space/],
    ['merge of the wrong shape', withModel((m) => (m.merges as unknown[]).push(['a'])), /merge #10 must be a "left right" string or a \[left, right\] pair/],
    ['unknown unk token', withModel((m) => (m.unk_token = '<oov>')), /model\.unk_token "<oov>" is not in model\.vocab/],
  ];
  for (const [name, json, message] of cases) {
    it(`rejects ${name}`, () => {
      expect(() => Tokenizer.fromJSON(json)).toThrow(TokenizerFormatError);
      expect(() => Tokenizer.fromJSON(json)).toThrow(message);
    });
  }

  it('rejects an added token whose id disagrees with the vocabulary', () => {
    const json = structuredClone(sentencePieceJson);
    (json.added_tokens as Array<{ id: number }>)[1]!.id = 7;
    expect(() => Tokenizer.fromJSON(json)).toThrow(/added token "<s>" has id 7 but model\.vocab gives it id 1/);
  });

  it('rejects a malformed pipeline component', () => {
    const json = structuredClone(byteLevelJson);
    json.decoder = { kind: 'ByteLevel' };
    expect(() => Tokenizer.fromJSON(json)).toThrow(/"decoder" must be null or an object with a string "type"/);
  });

  it('names the file when it is missing or not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenizer-'));
    try {
      expect(() => Tokenizer.fromFile(join(dir, 'absent.json'))).toThrow(/tokenizer\.json: cannot read .*absent\.json/);
      writeFileSync(join(dir, 'broken.json'), '{"model": ');
      expect(() => Tokenizer.fromFile(join(dir, 'broken.json'))).toThrow(/broken\.json is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects decoding an id with no token', () => {
    const tok = Tokenizer.fromJSON(byteLevelJson);
    expect(() => tok.decode([22, 29])).toThrow(RangeError);
    expect(() => tok.decode([-1])).toThrow(/id -1 has no token \(vocabulary size 29\)/);
  });
});
