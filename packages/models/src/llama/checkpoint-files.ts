// The safetensors files of a Hugging Face checkpoint directory: `model.safetensors`, or the
// shards listed in `model.safetensors.index.json`. Tensors are read one at a time.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, type SafetensorsDType, type SafetensorsEntry, type Tensor } from '@blora/tensor';

/** File name of an unsharded checkpoint. */
export const SINGLE_FILE = 'model.safetensors';
/** File name of the shard index of a sharded checkpoint. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** Where a tensor is stored. */
export interface StoredTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Path of the file holding it. */
  file: string;
}

/** A checkpoint that cannot be used; the message names the file (and tensor). */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/**
 * The tensors of a checkpoint directory with their files. Headers are read and validated
 * when it is opened (so truncated or malformed files fail before any tensor is read); data
 * is read per tensor by `read`. Call `close()` when done.
 */
export class CheckpointFiles {
  private readonly readers = new Map<string, SafetensorsReader>();
  private readonly where = new Map<string, StoredTensor>();

  private constructor(
    /** The directory. */
    readonly dir: string,
    /** The index file, or null for a single file. */
    readonly indexFile: string | null,
  ) {}

  /** Opens `dir/model.safetensors` or the shards of `dir/model.safetensors.index.json`. */
  static open(dir: string): CheckpointFiles {
    const index = join(dir, INDEX_FILE);
    const single = join(dir, SINGLE_FILE);
    if (existsSync(single)) {
      const files = new CheckpointFiles(dir, null);
      files.addFile(single, null);
      return files;
    }
    if (!existsSync(index)) {
      throw new CheckpointError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} found`);
    }
    const files = new CheckpointFiles(dir, index);
    try {
      files.addIndex(index);
    } catch (e) {
      files.close();
      throw e;
    }
    return files;
  }

  /** Every stored tensor, by name. */
  tensors(): Map<string, StoredTensor> {
    return new Map(this.where);
  }

  /** Where `name` is stored; throws naming the checkpoint when it is absent. */
  stored(name: string): StoredTensor {
    const s = this.where.get(name);
    if (!s) throw new CheckpointError(`${this.indexFile ?? join(this.dir, SINGLE_FILE)}: no tensor named '${name}'`);
    return s;
  }

  /** Reads `name` as a new tensor in its stored dtype (or converted to the float `dtype`). */
  read(name: string, options: { device?: string; dtype?: Tensor['dtype'] } = {}): Tensor {
    const s = this.stored(name);
    return this.readers.get(s.file)!.readTensor(name, options);
  }

  /** The open reader of the file holding `name` (for its metadata and raw entries); owned by this object. */
  readerOf(name: string): SafetensorsReader {
    return this.readers.get(this.stored(name).file)!;
  }

  /** Closes every file. */
  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }

  private addFile(path: string, listed: Set<string> | null): void {
    const reader = SafetensorsReader.open(path);
    this.readers.set(path, reader);
    for (const [name, entry] of reader.entries as Map<string, SafetensorsEntry>) {
      if (listed && !listed.has(name)) {
        throw new CheckpointError(`${path}: tensor '${name}' is not listed for this file in ${this.indexFile}`);
      }
      this.where.set(name, { name, dtype: entry.dtype, shape: [...entry.shape], file: path });
    }
  }

  private addIndex(index: string): void {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(index, 'utf8'));
    } catch (e) {
      throw new CheckpointError(`${index}: cannot read the shard index (${(e as Error).message})`);
    }
    const map = (json as { weight_map?: unknown } | null)?.weight_map;
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      throw new CheckpointError(`${index}: expected an object with a 'weight_map' of tensor name -> shard file`);
    }
    const byFile = new Map<string, Set<string>>();
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.length === 0 || file.includes('/') || file.includes('\\')) {
        throw new CheckpointError(`${index}: tensor '${name}' maps to an invalid shard file name ${JSON.stringify(file)}`);
      }
      if (!byFile.has(file)) byFile.set(file, new Set());
      byFile.get(file)!.add(name);
    }
    for (const [file, names] of byFile) {
      const path = join(this.dir, file);
      if (!existsSync(path)) {
        throw new CheckpointError(`${index}: shard ${file} (holding '${[...names][0]}') does not exist in ${this.dir}`);
      }
      this.addFile(path, names);
      for (const name of names) {
        if (this.where.get(name)?.file !== path) {
          throw new CheckpointError(`${path}: tensor '${name}' is listed in ${index} but missing from this shard`);
        }
      }
    }
  }
}
