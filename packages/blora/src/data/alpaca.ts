// Alpaca-style instruction data: one JSON object per line with `instruction`, an optional
// `input` and `output`. Every problem is reported with the file name and the line number.
import { readFileSync } from 'node:fs';

/** One instruction-following example. */
export interface AlpacaExample {
  /** What to do. */
  instruction: string;
  /** Extra context for the instruction ('' when there is none). */
  input: string;
  /** The desired response. */
  output: string;
}

/** A malformed data file; the message names the file and the 1-based line. */
export class DataFormatError extends Error {
  override readonly name = 'DataFormatError';

  constructor(
    /** The file (or label) the text came from. */
    readonly file: string,
    /** The 1-based line number of the problem. */
    readonly line: number,
    problem: string,
  ) {
    super(`${file}:${line}: ${problem}`);
  }
}

/** Parses one line already known to hold a JSON object; returns the object or throws DataFormatError. */
export function parseJsonObjectLine(text: string, file: string, line: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DataFormatError(file, line, `not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataFormatError(file, line, `expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Calls `visit` for each non-blank line of `text` with its 1-based line number. Blank lines
 * (and a trailing newline) are skipped; a byte-order mark at the start is ignored.
 */
export function forEachJsonLine(text: string, file: string, visit: (obj: Record<string, unknown>, line: number) => void): void {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((raw, i) => {
    const content = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (content.trim() === '') return;
    visit(parseJsonObjectLine(content, file, i + 1), i + 1);
  });
}

function stringField(obj: Record<string, unknown>, key: string, required: boolean, file: string, line: number): string {
  const value = obj[key];
  if (value === undefined || value === null) {
    if (required) throw new DataFormatError(file, line, `missing field "${key}" (an Alpaca line needs "instruction" and "output", "input" is optional)`);
    return '';
  }
  if (typeof value !== 'string') throw new DataFormatError(file, line, `field "${key}" must be a string, got ${typeof value}`);
  return value;
}

/** Parses Alpaca JSONL text; `file` names the source in error messages. Throws DataFormatError. */
export function parseAlpacaJsonl(text: string, file = '<text>'): AlpacaExample[] {
  const out: AlpacaExample[] = [];
  forEachJsonLine(text, file, (obj, line) => {
    out.push({
      instruction: stringField(obj, 'instruction', true, file, line),
      input: stringField(obj, 'input', false, file, line),
      output: stringField(obj, 'output', true, file, line),
    });
  });
  if (out.length === 0) throw new DataFormatError(file, 1, 'the file holds no examples');
  return out;
}

/** Reads an Alpaca JSONL file. Throws DataFormatError naming the file and line of a bad record. */
export function readAlpacaJsonl(path: string): AlpacaExample[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read data file ${path}: ${(error as Error).message}`);
  }
  return parseAlpacaJsonl(text, path);
}
