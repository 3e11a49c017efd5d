// Protocol detection from first bytes (client) and greetings (server).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DETECT_MAX_BYTES, detectClientProtocol, detectServerGreeting } from '../../../src/protocols/detect.js';
import { loadFixtures } from './fixtures.js';

const fixtures = loadFixtures();

/** The client's first bytes of a fixture, and which protocol it should be detected as. */
function firstClientBytes(file: string): Buffer {
  const f = fixtures.find((x) => x.file === file)!;
  return Buffer.concat(f.segments.filter((s) => s.side === 'client').map((s) => s.bytes));
}

describe('detectClientProtocol', () => {
  it.each([
    ['http-keepalive.json', 'http'],
    ['http-curl-expect.json', 'http'],
    ['http2-node-session.json', 'http2'],
    ['tls-tls13.json', 'tls'],
    ['tls-tls12.json', 'tls'],
    ['ssh-openssh-client.json', 'ssh'],
    ['dns-dig-a.json', 'dns'],
    ['postgres-psql.json', 'postgres'],
    ['redis-resp-session.json', 'redis'],
  ])('%s is %s, decided within the byte bound, "more" before that', (file, protocol) => {
    const bytes = firstClientBytes(file);
    let decidedAt = -1;
    for (let n = 1; n <= Math.min(bytes.length, DETECT_MAX_BYTES); n++) {
      const d = detectClientProtocol(bytes.subarray(0, n));
      if (d.kind === 'more') continue;
      expect(d).toMatchObject({ kind: 'match', protocol });
      decidedAt = n;
      break;
    }
    expect(decidedAt).toBeGreaterThan(0);
    expect(detectClientProtocol(bytes)).toMatchObject({ kind: 'match', protocol });
  });

  it('needs the whole HTTP/2 preface to tell it from an HTTP/1 "PRI" request', () => {
    expect(detectClientProtocol(Buffer.from('PRI * HTTP/2.0\r\n'))).toEqual({ kind: 'more' });
    expect(detectClientProtocol(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toMatchObject({ protocol: 'http2', confidence: 'high' });
  });

  it('is sure of HTTP/1 once the request line is complete', () => {
    expect(detectClientProtocol(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject({ protocol: 'http', confidence: 'high' });
    expect(detectClientProtocol(Buffer.from('GET /some/long/path/that/goes/on'))).toMatchObject({ protocol: 'http', confidence: 'medium' });
    expect(detectClientProtocol(Buffer.from('GET / FTP/1.0\r\n'))).toEqual({ kind: 'unknown' });
  });

  it('knows SSLRequest, GSSENCRequest and CancelRequest', () => {
    const packet = (len: number, code: number) => Buffer.from([len >> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255, code >>> 24, (code >> 16) & 255, (code >> 8) & 255, code & 255]);
    expect(detectClientProtocol(packet(8, 80877103))).toMatchObject({ protocol: 'postgres' });
    expect(detectClientProtocol(packet(8, 80877104))).toMatchObject({ protocol: 'postgres' });
    expect(detectClientProtocol(packet(16, 80877102))).toMatchObject({ protocol: 'postgres' });
  });

  it('says unknown for unrelated bytes, never "more" at the bound', () => {
    expect(detectClientProtocol(Buffer.from('hello there, general kenobi'))).toEqual({ kind: 'unknown' });
    fc.assert(
      fc.property(fc.uint8Array({ minLength: DETECT_MAX_BYTES, maxLength: 64 }), (bytes) => {
        expect(detectClientProtocol(Buffer.from(bytes)).kind).not.toBe('more');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('detectServerGreeting', () => {
  it('recognises an SSH server banner', () => {
    const f = fixtures.find((x) => x.file === 'ssh-openssh-client.json')!;
    const banner = f.segments.find((s) => s.side === 'server')!.bytes;
    expect(detectServerGreeting(banner)).toMatchObject({ kind: 'match', protocol: 'ssh' });
  });

  it('recognises a MySQL/MariaDB v10 handshake packet', () => {
    const version = Buffer.from('8.0.36\0');
    const rest = Buffer.alloc(40, 1);
    const payload = Buffer.concat([Buffer.from([0x0a]), version, rest]);
    const packet = Buffer.concat([Buffer.from([payload.length, 0, 0, 0]), payload]);
    expect(detectServerGreeting(packet)).toMatchObject({ protocol: 'mysql', confidence: 'high' });
    expect(detectServerGreeting(packet.subarray(0, 3))).toEqual({ kind: 'more' });
  });

  it.each([
    ['220 mail.example.com ESMTP Postfix\r\n', 'smtp'],
    ['220 (vsFTPd 3.0.5)\r\n', 'ftp'],
    ['+OK Dovecot ready.\r\n', 'pop3'],
    ['* OK [CAPABILITY IMAP4rev1] ready\r\n', 'imap'],
  ])('%j is %s', (greeting, protocol) => {
    expect(detectServerGreeting(Buffer.from(greeting))).toMatchObject({ kind: 'match', protocol });
  });

  it('waits for the whole 220 line, then decides', () => {
    expect(detectServerGreeting(Buffer.from('220 mail.exa'))).toEqual({ kind: 'more' });
    expect(detectServerGreeting(Buffer.from('HTTP/1.1 200 OK\r\n'))).toEqual({ kind: 'unknown' });
  });
});
