/**
 * Seeded damage to JSON documents, for fuzz tests of the readers of untrusted files
 * (config.json, tokenizer.json, adapter_config.json, JSONL data): byte flips, truncations,
 * values of the wrong type, huge and negative numbers, deep nesting, dropped keys and long
 * values. Every mutation is a pure function of the document and the random stream, so a
 * failing case can be replayed from its seed and iteration.
 *
 * @module
 */
import { seededRandom } from './testing.js';

/** The kinds of damage `mutateJson` does. */
export const JSON_MUTATIONS = ['bytes', 'structural', 'truncate', 'swap', 'huge', 'negative', 'nest', 'drop', 'long'] as const;

/** One kind of damage. */
export type JsonMutation = (typeof JSON_MUTATIONS)[number];

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
type Path = (string | number)[];

/** Characters that change the structure of a JSON text. */
const STRUCTURAL = '{}[]":,0123456789-+.eE \\nul';

/** Values of every JSON type, for type swaps (raw JSON text). */
const SWAP_VALUES: readonly (readonly [string, string])[] = [
  ['string', '"x"'], ['string', '""'], ['string', '"1e12"'], ['string', '"constructor"'], ['string', '"__proto__"'],
  ['number', '0'], ['number', '1'], ['number', '-3'], ['number', '2.5'],
  ['array', '[]'], ['array', '[1,"a",null]'],
  ['object', '{}'], ['object', '{"a":1}'],
  ['null', 'null'], ['boolean', 'true'], ['boolean', 'false'],
];

/** Numbers far outside any sensible size (raw JSON text; `1e400` parses as Infinity). */
const HUGE_NUMBERS = ['1e12', '1000000000', '2147483648', '4294967296', '9007199254740993', '1e308', '1e400', '1e-320', '123456789.5'];

/** Nesting depths tried: around a typical limit, and deep enough to overflow a recursive walk. */
const NEST_DEPTHS = [64, 65, 2_000, 20_000];

/** Long values: a 20 000-element array and a 100 000-character string. */
const LONG_ARRAY = `[${new Array<string>(20_000).fill('0').join(',')}]`;
const LONG_STRING = JSON.stringify('x'.repeat(100_000));

const SLOT = '@@fuzz-slot@@';

function typeOf(v: JsonValue): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function isContainer(v: JsonValue): v is JsonValue[] | { [key: string]: JsonValue } {
  return v !== null && typeof v === 'object';
}

function keysOf(v: JsonValue[] | { [key: string]: JsonValue }): (string | number)[] {
  return Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
}

function childOf(v: JsonValue, key: string | number): JsonValue {
  return (v as Record<string | number, JsonValue>)[key]!;
}

/** A node reached by a random walk from the root that stops at each level with probability 0.3. */
function randomPath(root: JsonValue, random: () => number): Path {
  const path: Path = [];
  let node = root;
  while (isContainer(node) && keysOf(node).length > 0 && (path.length === 0 || random() < 0.7)) {
    const keys = keysOf(node);
    const key = keys[Math.floor(random() * keys.length)]!;
    path.push(key);
    node = childOf(node, key);
  }
  return path;
}

/** Every path to a number in `root` (iterative, so deep documents are fine). */
function numberPaths(root: JsonValue): Path[] {
  const out: Path[] = [];
  const stack: [JsonValue, Path][] = [[root, []]];
  while (stack.length) {
    const [node, path] = stack.pop()!;
    if (typeof node === 'number') out.push(path);
    else if (isContainer(node)) for (const k of keysOf(node)) stack.push([childOf(node, k), [...path, k]]);
  }
  return out;
}

function valueAt(root: JsonValue, path: Path): JsonValue {
  let node = root;
  for (const k of path) node = childOf(node, k);
  return node;
}

/** The document text with the node at `path` replaced by the raw JSON text `replacement`. */
function replaceAt(root: JsonValue, path: Path, replacement: string): string {
  if (path.length === 0) return replacement;
  const copy = JSON.parse(JSON.stringify(root)) as JsonValue;
  const parent = valueAt(copy, path.slice(0, -1)) as Record<string | number, JsonValue>;
  parent[path[path.length - 1]!] = SLOT;
  return JSON.stringify(copy).replace(JSON.stringify(SLOT), () => replacement);
}

/** The document text without the node at `path` (a key removed, or an array element). */
function dropAt(root: JsonValue, path: Path): string {
  if (path.length === 0) return '';
  const copy = JSON.parse(JSON.stringify(root)) as JsonValue;
  const parent = valueAt(copy, path.slice(0, -1));
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) parent.splice(key as number, 1);
  else delete (parent as Record<string, JsonValue>)[key as string];
  return JSON.stringify(copy);
}

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)]!;
}

function deepNest(depth: number, random: () => number): string {
  return random() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/**
 * A damaged copy of the JSON document `text` (UTF-8 bytes, as a file would hold them):
 * - `bytes`: 1-4 bytes set to random values (may break UTF-8, as a bad disk would);
 * - `structural`: 1-3 characters replaced, inserted or deleted with JSON punctuation;
 * - `truncate`: cut at a random byte;
 * - `swap`: a random value replaced by one of another JSON type;
 * - `huge` / `negative`: a number replaced by a huge one (1e12, 2^53 + 1, 1e400) or negated;
 * - `nest`: a random value replaced by arrays or objects nested up to 20 000 deep;
 * - `drop`: a random key (or array element) removed;
 * - `long`: a random value replaced by a 20 000-element array or a 100 000-character string.
 */
export function mutateJson(text: string, kind: JsonMutation, random: () => number): Uint8Array {
  const encoder = new TextEncoder();
  const int = (n: number): number => Math.floor(random() * n);
  if (kind === 'bytes') {
    const bytes = encoder.encode(text);
    for (let k = 1 + int(4); k > 0 && bytes.length > 0; k--) bytes[int(bytes.length)] = int(256);
    return bytes;
  }
  if (kind === 'structural') {
    let out = text;
    for (let k = 1 + int(3); k > 0; k--) {
      const at = int(out.length + 1);
      const c = STRUCTURAL[int(STRUCTURAL.length)]!;
      const op = int(3);
      out = op === 0 ? out.slice(0, at) + c + out.slice(at + 1) : op === 1 ? out.slice(0, at) + c + out.slice(at) : out.slice(0, at) + out.slice(at + 1);
    }
    return encoder.encode(out);
  }
  if (kind === 'truncate') {
    const bytes = encoder.encode(text);
    return bytes.slice(0, int(bytes.length));
  }
  const root = JSON.parse(text) as JsonValue;
  if (kind === 'huge' || kind === 'negative') {
    const numbers = numberPaths(root);
    const path = numbers.length ? pick(numbers, random) : randomPath(root, random);
    const current = valueAt(root, path);
    const replacement = kind === 'huge'
      ? pick(HUGE_NUMBERS, random)
      : typeof current === 'number' && current !== 0 && random() < 0.5 ? JSON.stringify(-current) : pick(['-1', '-1e12', '-0', '-2147483649'], random);
    return encoder.encode(replaceAt(root, path, replacement));
  }
  const path = randomPath(root, random);
  if (kind === 'swap') {
    const current = typeOf(valueAt(root, path));
    const choices = SWAP_VALUES.filter(([type]) => type !== current);
    return encoder.encode(replaceAt(root, path, pick(choices, random)[1]));
  }
  if (kind === 'nest') return encoder.encode(replaceAt(root, path, deepNest(pick(NEST_DEPTHS, random), random)));
  if (kind === 'drop') return encoder.encode(dropAt(root, path));
  const long = random() < 0.5 ? LONG_ARRAY : LONG_STRING;
  return encoder.encode(replaceAt(root, path, long));
}

/** What a fuzz run saw. */
export interface FuzzReport {
  /** Mutated documents that were accepted (and passed the consistency check). */
  accepted: number;
  /** Mutated documents rejected with a clean error. */
  rejected: number;
  /** Unclean outcomes: an unexpected error type or message, or an accepted result that is inconsistent. */
  problems: string[];
  /** Accepted / rejected counts per kind of damage. */
  byKind: Record<JsonMutation, { accepted: number; rejected: number }>;
}

/** How a fuzz run damages and tries its documents. */
export interface FuzzOptions {
  /** Mutated copies to try. */
  iterations: number;
  /** Seed of the mutations (a run replays exactly from it). */
  seed: number;
  /** Kinds of damage, used in turn (default: all). */
  kinds?: readonly JsonMutation[];
  /** Damages the document (default: `mutateJson` on the whole text). */
  mutate?: (text: string, kind: JsonMutation, random: () => number) => Uint8Array;
}

/**
 * Tries `iterations` damaged copies of `valid`. `attempt` reads one copy (bytes as a file
 * would hold them) and returns null when the result is consistent, or a description of what
 * is wrong with it; when it throws, `isClean` decides whether the error is an acceptable
 * rejection. Problems name the seed and iteration, so each can be replayed.
 */
export function fuzzJson(
  valid: string,
  options: FuzzOptions,
  attempt: (bytes: Uint8Array, iteration: number) => string | null,
  isClean: (error: unknown) => boolean,
): FuzzReport {
  const kinds = options.kinds ?? JSON_MUTATIONS;
  const mutate = options.mutate ?? mutateJson;
  const random = seededRandom(options.seed);
  const report: FuzzReport = {
    accepted: 0, rejected: 0, problems: [],
    byKind: Object.fromEntries(JSON_MUTATIONS.map((k) => [k, { accepted: 0, rejected: 0 }])) as FuzzReport['byKind'],
  };
  for (let i = 0; i < options.iterations; i++) {
    const kind = kinds[i % kinds.length]!;
    const bytes = mutate(valid, kind, random);
    const where = `seed ${options.seed}, iteration ${i} (${kind}): `;
    try {
      const inconsistency = attempt(bytes, i);
      if (inconsistency === null) {
        report.accepted += 1;
        report.byKind[kind].accepted += 1;
      } else {
        report.problems.push(where + inconsistency);
      }
    } catch (error) {
      if (isClean(error)) {
        report.rejected += 1;
        report.byKind[kind].rejected += 1;
      } else {
        const e = error as Error;
        report.problems.push(`${where}${e?.name ?? typeof error}: ${String(e?.message ?? error).slice(0, 300)}`);
      }
    }
  }
  return report;
}
