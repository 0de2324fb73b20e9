/**
 * The slice of `@huggingface/tokenizers` this package uses, with its types spelled out here:
 * the library's own declaration files use extensionless relative imports, which NodeNext
 * resolution cannot follow, so without this its exports would type as `any`.
 *
 * @module
 */
import * as library from '@huggingface/tokenizers';

/** Result of the library's `encode`. */
export interface PipelineEncoding {
  ids: number[];
  tokens: string[];
}

/** A tokenizer instance of the library: the full normalize / split / BPE / decode pipeline. */
export interface Pipeline {
  encode(text: string, options: { add_special_tokens: boolean }): PipelineEncoding;
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
}

/** The library's `Tokenizer` constructor: a `tokenizer.json` document and a `tokenizer_config.json` one. */
export const PipelineTokenizer = library.Tokenizer as unknown as new (
  tokenizerJson: object,
  tokenizerConfig: object,
) => Pipeline;
