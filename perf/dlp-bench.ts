// DLP cost: a 1 MiB upload (HTTP/1.1 POST, content-length) through the L7 firewall of one
// connection (ConnectionFilter: detection, llhttp, the verdict, holding/releasing bytes) with DLP
// off (no `dlp:`, no rule names a sensor: the scanner is never created), and on (all six
// built-in sensors, action block, nothing sensitive in the body: the whole 1 MiB is scanned),
// plain and gzip. Bytes arrive in 64 KiB reads (the relay's read size) and in 1460-byte
// segments. In process, no sockets: this is the CPU the sidecar spends per uploaded byte, the
// part of an end-to-end upload that DLP changes. Plain Node, performance.now().
//   npm run build && node dist/perf/dlp-bench.js [--seconds 2]
import { gzipSync } from 'node:zlib';
import { DEFAULT_DLP, DlpEngine } from '../src/content/dlp/index.js';
import { ConnectionFilter } from '../src/enforcement/connection-filter.js';
import type { FilterSink } from '../src/enforcement/types.js';
import { compilePolicy } from '../src/policy/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;
const MIB = 1024 * 1024;

const compiled = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'api', action: 'allow', http: { paths: ['/upload/**'] } }], defaultAction: 'deny', mode: 'protect' });
if (!('policy' in compiled)) throw new Error('rules');
const policy = compiled.policy;
const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 80 } };

/** A realistic JSON body: orders with ids, timestamps, phone numbers, amounts, a base64 blob. */
function body(size: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  let len = 0;
  while (len < size) {
    const doc = `{"orderId":"ORD-2026-${String(n).padStart(6, '0')}","ts":"2026-12-03T13:14:${String(n % 60).padStart(2, '0')}.123456Z","epochNs":${1764767655123456789n + BigInt(n)},"phone":"+1 (415) 555-${String(1000 + (n % 9000))}","amount":${(n * 13.37).toFixed(2)},"blob":"${Buffer.alloc(96, n % 251).toString('base64')}"},`;
    parts.push(doc);
    len += doc.length;
    n++;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

const sink: FilterSink = { toServer() {}, toClient() {}, close() {}, request() {}, alert() {}, dlpAlert(a) { throw new Error(`the clean body hit a sensor: ${a.hit.sensor} ${a.hit.sample}`); } };

function request(payload: Buffer, gzip: boolean): Buffer {
  const head = `POST /upload/file HTTP/1.1\r\nhost: store\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n${gzip ? 'content-encoding: gzip\r\n' : ''}\r\n`;
  return Buffer.concat([Buffer.from(head), payload]);
}

function run(label: string, bytes: Buffer, chunk: number, dlp: DlpEngine | null, bodyBytes: number): number {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const response = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const once = (): void => {
    const filter = new ConnectionFilter({ facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off', ...(dlp ? { dlp } : {}) }, sink, policy.decideConnection(facts));
    for (const c of chunks) filter.clientData(c);
    filter.serverData(response);
  };
  for (let i = 0; i < 3; i++) once(); // warm up
  let uploads = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    once();
    uploads++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const mibPerSecond = (uploads * bodyBytes) / MIB / seconds;
  console.log(`${label.padEnd(44)} ${mibPerSecond.toFixed(0).padStart(6)} MiB/s  (${((seconds * 1e6) / uploads).toFixed(0)} µs per 1 MiB upload)`);
  return mibPerSecond;
}

const plain = body(MIB);
const gz = gzipSync(plain);
const off = new DlpEngine({ ...DEFAULT_DLP, sensors: [], patterns: [] });
const on = new DlpEngine({ ...DEFAULT_DLP, action: 'block', sensors: ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'], patterns: [] });
const custom = new DlpEngine({ ...DEFAULT_DLP, action: 'block', sensors: ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban', 'acme'], patterns: [{ name: 'acme', pattern: 'ACME-[0-9]{8}' }] });
console.log(`1 MiB upload, ${SECONDS} s per case, node ${process.version}; gzip body ${(gz.length / 1024).toFixed(0)} KiB`);
for (const [chunk, name] of [[65536, '64 KiB reads'], [1460, '1460-byte segments']] as const) {
  const a = run(`DLP off, ${name}`, request(plain, false), chunk, off, MIB);
  const b = run(`DLP on (6 built-ins), ${name}`, request(plain, false), chunk, on, MIB);
  const c = run(`DLP on (6 built-ins + 1 RE2), ${name}`, request(plain, false), chunk, custom, MIB);
  const d = run(`DLP on, gzip body (decoded MiB/s), ${name}`, request(gz, true), chunk, on, MIB);
  console.log(`  on/off: ${(b / a).toFixed(3)}×  with RE2: ${(c / a).toFixed(3)}×  gzip: ${(d / a).toFixed(3)}×`);
}
