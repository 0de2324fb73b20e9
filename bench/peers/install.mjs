// Installs the peer libraries the CPU suites compare against into bench/.peers/ (git-ignored),
// at exact versions, without their install scripts: onnxruntime-node ships its CPU binary in
// the package, and its script only fetches GPU files. They are never dependencies of the
// workspace; a suite skips a peer that is not installed.
//
//   npm run bench:peers            (from bench/, or `npm run bench:peers -w @blora/bench`)
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { PEERS, PEERS_DIR } from './load.mjs';

mkdirSync(PEERS_DIR, { recursive: true });
const specs = Object.entries(PEERS).map(([name, version]) => `${name}@${version}`);
console.log(`installing ${specs.join(', ')} into ${PEERS_DIR}`);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const result = spawnSync(
  npm,
  ['install', '--prefix', PEERS_DIR, '--ignore-scripts', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', ...specs],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
