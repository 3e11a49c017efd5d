// The proxy's default V8 young-generation size (issue 18: RSS ≤ 50 MiB idle, ≤ 100 MiB with 1,000
// connections, by default). Node lets each of the young generation's semi-spaces grow from 1 to
// 16 MiB; under load it does, and the process keeps the pages: +25 MiB of RSS idle after a burst.
// Held at 1 MiB per semi-space, as `--max-semi-space-size=1` does, but for every way the proxy is
// launched (the image's entrypoint, the demo, the tests, `node bin/sidewall.js`): the heap is
// configured before any of our code runs, so the growth factor is what can still be set — V8
// reads it each time it would grow the semi-spaces (heap/new-spaces.cc), and at 1 they stay at
// their initial size. An operator's own semi-space flag (injector `proxyNodeOptions`, chart
// `sidecar.nodeOptions`, which become NODE_OPTIONS) wins: then nothing is set here.
import { setFlagsFromString } from 'node:v8';

/** True when the process was started with a flag that sizes the young generation itself. */
export function hasYoungGenerationFlag(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const sizes = /^--(max|min)[-_]semi[-_]space[-_]size\b|^--semi[-_]space[-_]growth[-_]factor\b/;
  return [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].some((flag) => sizes.test(flag));
}

export function capYoungGeneration(execArgv: readonly string[] = process.execArgv, nodeOptions: string | undefined = process.env.NODE_OPTIONS): boolean {
  if (hasYoungGenerationFlag(execArgv, nodeOptions)) return false;
  setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}
