// Evasions of the L7 firewall beyond HTTP/1 paths (issue 14 items 4–7, issue 15 item 5), proved
// from the servers' side: tools/lm-servers.mjs logs every request, call, TLS session and DNS
// query it serves; a forbidden one counts as blocked only if no server log line shows it (and,
// for DNS answers, if the client never gets the forbidden or forged address).
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, until, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'lm', subnet: 113 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const SPOOF_IP = '10.77.113.3';
const seen: string[] = [];

const CONFIG = `mode: protect
defaultAction: allow
tunnels: off
rules:
  - id: no-admin
    action: deny
    protocol: http
    http: { paths: ["/admin/**"] }
  - id: no-goodbye
    action: deny
    protocol: grpc
    grpc: { services: ["test.Greeter"], methods: ["SayGoodbye"] }
  - id: dns-known
    action: allow
    protocol: dns
    dns: { names: ["**.example.com", "**.svc.cluster.local"] }
  - id: dns-rest
    action: deny
    protocol: dns
  - id: tls-known
    action: allow
    protocol: tls
    tls: { sni: ["allowed.example.com"] }
  - id: tls-rest
    action: deny
    protocol: tls
`;

const hex = (...parts: Array<Buffer | number[] | string>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p)))).toString('hex');
const str = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
/** RFC 7541 §6.2.1 literal with incremental indexing (indexed name / new name). */
const incr = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([0x40 | nameIndex]), str(value)]);
const incrNew = (name: string, value: string) => Buffer.concat([Buffer.from([0x40]), str(name), str(value)]);

/**
 * Waits for an allowed request's line in the servers' log. Sent after the denied ones (later on
 * the same connection, or on a connection opened after theirs ended), it orders the log: the
 * servers are one process that logs in order, so a denied request that had reached them would
 * already be in it.
 */
const logged = (line: string) =>
  until(() => seen.includes(line), `'${line}' in the servers' log`).catch((err: Error) => {
    throw new Error(`${err.message}; the log ends: ${seen.slice(-5).join(' | ')}`);
  });
const dig = (args: string[]) => topo.execAsync(topo.podNs, 'dig', ['+tries=1', '+time=3', `@${peer}`, ...args], { uid: APP_UID });
const h2raw = (port: number, specs: string[]) => topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'h2-raw.mjs'), peer, String(port), ...specs], { uid: APP_UID });

/** Writes `parts` to peer:80 as one client, pausing `pauseMs` between them, then waits for the answer or close. */
const RAW_CLIENT = `const s=require('net').connect(80,process.argv[1]);const parts=JSON.parse(process.argv[2]);const pause=Number(process.argv[3]);let out='';s.on('data',d=>out+=d);s.on('error',()=>{});s.on('close',()=>{console.log(out.split('\\r\\n')[0]||'closed');process.exit(0)});(async()=>{for(const p of parts){s.write(Buffer.from(p,'latin1'));await new Promise(r=>setTimeout(r,pause))}setTimeout(()=>s.destroy(),1500)})()`;
const raw = (parts: string[], pauseMs = 50) => topo.execAsync(topo.podNs, NODE, ['-e', RAW_CLIENT, peer, JSON.stringify(parts), String(pauseMs)], { uid: APP_UID });

beforeAll(async () => {
  topo.create();
  topo.addPeerAddress(SPOOF_IP);
  topo.setPodResolver(peer);
  const cert = join(topo.dir, 'cert.pem');
  const key = join(topo.dir, 'key.pem');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=allowed.example.com', '-keyout', key, '-out', cert]);
  const servers = topo.start(topo.peerNs, NODE, [join(TOOLS, 'lm-servers.mjs'), peer, SPOOF_IP, cert, key]);
  // Whole lines: a chunk may end mid-line.
  if (servers.stdout) createInterface({ input: servers.stdout }).on('line', (line) => line.startsWith('seen ') && seen.push(line));
  await waitForLine(servers, (l) => l === 'listening', 15_000, 'lm servers');
  sidecar.init(['--redirect-dns']);
  await sidecar.start(CONFIG);
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await topo.destroy();
  }
});

describe('detection evasions (deny-list policy, default allow)', () => {
  it('none of them gets a denied path served; an allowed request still is', async () => {
    await raw(['G', 'ET /admin/split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'], 1500); // past detectTimeoutMs
    await raw(['\r\nGET /admin/crlf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await raw(['GET  /admin/two-spaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await raw(['GET\t/admin/tab HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await raw(['FOO /admin/unknown-method HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await raw(['GET /admin/http09\r\n']);
    await raw(['GET /public/control HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await logged('seen http1 GET /public/control');
    expect(seen.filter((l) => l.includes('/admin'))).toEqual([]);
    // The split request was read as HTTP and denied by the path rule (not passed as TCP).
    const split = await sidecar.waitForRecord((x) => x.ruleId === 'no-admin' && x.protocol === 'http');
    expect(split.verdict).toBe('denied');
  }, 30_000);
});

describe('HTTP/2', () => {
  it('a denied request with incremental indexing never reaches the server; a later one using its table entries does, intact', async () => {
    const get = [0x82, 0x86];
    const denied = hex(get, incr(1, 'a.example'), incr(4, '/admin/h2'), incrNew('x-token', 'secret'));
    // Dynamic table: 62 x-token, 63 :path /admin/h2, 64 :authority; after /public/h2 is added: 63 x-token.
    const allowed = hex(get, [0x80 | 64], incr(4, '/public/h2'), [0x80 | 63]);
    const r = await h2raw(8080, [`1:${denied}`, `3:${allowed}`]);
    expect(r.stdout).toContain('status 1 403');
    expect(r.stdout).toContain('status 3 200');
    await logged('seen h2 GET /public/h2 secret');
    expect(seen.filter((l) => l.includes('/admin/h2'))).toEqual([]);
  });

  it('a gRPC call with two content-type fields (application/grpc first) is refused; a plain one is served', async () => {
    const message = (name: string) => hex([0, 0, 0, 0, name.length + 2, 0x0a, name.length], name);
    const call = (method: string, types: string[]) => hex([0x83, 0x86], incr(1, peer), incr(4, `/test.Greeter/${method}`), ...types.map((t) => incr(31, t)), incrNew('te', 'trailers'));
    const r = await h2raw(50051, [`1:${call('SayGoodbye', ['application/grpc', 'text/plain'])}:${message('dup')}`, `3:${call('SayHello', ['application/grpc'])}:${message('plain')}`]);
    await logged('seen grpc SayHello plain');
    expect(seen.filter((l) => l.includes('SayGoodbye'))).toEqual([]);
    expect(r.stdout).toContain('status 1 403');
    const rec = await sidecar.waitForRecord((x) => x.type === 'request' && x.ruleId === 'ambiguous-request');
    expect(rec.verdict).toBe('denied');
  });
});

describe('DNS', () => {
  it('forged answers (another address, wrong id, wrong question) never reach the client (RFC 5452)', async () => {
    const r = await dig(['spoof1.example.com', 'A']);
    expect(r.stdout).toContain('status: NOERROR');
    expect(r.stdout).toMatch(/spoof1\.example\.com\.\s+60\s+IN\s+A\s+10\.77\.0\.1/);
    expect(r.stdout).not.toContain('6.6.6.6');
    expect(seen).toContain('seen dns spoof1.example.com');
  });

  it('an allowed name whose CNAME leads to a denied name is refused', async () => {
    const r = await dig(['alias.example.com', 'A']);
    expect(r.stdout).toContain('status: REFUSED');
    expect(r.stdout).not.toContain('10.77.0.66');
    const rec = await sidecar.waitForRecord((x) => x.type === 'request' && (x.l7 as Record<string, unknown> | undefined)?.name === 'alias.example.com');
    expect(rec).toMatchObject({ verdict: 'denied', ruleId: 'dns-rest' });
  });

  it('a name with a colon is not cut at the colon; a label with a dot is not two labels', async () => {
    const colon = await dig(['t.svc.cluster.local:x.attacker.com', 'A']);
    expect(colon.stdout).toContain('status: REFUSED');
    const dotted = await dig(['a\\.b.svc.cluster.local', 'A']);
    expect(dotted.stdout).toContain('status: REFUSED');
    const ok = await dig(['t.svc.cluster.local', 'A']);
    expect(ok.stdout).toContain('status: NOERROR');
    expect(seen).toContain('seen dns t.svc.cluster.local');
    expect(seen.filter((l) => l.includes('attacker.com') || l.includes('a.b.svc'))).toEqual([]);
  });
});

describe('TLS SNI', () => {
  it('an SNI with a port-like suffix is not the allowed name', async () => {
    const bad = topo.exec(topo.podNs, 'openssl', ['s_client', '-connect', `${peer}:443`, '-servername', 'allowed.example.com:x.evil.test', '-quiet'], { uid: APP_UID, input: '' });
    expect(bad.stdout).not.toContain('tls ok');
    const ok = topo.exec(topo.podNs, 'openssl', ['s_client', '-connect', `${peer}:443`, '-servername', 'allowed.example.com', '-quiet'], { uid: APP_UID, input: '' });
    expect(ok.stdout).toContain('tls ok allowed.example.com');
    await logged('seen tls allowed.example.com');
    expect(seen.filter((l) => l.includes('evil'))).toEqual([]);
  });
});
