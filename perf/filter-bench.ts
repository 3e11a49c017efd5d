// The L7 filter of one connection in process (detection → parser → enforcer → operations → sink),
// per request: HTTP/1.1 keep-alive and HTTP/2 streams, allowed by an http rule. With
// `--baseline DIR` (a built checkout, as for ab-bench.ts) both builds run in interleaved rounds,
// so a change of the enforcement core shows as a ratio. Run compiled: node dist/perf/filter-bench.js
// `--body BYTES` gives every request and response a body of that size (text up, binary down;
// HTTP/2: one DATA frame each way); `--tunnels` runs tunnel detection (block mode) on the
// connection, as a sidecar with `tunnels:` set does.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ConnectionFilter as Filter } from '../src/enforcement/connection-filter.js';
import type { FilterContext, FilterSink } from '../src/enforcement/types.js';
import type { CompileInput } from '../src/policy/compile.js';
import type { CompiledPolicy } from '../src/policy/types.js';

interface Build {
  name: string;
  ConnectionFilter: new (ctx: FilterContext, sink: FilterSink, l4: ReturnType<CompiledPolicy['decideConnection']>) => Filter;
  policy: CompiledPolicy;
  frames: typeof import('../src/protocols/http2/frames.js');
  hpack: typeof import('../src/protocols/http2/hpack-encoder.js');
  tunnels: typeof import('../src/tunnels/index.js');
}

const cli = process.argv.slice(2);
const BODY = cli.includes('--body') ? Number(cli[cli.indexOf('--body') + 1]) : 0;
const TUNNELS = cli.includes('--tunnels');
const REQUESTS = BODY > 4096 ? 5_000 : 20_000;
/** Bodies: log-like text up (capital S included), pseudo-random bytes down. */
const TEXT = Buffer.from('Session opened for user Sam from 10.1.2.3; SSL handshake ok. '.repeat(Math.ceil(BODY / 61)).slice(0, BODY));
const BINARY = Buffer.alloc(BODY);
for (let i = 0, x = 1; i < BODY; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  BINARY[i] = x & 0xff;
}
const ROUNDS = 15;
const SINK: FilterSink = { toServer() {}, toClient() {}, close() {}, request() {}, alert() {} };
const FACTS = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 80 } };

async function load(name: string, dist: string): Promise<Build> {
  const at = (p: string): string => pathToFileURL(resolve(dist, p)).href;
  const { ConnectionFilter } = (await import(at('src/enforcement/connection-filter.js'))) as typeof import('../src/enforcement/connection-filter.js');
  const { compilePolicy } = (await import(at('src/policy/compile.js'))) as { compilePolicy: (i: CompileInput) => { policy: CompiledPolicy } | { issues: unknown[] } };
  const compiled = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'api', action: 'allow', http: { paths: ['/api/**'] } }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in compiled)) throw new Error('rules do not compile');
  return {
    name,
    ConnectionFilter,
    policy: compiled.policy,
    frames: (await import(at('src/protocols/http2/frames.js'))) as Build['frames'],
    hpack: (await import(at('src/protocols/http2/hpack-encoder.js'))) as Build['hpack'],
    tunnels: (await import(at('src/tunnels/index.js'))) as Build['tunnels'],
  };
}

function filterOf(b: Build): Filter {
  const tunnels = TUNNELS ? b.tunnels.createTunnelDetection({ ports: {} }).forConnection(FACTS, undefined) : null;
  const ctx: FilterContext = { facts: FACTS, policy: () => b.policy, declaredProtocol: undefined, tunnels, dnsMonitor: null, tunnelMode: () => (TUNNELS ? 'block' : 'off') };
  return new b.ConnectionFilter(ctx, SINK, b.policy.decideConnection(FACTS));
}

/** µs per HTTP/1.1 request and response on one keep-alive connection. */
function http1(b: Build): number {
  const f = filterOf(b);
  const req = BODY === 0 ? Buffer.from('GET /api/items/1 HTTP/1.1\r\nhost: a\r\n\r\n') : Buffer.concat([Buffer.from(`POST /api/items/1 HTTP/1.1\r\nhost: a\r\ncontent-type: text/plain\r\ncontent-length: ${BODY}\r\n\r\n`), TEXT]);
  const res = BODY === 0 ? Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok') : Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${BODY}\r\n\r\n`), BINARY]);
  const t = performance.now();
  for (let i = 0; i < REQUESTS; i++) {
    f.clientData(req);
    f.serverData(res);
  }
  return ((performance.now() - t) * 1000) / REQUESTS;
}

/** µs per HTTP/2 stream (HEADERS each way) on one prior-knowledge connection. */
function http2(b: Build): number {
  const f = filterOf(b);
  const { buildFrame, buildHeadersFrames, FrameType } = b.frames;
  f.clientData(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))]));
  f.serverData(buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0)));
  const block = b.hpack.encodeLiteralHeaderBlock([[':method', BODY === 0 ? 'GET' : 'POST'], [':path', '/api/items/1'], [':scheme', 'http'], [':authority', 'a']]);
  const resp = b.hpack.encodeLiteralHeaderBlock([[':status', '200']]);
  const t = performance.now();
  for (let i = 0; i < REQUESTS; i++) {
    const id = 1 + 2 * i;
    if (BODY === 0) {
      f.clientData(buildHeadersFrames(id, block, { endStream: true }));
      f.serverData(buildHeadersFrames(id, resp, { endStream: true }));
    } else {
      f.clientData(Buffer.concat([buildHeadersFrames(id, block, { endStream: false }), b.frames.buildDataFrame(id, TEXT, true)]));
      f.serverData(Buffer.concat([buildHeadersFrames(id, resp, { endStream: false }), b.frames.buildDataFrame(id, BINARY, true)]));
    }
  }
  return ((performance.now() - t) * 1000) / REQUESTS;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const args = process.argv.slice(2);
const baselineAt = args.indexOf('--baseline');
const builds = [await load('this', resolve(import.meta.dirname, '..'))];
if (baselineAt >= 0) builds.unshift(await load('baseline', resolve(args[baselineAt + 1] ?? '', 'dist')));
const results = builds.map(() => ({ h1: [] as number[], h2: [] as number[] }));
for (let round = 0; round < ROUNDS; round++) {
  // Which build goes first alternates (JIT and GC state favour neither).
  for (let j = 0; j < builds.length; j++) {
    const i = round % 2 === 0 ? j : builds.length - 1 - j;
    results[i]!.h1.push(http1(builds[i]!));
    results[i]!.h2.push(http2(builds[i]!));
  }
}
builds.forEach((b, i) => {
  console.log(`${b.name.padEnd(8)} µs/request (median of ${ROUNDS} × ${REQUESTS}): http1 ${median(results[i]!.h1).toFixed(2)}  http2 ${median(results[i]!.h2).toFixed(2)}`);
});
