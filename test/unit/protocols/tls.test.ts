// TLS: ClientHello/ServerHello across records and chunks, versions, opaque after the hello.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TlsParser } from '../../../src/protocols/tls/tls-parser.js';
import type { ProtocolEvent } from '../../../src/protocols/types.js';
import { loadFixtures, runStream } from './fixtures.js';

type Ev<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;
const of = <T extends ProtocolEvent['type']>(events: readonly ProtocolEvent[], type: T) => events.filter((e): e is Ev<T> => e.type === type);

const fixtures = loadFixtures();
const tls13 = fixtures.find((f) => f.file === 'tls-tls13.json')!;
const tls12 = fixtures.find((f) => f.file === 'tls-tls12.json')!;
const clientHelloRecord = tls13.segments.find((s) => s.side === 'client')!.bytes;
const helloMessage = clientHelloRecord.subarray(5, 5 + clientHelloRecord.readUInt16BE(3));

/** Re-frame a handshake message into records of the given sizes (RFC 8446 §5.1 allows it). */
function records(message: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, message.length]) {
    if (at >= message.length) break;
    const piece = message.subarray(at, Math.min(message.length, at + Math.max(1, size)));
    out.push(Buffer.from([0x16, 0x03, 0x01, piece.length >> 8, piece.length & 0xff]), piece);
    at += piece.length;
  }
  return Buffer.concat(out);
}

describe('TLS ClientHello', () => {
  it('reads SNI, ALPN and versions from a real TLS 1.3 ClientHello', () => {
    const { events, errors } = runStream(new TlsParser(), tls13.segments);
    expect(errors).toEqual([]);
    const hello = of(events, 'tls.client-hello')[0]!;
    expect(hello).toMatchObject({ sni: 'api.example.test', alpn: ['h2', 'http/1.1'], legacyVersion: 0x0303 });
    expect(hello.supportedVersions).toContain(0x0304);
    expect(hello.extensionTypes).toContain(0);
  });

  it('finds the SNI when the ClientHello is split across records and chunks anyhow', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 50 }), (sizes, chunk) => {
        const stream = records(helloMessage, sizes);
        const parser = new TlsParser();
        const events: ProtocolEvent[] = [];
        for (let at = 0; at < stream.length; at += chunk) {
          const r = parser.feed('client', stream.subarray(at, at + chunk));
          expect(r.error).toBeNull();
          events.push(...r.events);
        }
        const hello = of(events, 'tls.client-hello')[0]!;
        expect(hello.sni).toBe('api.example.test');
        expect(hello.start).toBe(0);
        expect(hello.end).toBe(stream.length);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a length field that runs past the message, naming the message start', () => {
    const broken = Buffer.from(clientHelloRecord);
    // Cipher suites length (after version, random, session id) set far too large.
    const sessionIdLength = broken[5 + 4 + 2 + 32]!;
    broken.writeUInt16BE(0xfff0, 5 + 4 + 2 + 32 + 1 + sessionIdLength);
    const r = new TlsParser().feed('client', broken);
    expect(r.error).toMatchObject({ code: 'ERR_MALFORMED', offset: 0 });
  });

  it('refuses bytes that are not TLS records', () => {
    expect(new TlsParser().feed('client', Buffer.from('GET / HTTP/1.1\r\n')).error?.code).toBe('ERR_MALFORMED');
    expect(new TlsParser().feed('client', Buffer.from([0x17, 0x03, 0x03, 0x00, 0x01, 0x00])).error?.code).toBe('ERR_PROTOCOL_VIOLATION');
  });
});

describe('TLS ServerHello', () => {
  it('reports the negotiated version (supported_versions for 1.3, legacy for 1.2) and goes opaque', () => {
    const r13 = runStream(new TlsParser(), tls13.segments);
    expect(of(r13.events, 'tls.server-hello')[0]).toMatchObject({ version: 0x0304, versionName: 'TLSv1.3', helloRetryRequest: false, alpn: null });
    expect(of(r13.events, 'opaque').map((o) => [o.side, o.reason])).toEqual([['client', 'tls-encrypted'], ['server', 'tls-encrypted']]);
    const r12 = runStream(new TlsParser(), tls12.segments);
    expect(of(r12.events, 'tls.server-hello')[0]).toMatchObject({ version: 0x0303, versionName: 'TLSv1.2', alpn: 'h2' });
  });

  it('reports a plaintext alert sent instead of a ServerHello', () => {
    const parser = new TlsParser();
    parser.feed('client', clientHelloRecord);
    const r = parser.feed('server', Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
    expect(r.events).toMatchObject([{ type: 'tls.alert', level: 2, description: 40, start: 0, end: 7 }]);
  });
});
