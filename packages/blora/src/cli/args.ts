// Command-line flags: a declarative table per command (which also produces --help), parsed
// strictly with node's util.parseArgs, and typed readers that reject bad values with a message
// naming the flag.
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** One flag of a command. */
export interface FlagSpec {
  /** Name without the dashes (`grad-accum`). */
  name: string;
  /** 'string' takes a value; 'boolean' is a switch. */
  type: 'string' | 'boolean';
  /** Placeholder for the value in help (`N`, `DIR`). */
  value?: string;
  /** One-line description (the default is appended by `formatHelp`). */
  help: string;
  /** The default as shown in help (values are applied by the command). */
  defaultText?: string;
  /** Single-letter alias. */
  short?: string;
}

/** A command's name, summary and flags. */
export interface CommandSpec {
  /** The subcommand (`finetune`). */
  name: string;
  /** One sentence on what it does. */
  summary: string;
  /** The usage line. */
  usage: string;
  /** Its flags, in help order. */
  flags: readonly FlagSpec[];
  /** Extra paragraphs printed after the flags. */
  notes?: string;
}

/** Flag values by name, as strings or booleans; absent when not given. */
export type FlagValues = Record<string, string | boolean | undefined>;

/** The help text of a command. */
export function formatHelp(spec: CommandSpec): string {
  const rows = spec.flags.map((f) => {
    const left = `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
    const right = f.defaultText !== undefined ? `${f.help} (default: ${f.defaultText})` : f.help;
    return [left, right] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length), 10);
  const lines = [`Usage: ${spec.usage}`, '', spec.summary, '', 'Options:'];
  for (const [l, r] of rows) lines.push(`  ${l.padEnd(width)}  ${r}`);
  lines.push(`  ${'-h, --help'.padEnd(width)}  Show this help`);
  if (spec.notes) lines.push('', spec.notes);
  return `${lines.join('\n')}\n`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** The known flag closest to `given`, when it is close enough to be a likely typo. */
export function closestFlag(given: string, spec: CommandSpec): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const f of spec.flags) {
    const d = editDistance(given, f.name);
    if (d < bestDistance) [best, bestDistance] = [f.name, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(given.length / 3)) ? best : null;
}

/**
 * Parses `argv` (the arguments after the command name) against `spec`. Unknown flags,
 * missing values, repeated flags and positional arguments are UsageErrors that name the
 * problem, suggest a close flag and point to --help. Returns null when --help was asked for.
 */
export function parseFlags(spec: CommandSpec, argv: readonly string[]): FlagValues | null {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const f of spec.flags) options[f.name] = { type: f.type, multiple: true, ...(f.short ? { short: f.short } : {}) };
  const hint = `run 'blora ${spec.name} --help' for the list of options`;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  } catch (error) {
    const e = error as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'(-{1,2}[^']*)'/.exec(e.message)?.[1] ?? '';
      const close = closestFlag(flag.replace(/^-+/, '').split('=')[0]!, spec);
      throw new UsageError(`unknown option ${flag || '(?)'}${close ? ` (did you mean --${close}?)` : ''}; ${hint}`);
    }
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /'([^']*)'/.exec(e.message)?.[1] ?? '';
      throw new UsageError(`unexpected argument '${arg}' (every option is given as --name value); ${hint}`);
    }
    throw new UsageError(`${e.message.replace(/\.$/, '')}; ${hint}`);
  }
  const values = parsed.values as Record<string, (string | boolean)[] | boolean | undefined>;
  if (values.help) return null;
  const out: FlagValues = {};
  for (const f of spec.flags) {
    const v = values[f.name];
    if (v === undefined) continue;
    const list = Array.isArray(v) ? v : [v];
    if (list.length > 1) throw new UsageError(`--${f.name} was given ${list.length} times; give it once`);
    out[f.name] = list[0];
  }
  return out;
}

/** Reads typed flag values; every bad value is a UsageError naming the flag. */
export class FlagReader {
  constructor(private readonly values: FlagValues) {}

  /** True when the flag was given on the command line. */
  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  /** A string flag, or `fallback`. */
  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    const v = this.values[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
    return v;
  }

  /** A boolean switch (false when absent). */
  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** An integer flag within [min, max], or `fallback`. */
  int(name: string, fallback: number, min = -Infinity, max = Infinity): number {
    const text = this.string(name);
    if (text === undefined) return fallback;
    if (!/^[+-]?\d+$/.test(text.trim())) throw new UsageError(`--${name} must be an integer, got '${text}'`);
    const v = Number(text);
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new UsageError(`--${name} must be an integer ${describeRange(min, max)}, got ${text}`);
    }
    return v;
  }

  /** A finite number flag within [min, max] (or (min, max] when `exclusiveMin`), or `fallback`. */
  number(name: string, fallback: number, min = -Infinity, max = Infinity, exclusiveMin = false): number {
    const text = this.string(name);
    if (text === undefined) return fallback;
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got '${text}'`);
    if (v < min || v > max || (exclusiveMin && v === min)) {
      throw new UsageError(`--${name} must be ${exclusiveMin ? `> ${min}` : describeRange(min, max)}${exclusiveMin && max < Infinity ? ` and <= ${max}` : ''}, got ${text}`);
    }
    return v;
  }

  /** A flag restricted to `choices`, or `fallback`. */
  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T;
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined;
  choice<T extends string>(name: string, choices: readonly T[], fallback?: T): T | undefined {
    const text = this.string(name);
    if (text === undefined) return fallback;
    if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${text}'`);
    return text as T;
  }
}

function describeRange(min: number, max: number): string {
  if (min > -Infinity && max < Infinity) return `in [${min}, ${max}]`;
  if (min > -Infinity) return `>= ${min}`;
  if (max < Infinity) return `<= ${max}`;
  return '';
}
