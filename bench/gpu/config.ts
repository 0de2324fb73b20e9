// What the GPU benchmark of our kernels measures, read from BLORA_BENCH_* environment variables
// so quick runs can shrink shapes and repeat counts. The defaults match peers.py's.

/** Measurement groups of our side, in the order they run. */
export const OUR_GROUPS = ['copy', 'gemm', 'elementwise', 'reduce', 'pool'] as const;

/** One measurement group. */
export type OurGroup = (typeof OUR_GROUPS)[number];

/** How a GEMM's operands are stored (see `parseGemmCase`). */
export type GemmLayout = 'xWt' | 'dyW';

/** One GEMM case: C[M,N] = A[M,K] . B[K,N] with B stored as `layout` says. */
export interface GemmCase {
  /** xWt: B is W^T with W stored [N, K] (a Linear layer's forward); dyW: B = W stored [K, N] (its input gradient). */
  readonly layout: GemmLayout;
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

/** Everything the benchmark needs to know, resolved from the environment. */
export interface BenchConfig {
  /** Where the JSON report goes. */
  readonly out: string;
  /** Fewer repeats and warm-up calls. */
  readonly quick: boolean;
  readonly groups: readonly OurGroup[];
  /** Timed repeats per figure (the median is reported). */
  readonly repeats: number;
  /** Untimed calls before timing. */
  readonly warmup: number;
  /** Bytes of the tensor our copy kernel copies. */
  readonly copyBytes: number;
  /** Elements of the add / sum tensors. */
  readonly elements: number;
  /** Length of the last dim that `sum` reduces; `elements / rowLength` rows. */
  readonly rowLength: number;
  readonly gemmCases: readonly GemmCase[];
  readonly gemmDTypes: readonly ('bfloat16' | 'float32')[];
  /** The GPU's L2 size in bytes; small inputs rotate over copies totalling `l2Multiple` times it. */
  readonly l2Bytes: number;
  readonly l2Multiple: number;
}

/** LLaMA-7B linear layers as weight shapes [out_features, in_features]: q/k/v/o, gate/up, down. */
export const LAYER_WEIGHTS: readonly (readonly [number, number])[] = [[4096, 4096], [11008, 4096], [4096, 11008]];

/** The default GEMM cases at M tokens: both layouts of each layer (the 4096 x 4096 one is 4096^3). */
export function defaultGemmCases(m = 4096): string {
  return LAYER_WEIGHTS.flatMap(([outF, inF]) => [`xWt:${m}x${inF}x${outF}`, `dyW:${m}x${outF}x${inF}`]).join(',');
}

/** Parses 'xWt:MxKxN' or 'dyW:MxKxN'. */
export function parseGemmCase(text: string): GemmCase {
  const match = /^(xWt|dyW):(\d+)x(\d+)x(\d+)$/i.exec(text.trim());
  if (!match) throw new Error(`bad GEMM case '${text}': expected xWt:MxKxN or dyW:MxKxN`);
  const layout = match[1]!.toLowerCase() === 'xwt' ? 'xWt' : 'dyW';
  const [m, k, n] = [match[2], match[3], match[4]].map(Number) as [number, number, number];
  if (m <= 0 || k <= 0 || n <= 0) throw new Error(`bad GEMM case '${text}': dims must be positive`);
  return { layout, m, k, n };
}

/** The id both suites give a GEMM figure, e.g. 'gemm.bf16.xWt.4096x4096x11008'. */
export function gemmId(dtype: 'bfloat16' | 'float32', c: GemmCase): string {
  return `gemm.${dtype === 'bfloat16' ? 'bf16' : 'fp32'}.${c.layout}.${c.m}x${c.k}x${c.n}`;
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return value;
}

function list(env: NodeJS.ProcessEnv, name: string, fallback: string): string[] {
  return (env[name] || fallback).split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** Reads the configuration from `env` (BLORA_BENCH_* variables; see bench/README.md). */
export function readConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const quick = env.BLORA_BENCH_QUICK === '1' || env.BLORA_BENCH_QUICK === 'true';
  const groups = list(env, 'BLORA_BENCH_GROUPS', OUR_GROUPS.join(','));
  for (const g of groups) {
    if (!(OUR_GROUPS as readonly string[]).includes(g)) {
      throw new Error(`BLORA_BENCH_GROUPS: unknown group '${g}' (known: ${OUR_GROUPS.join(', ')})`);
    }
  }
  const dtypes = list(env, 'BLORA_BENCH_GEMM_DTYPES', 'bfloat16,float32');
  for (const d of dtypes) {
    if (d !== 'bfloat16' && d !== 'float32') throw new Error(`BLORA_BENCH_GEMM_DTYPES: unknown dtype '${d}'`);
  }
  const elements = positiveInteger(env, 'BLORA_BENCH_ELEMENTS', 256 * 1024 * 1024);
  const rowLength = positiveInteger(env, 'BLORA_BENCH_ROW_LENGTH', 4096);
  if (elements % rowLength !== 0) throw new Error('BLORA_BENCH_ELEMENTS must be a multiple of BLORA_BENCH_ROW_LENGTH');
  const l2Multiple = Number(env.BLORA_BENCH_L2_MULTIPLE || 4);
  if (!(l2Multiple > 0)) throw new Error('BLORA_BENCH_L2_MULTIPLE must be a positive number');
  return {
    out: env.BLORA_BENCH_OUT || 'bench/results/gpu-ours.json',
    quick,
    groups: groups as OurGroup[],
    repeats: positiveInteger(env, 'BLORA_BENCH_REPEATS', quick ? 5 : 20),
    warmup: positiveInteger(env, 'BLORA_BENCH_WARMUP', quick ? 2 : 5),
    copyBytes: positiveInteger(env, 'BLORA_BENCH_COPY_BYTES', 1024 ** 3),
    elements,
    rowLength,
    gemmCases: list(env, 'BLORA_BENCH_GEMM_CASES', defaultGemmCases()).map(parseGemmCase),
    gemmDTypes: dtypes as ('bfloat16' | 'float32')[],
    l2Bytes: positiveInteger(env, 'BLORA_BENCH_L2_BYTES', 60 * 1024 * 1024),
    l2Multiple,
  };
}

/** How many copies of an input set make at least `multiple` times the L2 together (at most `cap`). */
export function copiesFor(setBytes: number, config: BenchConfig, cap = 64): number {
  return Math.max(1, Math.min(cap, Math.ceil((config.l2Multiple * config.l2Bytes) / Math.max(setBytes, 1))));
}
