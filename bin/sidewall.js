#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci` through `prepare`).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { if (code !== undefined) process.exitCode = code; },
  (err) => {
    process.stderr.write(`sidewall: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
