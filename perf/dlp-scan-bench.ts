// The DLP scanner alone (MessageScanner: decoding + the sensors, no HTTP parsing): a 1 MiB
// realistic JSON body (the body of dlp-bench.ts) in 64 KiB and 1460-byte reads, all six built-ins,
// pci-pan alone, and gzip. MiB per CPU-second (process.cpuUsage), so the result holds on a shared,
// loaded machine. With `--baseline DIR` (a built checkout) both builds run in interleaved rounds
// and the medians are compared: the A/B for a change of the sensors or the scanner.
//   npm run build && node dist/perf/dlp-scan-bench.js [--baseline DIR] [--rounds 9]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { cleanBody } from './dlp-corpus.js';

type Dlp = typeof import('../src/content/dlp/index.js');
const argAt = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BASELINE = argAt('--baseline');
const ROUNDS = Number(argAt('--rounds') ?? 9);
const MS_PER_CASE = 400;

const load = async (root: string): Promise<Dlp> => (await import(pathToFileURL(resolve(root, 'src/content/dlp/index.js')).href)) as Dlp;
const builds: Array<[string, Dlp]> = [['this', await load(resolve(import.meta.dirname, '..'))]];
if (BASELINE !== undefined) builds.unshift(['baseline', await load(resolve(BASELINE, 'dist'))]);

const plain = cleanBody(1024 * 1024);
const gz = gzipSync(plain);
const ALL = ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'];
const CASES: Array<{ chunk: number; label: string; sensors: string[]; data: Buffer; gzip: boolean }> = [];
for (const chunk of [65536, 1460]) {
  CASES.push({ chunk, label: '6 built-ins', sensors: ALL, data: plain, gzip: false });
  CASES.push({ chunk, label: 'pci-pan only', sensors: ['pci-pan'], data: plain, gzip: false });
  CASES.push({ chunk, label: '6 built-ins, gzip', sensors: ALL, data: gz, gzip: true });
}

/** MiB of decoded body per CPU-second for one case. */
function measure(dlp: Dlp, c: (typeof CASES)[number]): number {
  const engine = new dlp.DlpEngine({ ...dlp.DEFAULT_DLP, sensors: c.sensors, patterns: [] });
  const scope = engine.scope('egress', [], false)!;
  const headers: Array<[string, string]> = c.gzip ? [['content-encoding', 'gzip']] : [];
  const once = (): void => {
    const scanner = engine.body(scope, 'request-body', headers, false)!;
    const hits: import('../src/content/dlp/index.js').DlpHit[] = [];
    for (let at = 0; at < c.data.length; at += c.chunk) scanner.push(c.data.subarray(at, at + c.chunk), hits);
    scanner.end(hits);
    if (hits.length > 0) throw new Error(`the clean body hit ${hits[0]!.sensor}`);
  };
  once();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < MS_PER_CASE) {
    once();
    n++;
  }
  const cpu = process.cpuUsage(cpu0);
  return n / ((cpu.user + cpu.system) / 1e6);
}

const results = builds.map(() => CASES.map(() => [] as number[]));
for (let round = 0; round < ROUNDS; round++) {
  for (let j = 0; j < builds.length; j++) {
    const i = round % 2 === 0 ? j : builds.length - 1 - j; // which build goes first alternates
    CASES.forEach((c, k) => results[i]![k]!.push(measure(builds[i]![1], c)));
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`DLP scanner alone, 1 MiB JSON body, MiB per CPU-second, median of ${ROUNDS} rounds, node ${process.version}`);
CASES.forEach((c, k) => {
  const cols = builds.map(([name], i) => `${name} ${median(results[i]![k]!).toFixed(0).padStart(4)}`).join('  ');
  const ratio = builds.length === 2 ? `  ${(median(results[1]![k]!) / median(results[0]![k]!)).toFixed(2)}×` : '';
  console.log(`${`${c.chunk}-byte reads, ${c.label}`.padEnd(36)} ${cols}${ratio}`);
});
