// Runs everywhere, GPU or not: the names the native sources register on the addon and the methods
// NativeAddon (src/native.ts) declares are the same, each once. Two bindings registered under one
// name replace each other silently (Nan::SetMethod), which once left the benchmarks' graph timer
// reading another binding's table.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageRoot = fileURLToPath(new URL('..', import.meta.url));

/** Every name registered on the addon's exports, in source order (with repeats). */
function registeredNames(): string[] {
  const dir = join(packageRoot, 'native');
  const names: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cc')).sort()) {
    const source = readFileSync(join(dir, file), 'utf8');
    for (const m of source.matchAll(/Nan::SetMethod\(target, "(\w+)"/g)) names.push(m[1]!);
    for (const m of source.matchAll(/Nan::Set\(target, Nan::New\("(\w+)"\)/g)) names.push(m[1]!);
  }
  return names;
}

/** Every member NativeAddon declares (with repeats: TypeScript takes a repeated method as an overload). */
function declaredNames(): string[] {
  const source = readFileSync(join(packageRoot, 'src', 'native.ts'), 'utf8');
  const start = source.indexOf('export interface NativeAddon {');
  const end = source.indexOf('\n}\n', start);
  expect(start).toBeGreaterThanOrEqual(0);
  return [...source.slice(start, end).matchAll(/^ {2}(?:readonly )?(\w+)[(:]/gm)].map((m) => m[1]!);
}

function repeated(names: string[]): string[] {
  return [...new Set(names.filter((n, i) => names.indexOf(n) !== i))].sort();
}

describe('the native bindings', () => {
  it('register each name once, and exactly the names NativeAddon declares, each declared once', () => {
    const registered = registeredNames();
    const declared = declaredNames();
    expect(registered.length).toBeGreaterThan(50);
    expect(repeated(registered)).toEqual([]);
    expect(repeated(declared)).toEqual([]);
    expect([...new Set(declared)].sort()).toEqual([...new Set(registered)].sort());
  });

  it('would catch a name registered twice (the check itself)', () => {
    expect(repeated(['graphBegin', 'graphEnd', 'graphBegin'])).toEqual(['graphBegin']);
  });
});
