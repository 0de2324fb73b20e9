/**
 * Which tokens play the roles of beginning-of-sequence, end-of-sequence, padding and
 * unknown: read from `tokenizer_config.json` when given, otherwise recognised by the
 * names the common model families use.
 *
 * @module
 */
import { TokenizerFormatError, type TokenizerJson } from './tokenizer-json.js';

/** A special token in `tokenizer_config.json`: a plain string or an added-token object. */
export type ConfigTokenJson = string | { content: string; [key: string]: unknown } | null;

/** The parts of a Hugging Face `tokenizer_config.json` this package reads and writes. */
export interface TokenizerConfigJson {
  bos_token?: ConfigTokenJson;
  eos_token?: ConfigTokenJson;
  pad_token?: ConfigTokenJson;
  unk_token?: ConfigTokenJson;
  model_max_length?: number;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  [key: string]: unknown;
}

/** The roles a special token can play. */
export type SpecialRole = 'bos' | 'eos' | 'pad' | 'unk';

/** The token text of each special role, or null when the tokenizer has none. */
export type SpecialTokens = Record<SpecialRole, string | null>;

/** Names tried, in order, when the config does not say which token plays a role. */
const KNOWN_NAMES: Record<SpecialRole, readonly string[]> = {
  bos: ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>'],
  eos: ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'],
  pad: ['<pad>', '<|pad|>', '[PAD]'],
  unk: ['<unk>', '[UNK]'],
};

function configContent(value: ConfigTokenJson | undefined, role: SpecialRole): string | null | undefined {
  if (value === undefined || value === null || typeof value === 'string') return value;
  if (typeof value === 'object' && !Array.isArray(value) && typeof value.content === 'string') return value.content;
  throw new TokenizerFormatError(`tokenizer_config ${role}_token must be a string, an object with a string "content", or null`);
}

/**
 * Resolves the special tokens of a tokenizer. A role named in `config` must exist in the
 * vocabulary (or the added tokens); a role the config leaves out is filled from the model's
 * `unk_token` (for unk) or the first known name present; an explicit null means "none".
 */
export function resolveSpecialTokens(json: TokenizerJson, config: TokenizerConfigJson = {}): SpecialTokens {
  const known = (token: string): boolean =>
    Object.hasOwn(json.model.vocab, token) || json.added_tokens.some((t) => t.content === token);
  const resolve = (role: SpecialRole): string | null => {
    const fromConfig = configContent(config[`${role}_token`], role);
    if (fromConfig === null) return null;
    if (fromConfig !== undefined) {
      if (!known(fromConfig)) {
        throw new TokenizerFormatError(`tokenizer_config ${role}_token ${JSON.stringify(fromConfig)} is not in the vocabulary`);
      }
      return fromConfig;
    }
    if (role === 'unk' && typeof json.model.unk_token === 'string') return json.model.unk_token;
    return KNOWN_NAMES[role].find(known) ?? null;
  };
  return { bos: resolve('bos'), eos: resolve('eos'), pad: resolve('pad'), unk: resolve('unk') };
}
