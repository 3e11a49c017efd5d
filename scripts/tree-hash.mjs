#!/usr/bin/env node
// Prints the hash of exactly what scripts/stage-image.sh puts into the image (the built dist/src and
// dist/injector, the native addons, bin, proto, schema, the chart, package.json and package-lock.json).
// `npm run image` labels the image with it (io.sidewall.tree-hash); the e2e harness and `npm run demo`
// compare it with the working tree's before they run the image, so a stale image is never run silently.
// Node's own modules only: it runs before `npm ci` has finished in some callers.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const inputs = ['package.json', 'package-lock.json', 'bin', 'proto', 'schema', 'charts/sidewall', 'dist/src', 'dist/injector', 'build/Release'];

function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

const hash = createHash('sha256');
for (const input of inputs) {
  for (const file of files(join(root, input))) {
    const rel = relative(root, file);
    // build/Release holds the compiler's intermediates too; only the addons are staged.
    if (rel.startsWith('build/') && !/^build\/Release\/[^/]+\.node$/.test(rel)) continue;
    // stage-image.sh deletes these before the image is made: a rebuilt map must not make it stale.
    if (/\.(d\.ts|d\.mts|d\.cts|map|tsbuildinfo)$/.test(rel) || /\.md$/i.test(rel)) continue;
    hash.update(`${rel}\0`);
    hash.update(readFileSync(file));
    hash.update('\0');
  }
}
process.stdout.write(`${hash.digest('hex').slice(0, 32)}\n`);
