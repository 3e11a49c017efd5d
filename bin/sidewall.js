#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci` through `prepare`).
// A command is over when its run() resolves: exit then (after stdout is flushed), rather than
// wait for every timer or socket a library may have left behind.
import { main } from '../dist/src/cli/main.js';

function exit(code) {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(
  (code) => exit(code ?? 0),
  (err) => {
    process.stderr.write(`sidewall: ${err instanceof Error ? err.message : String(err)}\n`);
    exit(1);
  },
);
