/**
 * Tokenizers: Hugging Face `tokenizer.json` loading (byte-level and SentencePiece-style BPE),
 * encoding / decoding with special tokens, and a byte-level BPE trainer.
 *
 * @module
 */
export { Tokenizer, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export {
  validateTokenizerJson,
  mergeParts,
  TokenizerFormatError,
  MAX_TOKEN_ID,
  type TokenizerJson,
  type BpeModelJson,
  type AddedTokenJson,
  type ComponentJson,
} from './tokenizer-json.js';
export {
  resolveSpecialTokens,
  type SpecialTokens,
  type SpecialRole,
  type TokenizerConfigJson,
  type ConfigTokenJson,
} from './special-tokens.js';
export { trainByteLevelBpe, DEFAULT_SPECIAL_TOKENS, type BpeTrainerOptions } from './bpe-trainer.js';
export {
  BYTE_LEVEL_SPLIT_PATTERN,
  byteLevelAlphabet,
  bytesToByteLevel,
  byteLevelToBytes,
  splitByteLevelWords,
} from './byte-level.js';
