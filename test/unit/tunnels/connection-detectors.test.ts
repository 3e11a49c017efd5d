// Per-connection detectors: protocol verification, SSH anywhere, CONNECT, Upgrade, WebSocket
// streams, and the HTTP carrier pattern across connections.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTunnelDetection } from '../../../src/tunnels/index.js';
import { LEARN_AFTER } from '../../../src/tunnels/protocol-verification.js';
import { exchange, facts, feed, httpConnection, randomBytes, wsFrame } from './helpers.js';

const BANNER = Buffer.from('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
const detection = () => createTunnelDetection({ ports: { 80: 'http', 443: 'tls', 5432: 'postgres', 22: 'ssh', 6379: 'redis', 3306: 'mysql' } });

describe('protocol verification', () => {
  it('flags SSH on an HTTP port and on an undeclared port, not on a port declared ssh', () => {
    const d = detection();
    const onHttp = d.forConnection(facts(undefined, undefined, 80), 'http').onProtocol('ssh', BANNER, 'server');
    expect(onHttp).toMatchObject({ kind: 'ssh', expected: 'http', detected: 'ssh' });
    expect(onHttp!.evidence).toContain('SSH-2.0-OpenSSH');
    expect(onHttp!.confidence).toBeGreaterThan(0.9);
    expect(d.forConnection(facts(undefined, undefined, 2222), undefined).onProtocol('ssh', BANNER, 'client')).toMatchObject({ kind: 'ssh' });
    expect(d.forConnection(facts(undefined, undefined, 22), 'ssh').onProtocol('ssh', BANNER, 'client')).toBeNull();
  });

  it('flags plaintext to a TLS port, TLS to an HTTP port, HTTP to a database port, raw bytes to an HTTP port', () => {
    const d = detection();
    const cases: Array<[number, string, string, string]> = [
      [443, 'tls', 'http', 'GET / HTTP/1.1\r\n'],
      [80, 'http', 'tls', '\x16\x03\x01\x02\x00\x01'],
      [5432, 'postgres', 'http', 'POST /q HTTP/1.1\r\n'],
      [6379, 'redis', 'http', 'GET / HTTP/1.1\r\n'],
      [3306, 'mysql', 'postgres', '\x00\x00\x00\x08\x04\xd2\x16\x2f'],
      [80, 'http', 'tcp', '\x00\x01garbage'],
    ];
    for (const [port, declared, detected, first] of cases) {
      const f = d.forConnection(facts(undefined, undefined, port), declared).onProtocol(detected, Buffer.from(first, 'latin1'), 'client');
      expect(f, `${detected} on ${declared}`).toMatchObject({ kind: 'protocol-mismatch', expected: declared, detected });
    }
  });

  it('accepts what a port may carry: h2c on HTTP, TLS on TLS, a silent probe on anything', () => {
    const d = detection();
    expect(d.forConnection(facts(), 'http').onProtocol('http2', Buffer.from('PRI * HTTP/2.0\r\n'), 'client')).toBeNull();
    expect(d.forConnection(facts(undefined, undefined, 443), 'tls').onProtocol('tls', Buffer.from([0x16, 3, 1]), 'client')).toBeNull();
    expect(d.forConnection(facts(), 'http').onProtocol('tcp', Buffer.alloc(0), 'client')).toBeNull();
  });

  it('learns an undeclared port and flags a change of protocol after enough agreeing connections', () => {
    const d = detection();
    const port = facts('10.0.0.1', '10.0.0.9', 8080);
    for (let i = 0; i < LEARN_AFTER; i++) expect(d.forConnection(port, undefined).onProtocol('http', Buffer.from('GET / HTTP/1.1\r\n'), 'client')).toBeNull();
    const odd = d.forConnection(port, undefined).onProtocol('tcp', Buffer.from('\x00\x00\x00\x10\xff'), 'client');
    expect(odd).toMatchObject({ kind: 'protocol-mismatch', expected: 'http', detected: 'tcp' });
    expect(odd!.confidence).toBeLessThan(0.8);
    // Another port is unaffected.
    expect(d.forConnection(facts('10.0.0.1', '10.0.0.9', 9090), undefined).onProtocol('tcp', Buffer.from('\x00\x01'), 'client')).toBeNull();
  });
});

describe('SSH inside other protocols', () => {
  it('finds a banner inside a POST body split at every position', () => {
    const body = Buffer.concat([Buffer.from([0x02, 0x00, BANNER.length]), BANNER, randomBytes(1, 100)]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: body.length }), (piece) => {
        const { inspector } = httpConnection(detection());
        const found = exchange(inspector, { method: 'POST', path: '/upload', requestBody: body, piece, requestHeaders: [['content-type', 'application/octet-stream']] });
        expect(found.filter((f) => f.kind === 'ssh')).toHaveLength(1);
        expect(found[0]!.evidence).toContain('POST /upload');
      }),
      { numRuns: 60 },
    );
  });

  it('finds base64-encoded SSH in a JSON body at any alignment', () => {
    for (const pad of ['', 'x', 'xy']) {
      const { inspector } = httpConnection(detection());
      const payload = Buffer.from(pad + BANNER.toString('latin1')).toString('base64');
      const found = exchange(inspector, { method: 'POST', path: '/rpc', requestHeaders: [['content-type', 'application/json']], requestBody: Buffer.from(JSON.stringify({ cmd: 'send', data: payload })) });
      expect(found.map((f) => f.kind), `pad ${pad.length}`).toEqual(['ssh']);
    }
  });

  it('does not take text that quotes a banner for SSH', () => {
    const { inspector } = httpConnection(detection());
    const report = JSON.stringify({ host: '10.0.0.5', banner: 'SSH-2.0-OpenSSH_9.2p1 Debian-2', port: 22 });
    expect(exchange(inspector, { responseHeaders: [['content-type', 'application/json']], responseBody: Buffer.from(report) })).toEqual([]);
  });

  it('finds SSH after CONNECT and inside a masked WebSocket stream', () => {
    const d = detection();
    const { inspector } = httpConnection(d);
    const connect = exchange(inspector, { method: 'CONNECT', path: '10.9.9.9:22', host: '10.9.9.9:22', status: 200 });
    expect(connect).toMatchObject([{ kind: 'http-connect' }]);
    expect(feed(inspector, 'server', BANNER)).toMatchObject([{ kind: 'ssh', evidence: expect.stringContaining('CONNECT 10.9.9.9:22') }]);

    const ws = httpConnection(d).inspector;
    expect(exchange(ws, { path: '/socket', requestHeaders: [['upgrade', 'websocket'], ['connection', 'Upgrade']], status: 101 })).toEqual([]);
    const framed = wsFrame(BANNER, 0x2, Buffer.from([0x12, 0x34, 0x56, 0x78]));
    expect(framed.includes(Buffer.from('SSH-'))).toBe(false); // masking hides it on the wire
    const found = feed(ws, 'client', framed, 5);
    expect(found).toMatchObject([{ kind: 'ssh', expected: 'websocket' }]);
  });
});

describe('CONNECT and Upgrade', () => {
  it('flags CONNECT unless the rules expect it, and Upgrades other than websocket/h2c', () => {
    const d = createTunnelDetection({ ports: {}, isExpected: (_f, what) => what.kind === 'connect' && what.target === 'proxy.allowed:443' });
    expect(exchange(httpConnection(d).inspector, { method: 'CONNECT', path: 'proxy.allowed:443' })).toEqual([]);
    expect(exchange(httpConnection(d).inspector, { method: 'CONNECT', path: 'evil:22' })).toMatchObject([{ kind: 'http-connect' }]);
    expect(exchange(httpConnection(d).inspector, { requestHeaders: [['upgrade', 'websocket']], status: 101 })).toEqual([]);
    expect(exchange(httpConnection(d).inspector, { requestHeaders: [['upgrade', 'h2c']], status: 101 })).toEqual([]);
    const odd = exchange(httpConnection(d).inspector, { requestHeaders: [['upgrade', 'ssh-tunnel/1']], status: 101 });
    expect(odd).toMatchObject([{ kind: 'http-upgrade', detected: 'ssh-tunnel/1' }]);
  });

  it('verifies what an allowed CONNECT to port 443 carries: TLS passes, anything else is a mismatch', () => {
    const d = createTunnelDetection({ ports: {}, isExpected: (_f, what) => what.kind === 'connect' && what.target.endsWith(':443') });
    const tls = httpConnection(d).inspector;
    expect(exchange(tls, { method: 'CONNECT', path: 'api.example.com:443', status: 200 })).toEqual([]);
    expect(feed(tls, 'client', Buffer.from('160301020001000000', 'hex'))).toEqual([]);
    const other = httpConnection(d).inspector;
    expect(exchange(other, { method: 'CONNECT', path: 'api.example.com:443', status: 200 })).toEqual([]);
    expect(feed(other, 'client', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toMatchObject([{ kind: 'protocol-mismatch', expected: 'tls' }]);
    const ssh = httpConnection(d).inspector;
    exchange(ssh, { method: 'CONNECT', path: 'api.example.com:443', status: 200 });
    expect(feed(ssh, 'client', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'))).toMatchObject([{ kind: 'ssh' }]);
  });
});

describe('HTTP as a carrier', () => {
  // httptunnel's shape: upstream in a POST without content type, downstream in a GET whose
  // response claims text/html; both carry binary framing.
  const frame = (seed: number, n: number) => Buffer.concat([Buffer.from([0x02, 0x00, n]), randomBytes(seed, n)]);

  it('flags opaque bodies both ways between one client and server, across connections', () => {
    let now = 1_000_000;
    const d = createTunnelDetection({ ports: {}, now: () => now });
    const post = httpConnection(d).inspector;
    const up = exchange(post, { method: 'POST', path: '/tunnel?seq=1', requestHeaders: [['content-length', '102400']], requestBody: frame(3, 40) });
    expect(up).toEqual([]); // one direction alone is an upload
    now += 1000;
    const get = httpConnection(d).inspector;
    const down = exchange(get, { path: '/tunnel?seq=2', responseHeaders: [['content-type', 'text/html'], ['content-length', '102400']], responseBody: frame(4, 60) });
    expect(down).toMatchObject([{ kind: 'http-carrier' }]);
    expect(down[0]!.evidence).toContain('declared text/html but carries');
    expect(down[0]!.confidence).toBeGreaterThanOrEqual(0.8);
    // The pair stays flagged: the next opaque body is a finding at once.
    const again = exchange(httpConnection(d).inspector, { method: 'POST', path: '/tunnel?seq=3', requestBody: frame(5, 40) });
    expect(again).toMatchObject([{ kind: 'http-carrier' }]);
    // Another client is not.
    expect(exchange(httpConnection(d, facts('10.0.0.3')).inspector, { method: 'POST', path: '/tunnel?seq=3', requestBody: frame(5, 40) })).toEqual([]);
  });

  it('does not flag properly typed binary both ways (uploads and downloads)', () => {
    const d = createTunnelDetection({ ports: {} });
    for (let i = 0; i < 50; i++) {
      const found = exchange(httpConnection(d).inspector, {
        method: 'PUT', path: `/blobs/${i}`, requestHeaders: [['content-type', 'application/octet-stream']], requestBody: randomBytes(i + 1, 4096),
        responseHeaders: [['content-type', 'application/zip']], responseBody: randomBytes(i + 100, 4096),
      });
      expect(found).toEqual([]);
    }
  });

  it("recognises htc's requests by their target at the head, before any byte of them goes on", () => {
    const d = createTunnelDetection({ ports: {} });
    const get = httpConnection(d).inspector;
    const found = get.onHttpRequest({ method: 'GET', path: '/index.html?crap=1796314149', host: '10.0.0.2:8081', headers: [['host', '10.0.0.2:8081'], ['connection', 'close']], upgrade: null });
    expect(found).toMatchObject({ kind: 'http-carrier', detected: 'httptunnel' });
    expect(found!.evidence).toContain('GET /index.html?crap=1796314149');
    expect(found!.confidence).toBeGreaterThanOrEqual(0.9);
    // The pair is flagged: htc's POST on its other connection is refused at its head too.
    expect(httpConnection(d).inspector.onHttpRequest({ method: 'POST', path: '/x', host: null, headers: [], upgrade: null })).toMatchObject({ kind: 'http-carrier' });
    // Look-alikes are not htc's.
    for (const path of ['/index.html', '/index.html?crap=', '/index.html?crap=12a', '/index.html?crap=1&x=2', '/index.htm?crap=1', '/x/index.html?crap=1']) {
      expect(exchange(httpConnection(createTunnelDetection({ ports: {} })).inspector, { path }), path).toEqual([]);
    }
  });

  it("recognises httptunnel's TUNNEL_OPEN at the start of an untyped POST body, whatever the target", () => {
    const open = Buffer.from([0x01, 0x00, 0x01, 0x2a]); // as Debian's htc sends it
    const cases: Array<[string, Buffer, Array<[string, string]>, boolean]> = [
      ['the open frame alone', open, [['content-length', '102400']], true],
      ['the open frame and a DATA frame', Buffer.concat([open, Buffer.from([0x02, 0x00, 0x03]), Buffer.from('abc')]), [], true],
      ['split byte by byte', Buffer.concat([open, Buffer.from([0x46])]), [], true],
      ['typed as octet-stream', open, [['content-type', 'application/octet-stream']], false],
      ['followed by text', Buffer.from('\x01\x00\x01*hello', 'latin1'), [], false],
      ['a long first frame', Buffer.concat([Buffer.from([0x01, 0x04, 0x00]), Buffer.alloc(1024, 0x41)]), [], false],
    ];
    for (const [name, body, headers, flagged] of cases) {
      const d = createTunnelDetection({ ports: {} });
      const found = exchange(httpConnection(d).inspector, { method: 'POST', path: '/upload', requestHeaders: headers, requestBody: body, piece: name.startsWith('split') ? 1 : 1460 });
      if (flagged) {
        expect(found[0], name).toMatchObject({ kind: 'http-carrier', detected: 'httptunnel' });
        expect(found[0]!.evidence).toContain('TUNNEL_OPEN');
      } else expect(found.filter((f) => f.detected === 'httptunnel'), name).toEqual([]);
    }
  });

  it('forgets a pair after its window', () => {
    let now = 0;
    const d = createTunnelDetection({ ports: {}, now: () => now });
    exchange(httpConnection(d).inspector, { method: 'POST', requestBody: frame(1, 40) });
    now += 10 * 60_000;
    expect(exchange(httpConnection(d).inspector, { responseHeaders: [['content-type', 'text/html']], responseBody: frame(2, 60) })).toEqual([]);
  });
});
