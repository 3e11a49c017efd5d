// Parser throughput on realistic inputs: the captured fixtures of the conformance suite,
// replayed many times, and synthetic HTTP/2 sessions. Plain Node, performance.now().
//   npx tsc -p tsconfig.json && node dist/perf/parsers-bench.js [--seconds 0.4]
// Reports µs per request/message and ns per byte, with whole segments and with 1460-byte
// chunks (one TCP segment of a 1500-byte MTU), the way the proxy receives them.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectClientProtocol } from '../src/protocols/detect.js';
import { parseDnsMessage } from '../src/protocols/dns/dns-message.js';
import { buildFrame, buildHeadersFrames, FrameType } from '../src/protocols/http2/frames.js';
import { encodeHuffman } from '../src/protocols/http2/hpack-huffman.js';
import { HTTP2_CLIENT_PREFACE } from '../src/protocols/http2/http2-parser.js';
import { createParser } from '../src/protocols/registry.js';
import type { ProtocolName } from '../src/protocols/registry.js';
import type { Side } from '../src/protocols/types.js';

const here = dirname(fileURLToPath(import.meta.url));
// Works from perf/ (ts) and dist/perf/ (js).
const FIXTURES = [resolve(here, '../test/unit/protocols/fixtures'), resolve(here, '../../test/unit/protocols/fixtures')]
  .find((d) => existsSync(join(d, 'http-keepalive.json')))!;
const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 0.4;
const MSS = 1460;

interface Segment { side: Side; bytes: Buffer }

function fixture(file: string): Segment[] {
  const raw = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as { segments: Array<[Side, string]> };
  return raw.segments.map(([side, b64]) => ({ side, bytes: Buffer.from(b64, 'base64') }));
}

/** Cut segments into chunks of at most `size` bytes. */
function chunked(segments: Segment[], size: number): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) for (let at = 0; at < s.bytes.length; at += size) out.push({ side: s.side, bytes: s.bytes.subarray(at, at + size) });
  return out;
}

/** Same side, back to back: one segment (a long keep-alive connection's bytes). */
function repeatSession(segments: Segment[], times: number): Segment[] {
  const out: Segment[] = [];
  for (let i = 0; i < times; i++) out.push(...segments);
  return out;
}

interface Row { name: string; unit: string; perUnitUs: number; nsPerByte: number; mbPerS: number }
const rows: Row[] = [];

function measure(name: string, unit: string, unitsPerRun: number, bytesPerRun: number, run: () => void): void {
  for (let i = 0; i < 3; i++) run(); // warm-up (JIT)
  let runs = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < SECONDS * 1000) {
    run();
    runs++;
    elapsed = performance.now() - start;
  }
  const ns = elapsed * 1e6;
  rows.push({
    name,
    unit,
    perUnitUs: ns / (runs * unitsPerRun) / 1000,
    nsPerByte: ns / (runs * bytesPerRun),
    mbPerS: (runs * bytesPerRun) / (elapsed / 1000) / 1e6,
  });
}

function replay(protocol: ProtocolName, segments: Segment[]): number {
  const parser = createParser(protocol);
  let events = 0;
  for (const s of segments) {
    const r = parser.feed(s.side, s.bytes);
    if (r.error !== null) throw new Error(`${protocol}: ${r.error.message}`);
    events += r.events.length;
  }
  return events;
}

const bytesOf = (segments: Segment[]) => segments.reduce((n, s) => n + s.bytes.length, 0);

// ---- HTTP/1.1: the keep-alive capture (6 exchanges: GET, POST, chunked PUT, HEAD, 100-continue, chunked response)
{
  // The capture ends with `Connection: close`: llhttp (as Node's servers) refuses bytes after it,
  // so each of the 50 copies is its own connection (a new parser).
  const one = fixture('http-keepalive.json');
  const requests = 6 * 50;
  const sessions = (segments: Segment[]) => () => {
    for (let i = 0; i < 50; i++) replay('http', segments);
  };
  measure('http1 keep-alive (node:http bytes)', 'request+response', requests, bytesOf(one) * 50, sessions(one));
  const mss = chunked(one, MSS);
  measure('http1 keep-alive, 1460-byte chunks', 'request+response', requests, bytesOf(mss) * 50, sessions(mss));
  const pipelined = fixture('http-pipelined.json');
  measure('http1 pipelined (3 per write)', 'request+response', 300, bytesOf(pipelined) * 100, () => {
    for (let i = 0; i < 100; i++) replay('http', pipelined);
  });
}

// ---- HTTP/2: synthetic browser-like requests (literal, Huffman-coded), responses and DATA
function h2Session(requests: number): Segment[] {
  const lit = (name: string, value: string) => {
    const v = encodeHuffman(value);
    const n = encodeHuffman(name);
    const len = (x: Buffer) => (x.length < 127 ? Buffer.from([0x80 | x.length]) : Buffer.from([0xff, x.length - 127]));
    return Buffer.concat([Buffer.from([0x00]), len(n), n, len(v), v]);
  };
  const requestBlock = Buffer.concat([
    Buffer.from([0x82, 0x87]), // :method GET, :scheme https (static)
    lit(':path', '/api/v1/catalog/items?page=2&sort=price'),
    lit(':authority', 'catalog.shop.svc.cluster.local'),
    lit('user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36'),
    lit('accept', 'application/json'),
    lit('accept-encoding', 'gzip, deflate, br'),
    lit('x-request-id', '6f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f'),
    lit('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
  ]);
  const responseBlock = Buffer.concat([Buffer.from([0x88]), lit('content-type', 'application/json'), lit('content-length', '512')]);
  const settings = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));
  const client: Buffer[] = [HTTP2_CLIENT_PREFACE, settings];
  const server: Buffer[] = [settings];
  for (let i = 0; i < requests; i++) {
    const stream = 2 * i + 1;
    client.push(buildHeadersFrames(stream, requestBlock, { endStream: true }));
    server.push(buildHeadersFrames(stream, responseBlock), buildFrame(FrameType.DATA, 1, stream, Buffer.alloc(512, 0x7b)));
  }
  return [{ side: 'client', bytes: Buffer.concat(client) }, { side: 'server', bytes: Buffer.concat(server) }];
}
{
  const session = h2Session(500);
  measure('http2 requests (Huffman literals, 8 fields)', 'request+response', 500, bytesOf(session), () => replay('http2', session));
  const mss = chunked(session, MSS);
  measure('http2 requests, 1460-byte chunks', 'request+response', 500, bytesOf(mss), () => replay('http2', mss));
  const real = fixture('http2-node-session.json');
  measure('http2 node:http2 capture (7 streams, CONTINUATION)', 'session', 1, bytesOf(real), () => replay('http2', real));
}

// ---- TLS ClientHello + ServerHello
{
  const tls13 = fixture('tls-tls13.json');
  const hellos = tls13.slice(0, 2);
  measure('tls 1.3 ClientHello+ServerHello', 'handshake', 1, bytesOf(hellos), () => replay('tls', hellos));
}

// ---- DNS: UDP datagram decode, TCP stream
{
  const dig = fixture('dns-dig-a.json');
  const query = dig[0]!.bytes.subarray(2);
  const response = dig[1]!.bytes.subarray(2);
  measure('dns parseDnsMessage (query, UDP)', 'message', 1, query.length, () => parseDnsMessage(query));
  measure('dns parseDnsMessage (response, 2 answers)', 'message', 1, response.length, () => parseDnsMessage(response));
  const tcp = repeatSession(dig, 100);
  measure('dns over TCP (dig query + response)', 'message', 200, bytesOf(tcp), () => replay('dns', tcp));
}

// ---- Redis pipeline, PostgreSQL session, detection
{
  const redis = repeatSession(fixture('redis-resp-session.json').slice(0, 1), 100);
  measure('redis RESP commands', 'command', 600, bytesOf(redis), () => replay('redis', redis));
  const pg = fixture('postgres-psql.json');
  measure('postgres psql session (startup + query)', 'session', 1, bytesOf(pg), () => replay('postgres', pg));
  const firsts = ['http-keepalive.json', 'http2-node-session.json', 'tls-tls13.json', 'dns-dig-a.json', 'postgres-psql.json', 'redis-resp-session.json', 'ssh-openssh-client.json']
    .map((f) => fixture(f).find((s) => s.side === 'client')!.bytes.subarray(0, 24));
  measure('detectClientProtocol (24-byte prefixes, 7 protocols)', 'detection', firsts.length, 24 * firsts.length, () => {
    for (const b of firsts) detectClientProtocol(b);
  });
}

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`${pad('parser input', 54)} ${pad('unit', 18)} ${'µs/unit'.padStart(9)} ${'ns/byte'.padStart(8)} ${'MB/s'.padStart(7)}`);
for (const r of rows) {
  console.log(`${pad(r.name, 54)} ${pad(r.unit, 18)} ${r.perUnitUs.toFixed(2).padStart(9)} ${r.nsPerByte.toFixed(1).padStart(8)} ${r.mbPerS.toFixed(1).padStart(7)}`);
}
console.log(`node ${process.version}, ${SECONDS}s per row`);
