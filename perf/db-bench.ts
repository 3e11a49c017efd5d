// Per-command cost of the database parsers and enforcers (issue 17): a pipelined stream of
// commands, cut into 1460-byte chunks (one TCP segment) as the proxy receives them.
//   npm run build && node dist/perf/db-bench.js [--seconds 1]
// "parse": the parser alone (client side); "enforce": ConnectionFilter with per-command rules —
// parse, key/statement extraction, the policy decision, routing and the request record — with the
// server's replies fed back.
import { ConnectionFilter } from '../src/enforcement/connection-filter.js';
import type { FilterSink } from '../src/enforcement/types.js';
import { compilePolicy, type CompiledPolicy } from '../src/policy/index.js';
import { createParser } from '../src/protocols/registry.js';
import type { ProtocolName } from '../src/protocols/registry.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;
const N = 1000;

function chunks(bytes: Buffer, size = 1460): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

function policyOf(rules: unknown[]): CompiledPolicy {
  const r = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

const sink: FilterSink = { toServer() {}, toClient() {}, close() {}, request() {}, alert() {} };

function filterFor(policy: CompiledPolicy, port: number): ConnectionFilter {
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port } };
  const ctx = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' as const };
  return new ConnectionFilter(ctx, sink, policy.decideConnection(facts));
}

function time(run: () => void): number {
  for (let i = 0; i < 3; i++) run();
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    run();
    runs++;
  }
  return ((performance.now() - start) * 1000) / (runs * N); // µs per command
}

const rows: Array<[string, string, string]> = [];
function bench(name: string, protocol: ProtocolName, client: Buffer, server: Buffer, setup: (f: ConnectionFilter) => void, policy: CompiledPolicy, port: number, greeting?: Buffer): void {
  const c = chunks(client);
  const s = chunks(server);
  const parse = time(() => {
    const p = createParser(protocol);
    if (greeting !== undefined) p.feed('server', greeting);
    for (const b of c) {
      const r = p.feed('client', b);
      if (r.error !== null) throw new Error(`${name}: ${r.error.message}`);
    }
  });
  const enforce = time(() => {
    const f = filterFor(policy, port);
    setup(f);
    for (const b of c) f.clientData(b);
    for (const b of s) f.serverData(b);
  });
  rows.push([name, parse.toFixed(2), enforce.toFixed(2)]);
}

// ---- Redis: pipelined GET/SET on session keys, 1 in 10 denied (FLUSHALL) ----
const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
{
  let client = '';
  let server = '';
  for (let i = 0; i < N; i++) {
    if (i % 10 === 9) client += cmd('FLUSHALL');
    else if (i % 2 === 0) {
      client += cmd('SET', `session:${i}`, 'x'.repeat(64));
      server += '+OK\r\n';
    } else {
      client += cmd('GET', `session:${i}`);
      server += '$64\r\n' + 'x'.repeat(64) + '\r\n';
    }
  }
  const policy = policyOf([
    { id: 'no-admin', action: 'deny', redis: { commands: ['FLUSHALL', 'CONFIG', 'KEYS'] } },
    { id: 'sessions', action: 'allow', redis: { commands: ['GET', 'SET'], keys: ['session:*'] } },
  ]);
  bench('redis GET/SET (keys) pipelined', 'redis', Buffer.from(client), Buffer.from(server), () => {}, policy, 6379);
}

// ---- PostgreSQL: simple queries, two statements each ----
const pgMsg = (type: string, body: string): Buffer => {
  const b = Buffer.from(body, 'utf8');
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(4 + b.length, 1);
  return Buffer.concat([h, b]);
};
{
  const body = Buffer.from('user\0app\0database\0shop\0\0');
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(0x30000, 4);
  const startup = Buffer.concat([head, body]);
  const q: Buffer[] = [];
  const r: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    q.push(pgMsg('Q', `SELECT id, name FROM items WHERE id = ${i}; UPDATE counters SET n = n + 1 WHERE k = 'x'\0`));
    r.push(pgMsg('C', 'SELECT 1\0'), pgMsg('C', 'UPDATE 1\0'), pgMsg('Z', 'I'));
  }
  const policy = policyOf([
    { id: 'no-ddl', action: 'deny', postgres: { statements: ['DDL'] } },
    { id: 'app', action: 'allow', postgres: { users: ['app'], statements: ['SELECT', 'UPDATE', 'INSERT'] } },
  ]);
  const authOk = Buffer.concat([pgMsg('R', '\0\0\0\0'), pgMsg('Z', 'I')]);
  bench('postgres Q (2 statements)', 'postgres', Buffer.concat([startup, ...q]), Buffer.concat([authOk, ...r]), () => {}, policy, 5432);
}

// ---- MySQL: COM_QUERY, one statement, OK answers ----
{
  const packet = (seq: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUIntLE(payload.length, 0, 3);
    h[3] = seq;
    return Buffer.concat([h, payload]);
  };
  const CAPS = (1 << 3) | (1 << 9) | (1 << 15) | (1 << 16) | (1 << 19);
  const greeting = packet(0, Buffer.concat([Buffer.from([10]), Buffer.from('10.11.6-MariaDB\0'), Buffer.alloc(4), Buffer.alloc(8, 0x41), Buffer.from([0]),
    Buffer.from([CAPS & 0xff, (CAPS >> 8) & 0xff, 33, 2, 0, (CAPS >> 16) & 0xff, 0, 21]), Buffer.alloc(10), Buffer.alloc(12, 0x42), Buffer.from([0])]));
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(CAPS);
  const login = packet(1, Buffer.concat([caps, Buffer.from([0, 0, 0, 1, 33]), Buffer.alloc(23), Buffer.from('app\0'), Buffer.from([0]), Buffer.from('shop\0')]));
  const ok = (seq: number) => packet(seq, Buffer.from([0, 1, 0, 2, 0, 0, 0]));
  const q: Buffer[] = [login];
  const r: Buffer[] = [ok(2)];
  for (let i = 0; i < N; i++) {
    q.push(packet(0, Buffer.concat([Buffer.from([3]), Buffer.from(`UPDATE items SET n = n + 1 WHERE id = ${i}`)])));
    r.push(ok(1));
  }
  const policy = policyOf([
    { id: 'no-ddl', action: 'deny', mysql: { statements: ['DDL'] } },
    { id: 'app', action: 'allow', mysql: { users: ['app'], statements: ['SELECT', 'UPDATE', 'INSERT'] } },
  ]);
  bench('mysql COM_QUERY', 'mysql', Buffer.concat(q), Buffer.concat(r), (f) => f.serverData(greeting), policy, 3306, greeting);
}

console.log(`| stream (${N} commands, 1460-byte chunks) | parse µs/command | parse+decide+route+record µs/command |`);
console.log('| --- | --- | --- |');
for (const [name, parse, enforce] of rows) console.log(`| ${name} | ${parse} | ${enforce} |`);
