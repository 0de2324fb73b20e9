// Writing a whole output directory atomically: everything goes into a hidden sibling first,
// which is renamed into place only when complete.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from './errors.js';

/** Throws a UsageError when `dir` exists and is not an empty directory. */
export function assertFreshOutput(dir: string, flag = 'out'): void {
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
    throw new UsageError(`--${flag} ${dir} already exists and is not empty; choose a new directory`);
  }
}

/** Calls `fill` with a temporary directory, then renames it to `dir` (which must be new or empty). */
export function writeDirectoryAtomically(dir: string, fill: (tmp: string) => void): void {
  const target = resolve(dir);
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    if (existsSync(target)) rmSync(target, { recursive: true }); // empty, checked by the caller
    renameSync(tmp, target);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
}
