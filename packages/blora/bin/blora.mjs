#!/usr/bin/env node
// The `blora` command: runs the built command line (npm run build first).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
