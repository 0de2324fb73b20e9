/**
 * Loads the tokenizer code of @blora/models straight from its TypeScript sources, so the
 * data scripts need no package build (the rest of that package depends on packages that
 * may not be built). The sources are transpiled, without type checking, into
 * node_modules/.cache/blora-tokenizer, where package imports still resolve.
 *
 * @module
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = join(import.meta.dirname, '..', '..', '..');
const sourceDir = join(root, 'packages', 'models', 'src', 'tokenizer');
const outDir = join(root, 'node_modules', '.cache', 'blora-tokenizer');

/**
 * Transpiles and imports packages/models/src/tokenizer/index.ts.
 * @returns {Promise<typeof import('../../../packages/models/src/tokenizer/index.js')>}
 */
export async function loadTokenizerModule() {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  for (const file of readdirSync(sourceDir).filter((name) => name.endsWith('.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(join(sourceDir, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      fileName: file,
    });
    writeFileSync(join(outDir, file.replace(/\.ts$/, '.js')), outputText);
  }
  writeFileSync(join(outDir, 'package.json'), '{ "type": "module" }\n');
  return import(pathToFileURL(join(outDir, 'index.js')).href);
}
