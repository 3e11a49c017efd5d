// SSH inside TLS from the record layer alone. The fixtures are real sessions, captured as TLS
// record headers (direction, content type, length) by a relay between the client and the TLS
// server: OpenSSH 9.2 through `openssl s_client` (ProxyCommand) → stunnel4 → sshd, TLS 1.3 and
// 1.2, with the key exchanges and ciphers OpenSSH offers; and curl / nghttp against nginx over
// TLS (HTTP/1.1 keep-alive, HTTP/2, many GETs and POSTs of varied sizes) as the benign side.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ja4, TlsShapeWatcher, type ClientHelloFacts } from '../../../src/tunnels/tls-shape.js';
import type { TunnelFinding } from '../../../src/tunnels/types.js';

interface Trace {
  version: number;
  cipherSuite: number;
  alpn: string[];
  tunnel: boolean;
  records: string;
}
const traces = JSON.parse(readFileSync(new URL('./fixtures/tls-record-traces.json', import.meta.url), 'utf8')) as Record<string, Trace>;

const hello = (alpn: readonly string[] = []): ClientHelloFacts => ({
  sni: 'www.example.test',
  alpn,
  legacyVersion: 0x0303,
  supportedVersions: [0x0a0a, 0x0304, 0x0303],
  cipherSuites: [0x1a1a, 0x1302, 0x1303, 0x1301, 0xc02c, 0xc030],
  extensionTypes: [0x2a2a, 0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51],
});

const BODY = Buffer.alloc(5 + 17 * 1024);
function record(type: number, length: number): Buffer {
  const b = BODY.subarray(0, 5 + length);
  b[0] = type;
  b[1] = 3;
  b[2] = 3;
  b.writeUInt16BE(length, 3);
  return b;
}

/** Feeds a trace's records after the hellos (split into `piece`-byte chunks); returns the finding. */
function replay(trace: Trace, piece = 0): TunnelFinding | null {
  const watcher = new TlsShapeWatcher(hello(trace.alpn));
  let helloSeen = { c: false, s: false };
  let found: TunnelFinding | null = null;
  for (const item of trace.records.split(' ')) {
    const side = item[0] === 'c' ? 'client' : 'server';
    const [type, length] = item.slice(1).split(':').map(Number) as [number, number];
    // The first handshake record of each side is its hello: the parser reads those.
    if (type === 22 && !helloSeen[item[0] as 'c' | 's']) {
      helloSeen = { ...helloSeen, [item[0]!]: true };
      if (side === 'server') watcher.onServerHello(trace.version, trace.cipherSuite);
      continue;
    }
    const bytes = record(type, length);
    for (let at = 0; at < bytes.length; at += piece || bytes.length) {
      found ??= watcher.feed(side, bytes.subarray(at, piece ? at + piece : bytes.length));
    }
  }
  return found;
}

describe('TlsShapeWatcher (SSH inside TLS)', () => {
  const tunnels = Object.entries(traces).filter(([, t]) => t.tunnel);
  const benign = Object.entries(traces).filter(([, t]) => !t.tunnel);

  it('finds every captured SSH-over-TLS session (TLS 1.2 and 1.3, every key exchange and cipher tried)', () => {
    expect(tunnels.length).toBeGreaterThanOrEqual(5);
    for (const [name, trace] of tunnels) {
      const f = replay(trace);
      expect(f, name).toMatchObject({ kind: 'ssh', detected: 'ssh-in-tls' });
      expect(f!.evidence, name).toContain('SSH binary packets');
      expect(f!.confidence, name).toBe(trace.alpn.length === 0 ? 0.9 : 0.8);
    }
  });

  it('finds them whatever the chunking (record headers split anywhere)', () => {
    for (const [name, trace] of tunnels) for (const piece of [1, 2, 3, 7, 1460]) expect(replay(trace, piece), `${name} / ${piece}`).not.toBeNull();
  });

  it('stays silent on real HTTP/1.1 and HTTP/2 sessions (curl, nghttp against nginx)', () => {
    expect(benign.length).toBeGreaterThanOrEqual(8);
    for (const [name, trace] of benign) expect(replay(trace), name).toBeNull();
  });

  it('stays silent on random record sizes: false positives below 1 in 20,000 sequences shaped to reach the test', () => {
    // The hard case on purpose: a short first client record and a large second one (what a
    // small GET and then a POST look like), then random sizes on both sides.
    let hits = 0;
    let runs = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 8, max: 255 }),
        fc.integer({ min: 400, max: 16000 }),
        fc.array(fc.integer({ min: 1, max: 16000 }), { minLength: 12, maxLength: 12 }),
        (line, kex, rest) => {
          runs++;
          const c = [line, kex, ...rest.slice(0, 5)];
          const s = rest.slice(5, 12);
          const t: Trace = { version: 0x0303, cipherSuite: 0xc030, alpn: ['h2'], tunnel: false, records: ['c22:300', 's22:90', ...c.flatMap((x, i) => [`c23:${x + 24}`, `s23:${s[i]! + 24}`])].join(' ') };
          if (replay(t) !== null) hits++;
        },
      ),
      { numRuns: 20_000 },
    );
    expect(runs).toBe(20_000);
    expect(hits).toBeLessThanOrEqual(1);
  });
});

describe('ja4 (JA4-style ClientHello fingerprint)', () => {
  it('counts and hashes without GREASE, names ALPN by its first and last characters', () => {
    const withAlpn = ja4(hello(['h2', 'http/1.1']));
    expect(withAlpn).toMatch(/^t13d0511h2_[0-9a-f]{12}_[0-9a-f]{12}$/);
    expect(ja4(hello())).toMatch(/^t13d051100_/);
    // Order of ciphers and extensions does not matter (sorted before hashing), GREASE neither.
    const shuffled = { ...hello(['h2']), cipherSuites: [0xc030, 0x1301, 0x1302, 0xc02c, 0x1303], extensionTypes: [51, 45, 43, 13, 23, 22, 16, 35, 10, 11, 0] };
    expect(ja4(shuffled)).toBe(ja4(hello(['h2'])));
    expect(ja4({ ...hello(), sni: null })).toMatch(/^t13i/);
  });
});
