// Where the package's embedded assets live (the same relative place from src/ and dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The package's `assets/` directory. */
export const ASSETS_DIR = fileURLToPath(new URL('../../assets/', import.meta.url));

/** The embedded tiny Llama model (a Hugging Face checkpoint directory). */
export const EMBEDDED_MODEL = fileURLToPath(new URL('../../assets/tiny-llama', import.meta.url));

/** The embedded WordNet instruction set (Alpaca JSONL). */
export const EMBEDDED_DATA = fileURLToPath(new URL('../../assets/wordnet-task/train.jsonl', import.meta.url));

/** The embedded 4-choice WordNet test. */
export const EMBEDDED_MC = fileURLToPath(new URL('../../assets/wordnet-task/test-mc.jsonl', import.meta.url));

/** `path` when it exists, else null. */
export function existing(path: string): string | null {
  return existsSync(path) ? path : null;
}
