// DLP cost: a 1 MiB upload (HTTP/1.1 POST, content-length) through the L7 firewall of one
// connection (ConnectionFilter: detection, llhttp, the verdict, holding/releasing bytes) with DLP
// off (no `dlp:`, no rule names a sensor: the scanner is never created), and on (all six
// built-in sensors, action block, nothing sensitive in the body: the whole 1 MiB is scanned),
// plain and gzip. Bytes arrive in 64 KiB reads (the relay's read size) and in 1460-byte
// segments. In process, no sockets: this is the CPU the sidecar spends per uploaded byte, the
// part of an end-to-end upload that DLP changes: MiB per CPU-second (process.cpuUsage).
// With `--baseline DIR` (a built checkout of another commit) both builds run in interleaved
// rounds (`--rounds`, default 5; which build goes first alternates) and the medians are compared:
// an A/B of a DLP change on the same loaded machine.
//   npm run build && node dist/perf/dlp-bench.js [--seconds 2] [--baseline DIR --rounds 5]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { cleanBody } from './dlp-corpus.js';
import type { DlpEngine as Engine } from '../src/content/dlp/index.js';
import type { ConnectionFilter as Filter } from '../src/enforcement/connection-filter.js';
import type { FilterContext, FilterSink } from '../src/enforcement/types.js';
import type { CompiledPolicy } from '../src/policy/types.js';

const argAt = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const SECONDS = Number(argAt('--seconds') ?? 2);
const BASELINE = argAt('--baseline');
const ROUNDS = BASELINE === undefined ? 1 : Number(argAt('--rounds') ?? 5);
const MIB = 1024 * 1024;

interface Build {
  name: string;
  ConnectionFilter: new (ctx: FilterContext, sink: FilterSink, l4: ReturnType<CompiledPolicy['decideConnection']>) => Filter;
  policy: CompiledPolicy;
  engines: { off: Engine; on: Engine; custom: Engine };
}

/** The modules of a built tree (`root`: the directory holding src/ compiled, i.e. dist/). */
async function load(name: string, root: string): Promise<Build> {
  const url = (p: string): string => pathToFileURL(resolve(root, p)).href;
  const { DlpEngine, DEFAULT_DLP } = (await import(url('src/content/dlp/index.js'))) as typeof import('../src/content/dlp/index.js');
  const { ConnectionFilter } = (await import(url('src/enforcement/connection-filter.js'))) as typeof import('../src/enforcement/connection-filter.js');
  const { compilePolicy } = (await import(url('src/policy/index.js'))) as typeof import('../src/policy/index.js');
  const compiled = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'api', action: 'allow', http: { paths: ['/upload/**'] } }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in compiled)) throw new Error('rules');
  const all = ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'];
  return {
    name,
    ConnectionFilter,
    policy: compiled.policy,
    engines: {
      off: new DlpEngine({ ...DEFAULT_DLP, sensors: [], patterns: [] }),
      on: new DlpEngine({ ...DEFAULT_DLP, action: 'block', sensors: all, patterns: [] }),
      custom: new DlpEngine({ ...DEFAULT_DLP, action: 'block', sensors: [...all, 'acme'], patterns: [{ name: 'acme', pattern: 'ACME-[0-9]{8}' }] }),
    },
  };
}

const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 80 } };

const sink: FilterSink = { toServer() {}, toClient() {}, close() {}, request() {}, alert() {}, dlpAlert(a) { throw new Error(`the clean body hit a sensor: ${a.hit.sensor} ${a.hit.sample}`); } };

function request(payload: Buffer, gzip: boolean): Buffer {
  const head = `POST /upload/file HTTP/1.1\r\nhost: store\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n${gzip ? 'content-encoding: gzip\r\n' : ''}\r\n`;
  return Buffer.concat([Buffer.from(head), payload]);
}

/** MiB/s of body through one connection's filter, for SECONDS. */
function run(b: Build, bytes: Buffer, chunk: number, dlp: Engine, bodyBytes: number): number {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const response = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const policy = b.policy;
  const once = (): void => {
    const filter = new b.ConnectionFilter({ facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off', dlp }, sink, policy.decideConnection(facts));
    for (const c of chunks) filter.clientData(c);
    filter.serverData(response);
  };
  for (let i = 0; i < 3; i++) once(); // warm up
  let uploads = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() - t0 < SECONDS * 1000) {
    once();
    uploads++;
  }
  // CPU time of this process, not wall time: on a shared machine (other tests, a load average
  // of 15 on 2 cores) wall-clock MiB/s mostly measures the wait for a core.
  const cpu = process.cpuUsage(cpu0);
  return (uploads * bodyBytes) / MIB / ((cpu.user + cpu.system) / 1e6);
}

const plain = cleanBody(MIB);
const gz = gzipSync(plain);
const CASES = [
  { label: 'DLP off', engine: 'off', gzip: false },
  { label: 'DLP on (6 built-ins)', engine: 'on', gzip: false },
  { label: 'DLP on (6 built-ins + 1 RE2)', engine: 'custom', gzip: false },
  { label: 'DLP on, gzip body (decoded MiB/s)', engine: 'on', gzip: true },
] as const;
const READS = [[65536, '64 KiB reads'], [1460, '1460-byte segments']] as const;

const builds = [await load('this', resolve(import.meta.dirname, '..'))];
if (BASELINE !== undefined) builds.unshift(await load('baseline', resolve(BASELINE, 'dist')));
console.log(`1 MiB upload, ${SECONDS} s per case, ${ROUNDS} round(s), node ${process.version}; gzip body ${(gz.length / 1024).toFixed(0)} KiB${BASELINE !== undefined ? `; baseline ${BASELINE}` : ''}`);
/** results[build][read][case] = MiB/s per round */
const results = builds.map(() => READS.map(() => CASES.map(() => [] as number[])));
for (let round = 0; round < ROUNDS; round++) {
  for (let j = 0; j < builds.length; j++) {
    const i = round % 2 === 0 ? j : builds.length - 1 - j;
    const b = builds[i]!;
    READS.forEach(([chunk], r) => {
      CASES.forEach((c, k) => {
        results[i]![r]![k]!.push(run(b, request(c.gzip ? gz : plain, c.gzip), chunk, b.engines[c.engine], MIB));
      });
    });
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
READS.forEach(([, readName], r) => {
  console.log(`-- ${readName} (MiB per CPU-second${ROUNDS > 1 ? `, median of ${ROUNDS}` : ''})`);
  CASES.forEach((c, k) => {
    const cols = builds.map((b, i) => `${b.name} ${median(results[i]![r]![k]!).toFixed(0).padStart(5)}`);
    const ab = builds.length === 2 ? `  this/baseline ${(median(results[1]![r]![k]!) / median(results[0]![r]![k]!)).toFixed(2)}×` : '';
    console.log(`${c.label.padEnd(40)} ${cols.join('   ')}${ab}`);
  });
  builds.forEach((b, i) => {
    const off = median(results[i]![r]![0]!);
    console.log(`  ${b.name}: on/off ${(median(results[i]![r]![1]!) / off).toFixed(3)}×  with RE2 ${(median(results[i]![r]![2]!) / off).toFixed(3)}×  gzip ${(median(results[i]![r]![3]!) / off).toFixed(3)}×`);
  });
});
