// Transparent interception, end to end: real namespaces, real iptables, the proxy as uid 1337,
// real clients and servers as other uids.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { APP_UID, NODE, PROXY_UID, TOOLS, Topology, until } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'ic', subnet: 11 });
const sidecar = new Sidecar(topo);
const ECHO = 7000;
const HASH = 7001;
const WHOAMI_PORTS = [80, 443, 3306, 5432, 6379, 8080, 8443, 9000, 9090, 11211, 27017, 30000, 40000, 50051, 65000];
const RESET = 7002;
const EXCLUDED_PORT = 7100; // excluded from outbound redirection
const EXCLUDED_INBOUND = 7101;
const EXCLUDED_IP = '10.77.11.3'; // a peer address inside an excluded CIDR
const APP_PORT = 8081; // an "app container" server inside the pod

function patternHash(n: number): string {
  // Mirrors client.mjs `send`: xorshift32 pieces of 1 MiB seeded by their offset.
  const hash = createHash('sha256');
  const chunk = 1 << 20;
  for (let sent = 0; sent < n; sent += chunk) {
    const size = Math.min(chunk, n - sent);
    const buf = Buffer.allocUnsafe(size);
    let x = (sent + 1) >>> 0 || 1;
    let i = 0;
    for (; i + 4 <= size; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      buf.writeUInt32LE(x, i);
    }
    for (; i < size; i++) buf[i] = i & 0xff;
    hash.update(buf);
  }
  return hash.digest('hex');
}

beforeAll(async () => {
  topo.create();
  topo.addPeerAddress(EXCLUDED_IP);
  sidecar.init(['--exclude-outbound-ports', String(EXCLUDED_PORT), '--exclude-inbound-ports', String(EXCLUDED_INBOUND), '--exclude-outbound-cidrs', `${EXCLUDED_IP}/32`]);
  await sidecar.start();
  await topo.peer(topo.peerNs, 'echo', '0.0.0.0', [ECHO, EXCLUDED_PORT]);
  await topo.peer(topo.peerNs, 'echo', '::', [ECHO]);
  await topo.peer(topo.peerNs, 'hash', '0.0.0.0', HASH);
  await topo.peer(topo.peerNs, 'whoami', '0.0.0.0', WHOAMI_PORTS);
  await topo.peer(topo.peerNs, 'reset', '0.0.0.0', RESET);
  await topo.peer(topo.podNs, 'whoami', '0.0.0.0', [APP_PORT, EXCLUDED_INBOUND], 1001);
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await topo.destroy();
  }
});

describe('egress', () => {
  it('carries a connection from an app to a peer and records it as egress with the original destination', async () => {
    const r = await topo.client(topo.podNs, ['halfclose', topo.peerIp, String(ECHO), 'ping-egress']);
    expect(r.stdout).toBe('ping-egress');
    const rec = await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === ECHO && x.dst.ip === topo.peerIp && x.direction === 'egress');
    expect(rec.src.ip).toBe(topo.podIp);
    expect(rec.bytes).toEqual({ sent: 'ping-egress'.length, received: 'ping-egress'.length });
    expect(rec.reason).toBe('fin');
  });

  it('keeps the original destination port, whatever the port', async () => {
    for (const port of WHOAMI_PORTS) {
      const r = await topo.client(topo.podNs, ['read', topo.peerIp, String(port)]);
      // The peer sees the connection on the port the app dialled, coming from the pod's IP.
      expect(r.stdout.trim()).toBe(`${port} ${topo.peerIp.replace(/\.2$/, '.1')}`);
    }
    for (const port of WHOAMI_PORTS) {
      await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === port && x.direction === 'egress');
    }
  });

  it('carries IPv6', async () => {
    const r = await topo.client(topo.podNs, ['halfclose', topo.peerIp6, String(ECHO), 'ping-v6']);
    expect(r.stdout).toBe('ping-v6');
    const rec = await sidecar.waitForRecord((x) => x.dst.ip === topo.peerIp6 && x.dst.port === ECHO);
    expect(rec.direction).toBe('egress');
    expect(rec.src.ip).toBe(topo.podIp6);
  });

  it('moves 100 MiB byte-exact (hash at both ends)', async () => {
    const size = 100 * 1024 * 1024;
    const r = await topo.client(topo.podNs, ['send', topo.peerIp, String(HASH), String(size)]);
    const [sentLine, answerLine] = r.stdout.trim().split('\n');
    const expected = patternHash(size);
    expect(sentLine).toBe(`${size} ${expected}`);
    expect(answerLine).toBe(`${size} ${expected}`);
    const rec = await sidecar.waitForRecord((x) => x.dst.port === HASH && (x.bytes?.sent ?? 0) === size);
    expect(rec.reason).toBe('fin');
  }, 120_000);

  it('returns 32 MiB byte-exact to a client that reads slowly (the proxy reuses read buffers only when no write is pending)', async () => {
    const size = 32 * 1024 * 1024;
    const r = await topo.client(topo.podNs, ['slow-reader', topo.peerIp, String(ECHO), String(size)]);
    const [sent, received] = r.stdout.trim().split('\n');
    expect(received).toBe(sent);
    const rec = await sidecar.waitForRecord((x) => x.dst.port === ECHO && (x.bytes?.received ?? 0) === size);
    expect(rec.reason).toBe('fin');
  }, 120_000);

  it('carries 500 concurrent connections', async () => {
    const r = await topo.client(topo.podNs, ['concurrent', topo.peerIp, String(ECHO), '500']);
    expect(r.stdout.trim()).toBe('ok 500');
  }, 60_000);

  it('propagates half-close: the client shuts its write side and still reads the whole answer', async () => {
    const r = await topo.client(topo.podNs, ['send', topo.peerIp, String(HASH), '300000']);
    const lines = r.stdout.trim().split('\n');
    expect(lines[1]).toBe(lines[0]); // the server answered only after it saw our FIN through the proxy
  });

  it('passes a peer reset on to the client', async () => {
    const r = await topo.client(topo.podNs, ['expect-error', topo.peerIp, String(RESET)]);
    expect(r.stdout.split(' ')[0]).toBe('ECONNRESET');
    const rec = await sidecar.waitForRecord((x) => x.dst.port === RESET);
    expect(rec.reason).toBe('reset');
  });

  it('fails promptly for a closed port instead of hanging', async () => {
    const r = await topo.client(topo.podNs, ['expect-error', topo.peerIp, '7999']);
    const [code, ms] = r.stdout.trim().split(' ');
    expect(code).toBe('ECONNRESET');
    expect(Number(ms)).toBeLessThan(2000);
    const rec = await sidecar.waitForRecord((x) => x.dst.port === 7999);
    expect(rec.reason).toBe('connect-failed');
  });

  it('lets excluded ports and CIDRs bypass the proxy', async () => {
    const before = sidecar.records.length;
    const r = await topo.client(topo.podNs, ['halfclose', topo.peerIp, String(EXCLUDED_PORT), 'direct']);
    expect(r.stdout).toBe('direct');
    const viaCidr = await topo.client(topo.podNs, ['halfclose', EXCLUDED_IP, String(ECHO), 'direct-cidr']);
    expect(viaCidr.stdout).toBe('direct-cidr');
    // A proxied connection right after is recorded, so the absence of records above means bypass.
    await topo.client(topo.podNs, ['halfclose', topo.peerIp, String(ECHO), 'marker']);
    await sidecar.waitForRecord((x) => x.bytes?.sent === 'marker'.length && x.dst.port === ECHO);
    const bypassed = sidecar.records.slice(before).filter((x) => x.dst.port === EXCLUDED_PORT || x.dst.ip === EXCLUDED_IP);
    expect(bypassed).toEqual([]);
  });
});

describe('ingress', () => {
  it('carries a connection from the peer to an app and records it as ingress', async () => {
    const r = await topo.client(topo.peerNs, ['read', topo.podIp, String(APP_PORT)]);
    // The app sees the connection on its own port; the proxy dialled it from the pod's IP.
    expect(r.stdout.trim()).toBe(`${APP_PORT} ${topo.podIp}`);
    const rec = await sidecar.waitForRecord((x) => x.direction === 'ingress' && x.dst.port === APP_PORT);
    expect(rec.src.ip).toBe(topo.peerIp);
    expect(rec.dst.ip).toBe(topo.podIp);
  });

  it('lets an excluded inbound port reach the app directly', async () => {
    const r = await topo.client(topo.peerNs, ['read', topo.podIp, String(EXCLUDED_INBOUND)]);
    expect(r.stdout.trim()).toBe(`${EXCLUDED_INBOUND} ${topo.peerIp}`); // the app sees the real peer
    // A proxied inbound connection right after is recorded, so the absence of a record before it
    // means bypass (records are written in order; a proxied one would have ended first).
    const lastSeq = sidecar.records.at(-1)?.seq ?? -1;
    await topo.client(topo.peerNs, ['read', topo.podIp, String(APP_PORT)]);
    const marker = await sidecar.waitForRecord((x) => x.direction === 'ingress' && x.dst.port === APP_PORT && x.reason !== 'open' && x.seq > lastSeq);
    expect(sidecar.records.filter((x) => x.dst.port === EXCLUDED_INBOUND)).toEqual([]);
  });
});

describe('intra-pod', () => {
  it('carries app-to-app traffic over 127.0.0.1 and records it as intra', async () => {
    const r = await topo.client(topo.podNs, ['read', '127.0.0.1', String(APP_PORT)]);
    expect(r.stdout.trim()).toBe(`${APP_PORT} 127.0.0.1`);
    const rec = await sidecar.waitForRecord((x) => x.direction === 'intra' && x.dst.ip === '127.0.0.1' && x.dst.port === APP_PORT);
    expect(rec.src.ip).toBe('127.0.0.1');
  });

  it("carries app-to-app traffic over the pod's own IP and records it as intra", async () => {
    const r = await topo.client(topo.podNs, ['read', topo.podIp, String(APP_PORT)]);
    expect(r.stdout.trim()).toBe(`${APP_PORT} ${topo.podIp}`);
    await sidecar.waitForRecord((x) => x.direction === 'intra' && x.dst.ip === topo.podIp && x.dst.port === APP_PORT);
  });

  it('refuses a connection that would loop back into the proxy', async () => {
    const r = await topo.client(topo.podNs, ['expect-error', '127.0.0.1', '15001']);
    expect(r.stdout.split(' ')[0]).toBe('ECONNRESET');
    await sidecar.waitForRecord((x) => x.reason === 'loop');
  });
});

describe('robustness', () => {
  it('survives a client that sends nothing and one that disappears mid-transfer', async () => {
    // Connected, silent, never closing: it must not hold up anyone else.
    const silent = topo.start(topo.podNs, 'socat', ['-u', 'SYSTEM:sleep 60', `TCP:${topo.peerIp}:${ECHO}`], { uid: APP_UID });
    const vanishing = topo.start(topo.podNs, NODE, [join(TOOLS, 'client.mjs'), 'send', topo.peerIp, String(HASH), String(1 << 30)], { uid: APP_UID });
    // Killed once the proxy has relayed some of its bytes (its open connection shows them): then it
    // vanishes mid-transfer however fast or slow the machine is.
    await until(async () => {
      const open = await topo.execAsync(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/connections'], { uid: PROXY_UID });
      return (JSON.parse(open.stdout || '[]') as FlowRecordLine[]).some((x) => x.dst.port === HASH && (x.bytes?.sent ?? 0) > 0);
    }, 'the proxy relaying the vanishing client', 30_000);
    vanishing.kill('SIGKILL');
    // The kernel closes the dead client's socket; the proxy passes that on and records the
    // partial transfer instead of waiting for bytes that will never come.
    const rec = await sidecar.waitForRecord((x) => x.dst.port === HASH && (x.bytes?.sent ?? 0) > 0 && (x.bytes?.sent ?? 0) < 1 << 30);
    expect(['fin', 'reset']).toContain(rec.reason);
    const r = await topo.client(topo.podNs, ['halfclose', topo.peerIp, String(ECHO), 'still-alive']);
    expect(r.stdout).toBe('still-alive');
    expect(sidecar.records.some((x) => x.dst.port === ECHO && x.bytes?.sent === 0 && x.bytes.received === 0 && x.reason === 'fin' && x.seq > rec.seq)).toBe(false);
    silent.kill('SIGKILL');
    await sidecar.waitForRecord((x) => x.dst.port === ECHO && x.bytes?.sent === 0 && x.seq > rec.seq);
    expect(sidecar.process?.exitCode).toBeNull();
  });

  it('serves /live and /ready on the admin port without redirecting it', async () => {
    const live = topo.exec(topo.peerNs, 'curl', ['-s', `http://${topo.podIp}:15000/live`]);
    expect(live.stdout).toBe('live\n');
    const ready = topo.exec(topo.podNs, 'curl', ['-s', '-w', ' %{http_code}', 'http://127.0.0.1:15000/ready'], { uid: APP_UID });
    expect(ready.stdout).toMatch(/ 200$/);
  });

  it('emits only records that validate against schema/flow-record.schema.json', () => {
    expect(sidecar.records.length).toBeGreaterThan(20);
    assertValidFlowRecords(sidecar.records);
  });

  it('writes only JSON flow records on stdout, with strictly increasing seq', () => {
    const seqs = sidecar.records.map((r) => r.seq);
    expect(seqs.length).toBeGreaterThan(20);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    for (const r of sidecar.records) expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });
});
