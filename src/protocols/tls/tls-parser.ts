// TLS handshake visibility (RFC 8446 §5.1 record layer, §4.1.2 ClientHello, §4.1.3 ServerHello,
// §4.2.1 supported_versions; RFC 6066 §3 server_name; RFC 7301 ALPN; RFC 5246 for TLS 1.2).
// Handshake messages are reassembled across records and chunks. After the ServerHello the
// content is encrypted (TLS 1.3) or of no interest, so the parser only checks record framing.
import { HeadTooLargeError, MalformedStreamError, ProtocolViolationError } from '../errors.js';
import { FixedGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';

/** RFC 8446 §5.2: TLSCiphertext fragments are at most 2^14 + 256; §5.1 plaintext 2^14. */
const MAX_RECORD_LENGTH = 16384 + 2048;
/** Largest ClientHello/ServerHello we reassemble (post-quantum key shares are a few KiB). */
export const TLS_MAX_HELLO_BYTES = 64 * 1024;

const RECORD_CHANGE_CIPHER_SPEC = 20;
const RECORD_ALERT = 21;
const RECORD_HANDSHAKE = 22;
const RECORD_APPLICATION_DATA = 23;
const RECORD_HEARTBEAT = 24;

const HANDSHAKE_CLIENT_HELLO = 1;
const HANDSHAKE_SERVER_HELLO = 2;

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

/** RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest. */
const HELLO_RETRY_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

export function tlsVersionName(version: number): string {
  switch (version) {
    case 0x0300: return 'SSLv3';
    case 0x0301: return 'TLSv1.0';
    case 0x0302: return 'TLSv1.1';
    case 0x0303: return 'TLSv1.2';
    case 0x0304: return 'TLSv1.3';
    default: return `0x${version.toString(16).padStart(4, '0')}`;
  }
}

/** Bounds-checked reader over one handshake message; `fail` reports where it ran short. */
class Reader {
  pos: number;
  constructor(readonly buf: Buffer, start: number, readonly limit: number, private readonly onShort: (at: number, what: string) => never) {
    this.pos = start;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.limit) this.onShort(this.pos, what);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }
}

class SideState {
  readonly gather = new FixedGather();
  readingHeader = true;
  recordStart = 0;
  recordType = 0;
  recordLength = 0;
  /** Handshake bytes collected across records until one message is complete. */
  handshake: Buffer[] = [];
  handshakeBytes = 0;
  handshakeStart = -1;
  helloDone = false;
  /** A 2-byte alert record before the hello is being read (it is reported). */
  alertPending = false;
}

export class TlsParser extends StreamParserBase {
  readonly protocol = 'tls' as const;
  private readonly client = new SideState();
  private readonly server = new SideState();

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length) {
      if (st.readingHeader) {
        if (!st.gather.pending) st.recordStart = base + pos;
        const header = st.gather.take(chunk, pos, 5);
        pos += st.gather.used;
        if (header === null) return;
        this.onRecordHeader(side, st, header);
        continue;
      }
      if (st.helloDone || st.recordType !== RECORD_HANDSHAKE) {
        // Payload not needed: skip it without buffering.
        const n = Math.min(st.recordLength, chunk.length - pos);
        pos += n;
        st.recordLength -= n;
        if (st.recordLength === 0) st.readingHeader = true;
        continue;
      }
      const payload = st.gather.take(chunk, pos, st.recordLength);
      pos += st.gather.used;
      if (payload === null) return;
      st.readingHeader = true;
      this.onHandshakeRecord(side, st, payload, base + pos);
      if (this.isOpaque(side)) return;
    }
  }

  private onRecordHeader(side: Side, st: SideState, header: Buffer): void {
    const type = header[0]!;
    const major = header[1]!;
    const length = header.readUInt16BE(3);
    if (type < RECORD_CHANGE_CIPHER_SPEC || type > RECORD_HEARTBEAT || major !== 3) {
      this.fail(MalformedStreamError, side, st.recordStart, `not a TLS record (type ${type}, version ${major}.${header[2]})`);
    }
    if (length > MAX_RECORD_LENGTH) {
      this.fail(MalformedStreamError, side, st.recordStart, `record length ${length} exceeds ${MAX_RECORD_LENGTH}`);
    }
    if (!st.helloDone && type === RECORD_APPLICATION_DATA) {
      this.fail(ProtocolViolationError, side, st.recordStart, 'application data before the hello');
    }
    if (st.handshakeBytes > 0 && type !== RECORD_HANDSHAKE) {
      this.fail(ProtocolViolationError, side, st.recordStart, 'handshake message interrupted by another record type');
    }
    st.recordType = type;
    st.recordLength = length;
    st.readingHeader = length === 0;
    if (type === RECORD_ALERT && !st.helloDone && length === 2) {
      // A plaintext alert before the hello (e.g. the server refuses the ClientHello): read it.
      st.recordType = RECORD_HANDSHAKE;
      st.alertPending = true;
    }
  }

  private onHandshakeRecord(side: Side, st: SideState, payload: Buffer, recordEnd: number): void {
    if (st.alertPending) {
      st.alertPending = false;
      this.emit({ type: 'tls.alert', side, start: st.recordStart, end: recordEnd, level: payload[0]!, description: payload[1]! });
      return;
    }
    if (st.handshakeStart < 0) st.handshakeStart = st.recordStart;
    st.handshake.push(payload);
    st.handshakeBytes += payload.length;
    if (st.handshakeBytes > TLS_MAX_HELLO_BYTES) {
      this.fail(HeadTooLargeError, side, st.handshakeStart, `handshake message exceeds ${TLS_MAX_HELLO_BYTES} bytes`);
    }
    if (st.handshakeBytes < 4) return;
    const data = st.handshake.length === 1 ? st.handshake[0]! : Buffer.concat(st.handshake, st.handshakeBytes);
    st.handshake = [data];
    const msgType = data[0]!;
    const msgLength = data.readUIntBE(1, 3);
    if (msgLength + 4 > TLS_MAX_HELLO_BYTES) {
      this.fail(HeadTooLargeError, side, st.handshakeStart, `handshake message of ${msgLength} bytes exceeds ${TLS_MAX_HELLO_BYTES}`);
    }
    if (st.handshakeBytes < msgLength + 4) return;
    const start = st.handshakeStart;
    st.handshake = [];
    st.handshakeBytes = 0;
    st.handshakeStart = -1;
    st.helloDone = true;
    if (side === 'client') {
      if (msgType !== HANDSHAKE_CLIENT_HELLO) this.fail(ProtocolViolationError, side, start, `first handshake message is type ${msgType}, not ClientHello`);
      this.onClientHello(data, start, recordEnd);
    } else {
      if (msgType !== HANDSHAKE_SERVER_HELLO) this.fail(ProtocolViolationError, side, start, `first handshake message is type ${msgType}, not ServerHello`);
      this.onServerHello(data, start, recordEnd);
    }
  }

  private reader(side: Side, data: Buffer, start: number, message: string): Reader {
    const limit = 4 + data.readUIntBE(1, 3);
    return new Reader(data, 4, limit, (at, what) =>
      this.fail(MalformedStreamError, side, start, `${message} truncated in ${what} (byte ${at} of the message)`),
    );
  }

  private onClientHello(data: Buffer, start: number, end: number): void {
    const r = this.reader('client', data, start, 'ClientHello');
    const legacyVersion = r.u16('legacy_version');
    r.skip(32, 'random');
    r.skip(r.u8('session id length'), 'session id');
    const suitesLength = r.u16('cipher suites length');
    r.need(suitesLength, 'cipher suites');
    const cipherSuites: number[] = [];
    for (let i = 0; i + 1 < suitesLength; i += 2) cipherSuites.push(data.readUInt16BE(r.pos + i));
    r.skip(suitesLength, 'cipher suites');
    r.skip(r.u8('compression methods length'), 'compression methods');
    let sni: string | null = null;
    const alpn: string[] = [];
    const supportedVersions: number[] = [];
    const extensionTypes: number[] = [];
    if (r.pos < r.limit) {
      const extEnd = r.pos + 2 + r.u16('extensions length');
      if (extEnd > r.limit) r.need(extEnd - r.pos, 'extensions');
      while (r.pos < extEnd) {
        const type = r.u16('extension type');
        const length = r.u16('extension length');
        r.need(length, `extension ${type}`);
        const ext = new Reader(data, r.pos, r.pos + length, (at, what) =>
          this.fail(MalformedStreamError, 'client', start, `ClientHello extension ${type} truncated in ${what} (byte ${at})`),
        );
        extensionTypes.push(type);
        if (type === EXT_SERVER_NAME && length > 0) {
          const listEnd = ext.pos + 2 + ext.u16('server name list length');
          while (ext.pos < listEnd) {
            const nameType = ext.u8('name type');
            const nameLength = ext.u16('host name length');
            ext.need(nameLength, 'host name');
            if (nameType === 0 && sni === null) sni = data.toString('latin1', ext.pos, ext.pos + nameLength).toLowerCase();
            ext.pos += nameLength;
          }
        } else if (type === EXT_ALPN) {
          const listEnd = ext.pos + 2 + ext.u16('ALPN list length');
          while (ext.pos < listEnd) {
            const protoLength = ext.u8('protocol name length');
            ext.need(protoLength, 'protocol name');
            alpn.push(data.toString('latin1', ext.pos, ext.pos + protoLength));
            ext.pos += protoLength;
          }
        } else if (type === EXT_SUPPORTED_VERSIONS) {
          const listLength = ext.u8('versions length');
          ext.need(listLength, 'versions');
          for (let i = 0; i + 1 < listLength; i += 2) supportedVersions.push(data.readUInt16BE(ext.pos + i));
        }
        r.pos += length;
      }
    }
    this.clientHelloEnd = end;
    this.emit({ type: 'tls.client-hello', side: 'client', start, end, sni, alpn, legacyVersion, supportedVersions, cipherSuites, extensionTypes });
  }

  /** Absolute end of the record that completed the ClientHello (the client turns opaque there). */
  private clientHelloEnd = 0;

  private onServerHello(data: Buffer, start: number, end: number): void {
    const r = this.reader('server', data, start, 'ServerHello');
    const legacyVersion = r.u16('legacy_version');
    r.need(32, 'random');
    const helloRetryRequest = data.compare(HELLO_RETRY_RANDOM, 0, 32, r.pos, r.pos + 32) === 0;
    r.skip(32, 'random');
    r.skip(r.u8('session id length'), 'session id');
    const cipherSuite = r.u16('cipher suite');
    r.skip(1, 'compression method');
    let version = legacyVersion;
    let alpn: string | null = null;
    if (r.pos < r.limit) {
      const extEnd = r.pos + 2 + r.u16('extensions length');
      while (r.pos < extEnd) {
        const type = r.u16('extension type');
        const length = r.u16('extension length');
        r.need(length, `extension ${type}`);
        if (type === EXT_SUPPORTED_VERSIONS && length === 2) version = data.readUInt16BE(r.pos);
        if (type === EXT_ALPN && length >= 4) {
          const nameLength = data[r.pos + 2]!;
          if (3 + nameLength <= length) alpn = data.toString('latin1', r.pos + 3, r.pos + 3 + nameLength);
        }
        r.pos += length;
      }
    }
    this.emit({ type: 'tls.server-hello', side: 'server', start, end, version, versionName: tlsVersionName(version), cipherSuite, alpn, helloRetryRequest });
    if (helloRetryRequest) {
      // The client answers with a second ClientHello: read the next hello of both sides.
      this.client.helloDone = false;
      this.server.helloDone = false;
      return;
    }
    // From here on the handshake is encrypted (TLS 1.3) or of no interest to policy (≤ 1.2).
    this.markOpaque('client', this.clientHelloEnd, 'tls-encrypted');
    this.markOpaque('server', end, 'tls-encrypted');
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.gather.pending || !st.readingHeader || st.handshakeBytes > 0) this.truncated(side, offset, 'a TLS record');
  }
}
