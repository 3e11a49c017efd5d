// Protocol detection from the first bytes of a connection.
//
// Client-first protocols are recognised from what the client sends first:
//   HTTP/1.x request line (RFC 9112 §3), HTTP/2 prior-knowledge preface (RFC 9113 §3.4),
//   TLS ClientHello record (RFC 8446 §5.1, §4.1.2), SSH identification string (RFC 4253 §4.2),
//   DNS over TCP (RFC 7766 §8, RFC 1035 §4.1.1), Redis RESP arrays, PostgreSQL StartupMessage /
//   SSLRequest / GSSENCRequest / CancelRequest (PostgreSQL protocol 3, "Message Formats").
// Server-first protocols are recognised from the server's greeting (detectServerGreeting).
//
// Bounds: 'more' is answered only while the prefix is a proper prefix of some signature and
// shorter than DETECT_MAX_BYTES (24); the exception is documented at detectServerGreeting
// (SMTP/FTP need their whole first line, capped at GREETING_MAX_BYTES).
import { parseDnsMessage } from './dns/dns-message.js';
import type { ProtocolName } from './types.js';

export type DetectedClientProtocol = ProtocolName;
export type DetectedServerProtocol = 'ssh' | 'mysql' | 'smtp' | 'ftp' | 'pop3' | 'imap';
export type DetectConfidence = 'high' | 'medium' | 'low';

export type Detection<P extends string> =
  | { readonly kind: 'match'; readonly protocol: P; readonly confidence: DetectConfidence }
  | { readonly kind: 'more' }
  | { readonly kind: 'unknown' };

/** Detection never asks for more than this many bytes from the client. */
export const DETECT_MAX_BYTES = 24;
/** Server greetings of line-based protocols are read up to one line of at most this size. */
export const GREETING_MAX_BYTES = 512;

const MORE = Object.freeze({ kind: 'more' as const });
const UNKNOWN = Object.freeze({ kind: 'unknown' as const });

type Verdict<P extends string> = Detection<P>;

function match<P extends string>(protocol: P, confidence: DetectConfidence): Detection<P> {
  return { kind: 'match', protocol, confidence };
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Methods registered for HTTP/1.x that clients send in practice (IANA HTTP Method Registry). */
const HTTP_METHODS: readonly Buffer[] = [
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT',
  'MKACTIVITY', 'CHECKOUT', 'MERGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE', 'PURGE',
  'MKCALENDAR', 'LINK', 'UNLINK', 'ACL', 'BIND', 'REBIND', 'UNBIND', 'SOURCE', 'QUERY',
].map((m) => Buffer.from(m + ' ', 'latin1'));

/** Does `bytes` start with `sig`, or is it a proper prefix of it? 'full' | 'partial' | 'no'. */
function prefixState(bytes: Buffer, sig: Buffer): 'full' | 'partial' | 'no' {
  const n = Math.min(bytes.length, sig.length);
  if (bytes.compare(sig, 0, n, 0, n) !== 0) return 'no';
  return bytes.length >= sig.length ? 'full' : 'partial';
}

function detectHttp2(bytes: Buffer): Verdict<'http2'> {
  const state = prefixState(bytes, H2_PREFACE);
  if (state === 'full') return match('http2', 'high');
  return state === 'partial' ? MORE : UNKNOWN;
}

/** tchar (RFC 9110 §5.6.2): a method is a token (RFC 9110 §9.1). */
function isTchar(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b));
}

const KNOWN_METHOD_NAMES = new Set(HTTP_METHODS.map((m) => m.toString('latin1', 0, m.length - 1)));
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+[^\x00-\x20\x7f]+(?:[ \t]+HTTP\/\d+\.\d+)?[ \t]*\r?$/;

/**
 * An HTTP/1 request as servers accept it (RFC 9112 §2.2, §3): leading empty lines (CRLF or bare
 * LF) before the request-line, any token as the method (nginx takes unknown methods; llhttp
 * decides what it accepts), one or more SP or HTAB between the parts, no version at all
 * (HTTP/0.9 `GET /x`). Whatever could be a request to a lenient server is HTTP here, so it goes
 * to the HTTP parser — which refuses (and the connection is reset) what it will not read,
 * rather than letting it pass unparsed as TCP.
 */
function detectHttp1(bytes: Buffer): Verdict<'http'> {
  // 'PRI * HTTP/2.0' is a request line too: the whole HTTP/2 preface tells them apart.
  if (prefixState(bytes, H2_PREFACE) === 'partial') return MORE;
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x0d || bytes[i] === 0x0a)) i++;
  if (i === bytes.length) return MORE; // only empty lines so far
  const methodStart = i;
  while (i < bytes.length && isTchar(bytes[i]!)) i++;
  const method = bytes.toString('latin1', methodStart, i);
  const known = KNOWN_METHOD_NAMES.has(method);
  if (i === bytes.length) {
    // Still inside the method: a prefix of a known one, or a plausible unknown one (letters).
    for (const name of KNOWN_METHOD_NAMES) if (name.startsWith(method)) return MORE;
    return /^[A-Za-z_-]+$/.test(method) ? MORE : UNKNOWN;
  }
  if (i === methodStart || (bytes[i] !== 0x20 && bytes[i] !== 0x09)) return UNKNOWN;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09)) i++;
  if (i === bytes.length) return known ? MORE : /^[A-Za-z_-]+$/.test(method) ? MORE : UNKNOWN;
  const first = bytes[i]!;
  if (first <= 0x20 || first >= 0x7f) return UNKNOWN;
  // An unknown method must be followed by what a request-target starts with (origin-form '/',
  // asterisk-form, absolute-form), so text protocols ('SET key value') are not taken for HTTP.
  if (!known && first !== 0x2f && first !== 0x2a && first !== 0x68 && first !== 0x48) return UNKNOWN;
  const eol = bytes.indexOf(0x0a, i);
  if (eol > 0) {
    const line = bytes.toString('latin1', methodStart, eol);
    return REQUEST_LINE.test(line) ? match('http', 'high') : UNKNOWN;
  }
  return match('http', 'medium');
}

function detectTls(bytes: Buffer): Verdict<'tls'> {
  // TLSPlaintext: type 22 (handshake), legacy_record_version 3.x, length, then Handshake type 1.
  if (bytes.length === 0) return MORE;
  if (bytes[0] !== 0x16) return UNKNOWN;
  if (bytes.length < 2) return MORE;
  if (bytes[1] !== 0x03) return UNKNOWN;
  if (bytes.length < 3) return MORE;
  if (bytes[2]! > 0x04) return UNKNOWN;
  if (bytes.length < 5) return MORE;
  const length = bytes.readUInt16BE(3);
  if (length < 4 || length > 16384 + 2048) return UNKNOWN;
  if (bytes.length < 6) return MORE;
  return bytes[5] === 0x01 ? match('tls', 'high') : UNKNOWN;
}

const SSH_PREFIX = Buffer.from('SSH-', 'latin1');
const SSH_V2 = Buffer.from('SSH-2.0-', 'latin1');
const SSH_V199 = Buffer.from('SSH-1.99-', 'latin1');

function detectSsh<P extends 'ssh'>(bytes: Buffer, protocol: P): Verdict<P> {
  const head = prefixState(bytes, SSH_PREFIX);
  if (head === 'no') return UNKNOWN;
  if (head === 'partial') return MORE;
  const v2 = prefixState(bytes, SSH_V2);
  const v199 = prefixState(bytes, SSH_V199);
  if (v2 === 'full' || v199 === 'full') return match(protocol, 'high');
  if (v2 === 'partial' || v199 === 'partial') return MORE;
  return match(protocol, 'low'); // "SSH-" with another version: old or odd, still SSH
}

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

function detectRedis(bytes: Buffer): Verdict<'redis'> {
  // RESP: a command is an array of bulk strings: "*<n>\r\n$<len>\r\n<name>\r\n..."
  if (bytes.length === 0) return MORE;
  if (bytes[0] !== 0x2a) return UNKNOWN;
  let i = 1;
  if (i >= bytes.length) return MORE;
  if (!isDigit(bytes[i])) return UNKNOWN;
  while (i < bytes.length && isDigit(bytes[i]) && i < 8) i++;
  if (i >= bytes.length) return MORE;
  if (bytes[i] !== 0x0d) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  if (bytes[i] !== 0x0a) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  if (bytes[i] !== 0x24) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  return isDigit(bytes[i]) ? match('redis', 'high') : UNKNOWN;
}

const PG_SSL_REQUEST = 80877103;
const PG_GSSENC_REQUEST = 80877104;
const PG_CANCEL_REQUEST = 80877102;

function detectPostgres(bytes: Buffer): Verdict<'postgres'> {
  // Int32 length, Int32 code; lengths are small so the first two bytes are zero.
  for (let i = 0; i < Math.min(bytes.length, 2); i++) if (bytes[i] !== 0) return UNKNOWN;
  if (bytes.length < 8) return MORE;
  const length = bytes.readUInt32BE(0);
  const code = bytes.readUInt32BE(4);
  if ((code === PG_SSL_REQUEST || code === PG_GSSENC_REQUEST) && length === 8) return match('postgres', 'high');
  if (code === PG_CANCEL_REQUEST && length === 16) return match('postgres', 'high');
  // StartupMessage: protocol major 3, minor 0..2; at least "user\0x\0\0".
  if (code >>> 16 === 3 && (code & 0xffff) <= 2 && length >= 9 && length <= 10000) {
    return match('postgres', 'high');
  }
  return UNKNOWN;
}

function detectDns(bytes: Buffer): Verdict<'dns'> {
  // RFC 7766 §8: 2-byte length, then a DNS message. A query: QR=0, OPCODE 0 (QUERY) or
  // 4/5 (NOTIFY/UPDATE), QDCOUNT=1, ANCOUNT=0; decided on the length + 12-byte header.
  if (bytes.length < 2) return MORE;
  const length = bytes.readUInt16BE(0);
  if (length < 17) return UNKNOWN; // header + root name + type + class
  if (bytes.length < 14) return MORE;
  const flags = bytes.readUInt16BE(4);
  const qr = flags >> 15;
  const opcode = (flags >> 11) & 0xf;
  if (qr !== 0 || (opcode !== 0 && opcode !== 4 && opcode !== 5)) return UNKNOWN;
  if (bytes.readUInt16BE(6) !== 1 || bytes.readUInt16BE(8) !== 0) return UNKNOWN;
  if ((flags & 0xf) !== 0) return UNKNOWN; // RCODE is 0 in queries
  if (bytes.length >= length + 2) {
    // The whole message is here: it must decode.
    try {
      parseDnsMessage(bytes.subarray(2, 2 + length));
      return match('dns', 'high');
    } catch {
      return UNKNOWN;
    }
  }
  return match('dns', 'medium');
}

/**
 * Classify a connection from the first bytes the client sent. `more` means: feed more bytes
 * (never needed beyond DETECT_MAX_BYTES; at that length the answer is match or unknown).
 */
export function detectClientProtocol(bytes: Buffer): Detection<DetectedClientProtocol> {
  if (bytes.length === 0) return MORE;
  const verdicts: Array<Verdict<DetectedClientProtocol>> = [
    detectHttp2(bytes),
    detectTls(bytes),
    detectSsh(bytes, 'ssh'),
    detectPostgres(bytes),
    detectRedis(bytes),
    detectDns(bytes),
    detectHttp1(bytes),
  ];
  let best: Detection<DetectedClientProtocol> | null = null;
  let more = false;
  for (const v of verdicts) {
    if (v.kind === 'match') {
      if (best === null || rank(v.confidence) > rank(best.kind === 'match' ? best.confidence : 'low')) best = v;
    } else if (v.kind === 'more') {
      more = true;
    }
  }
  // A high-confidence match wins; a weaker one waits while a stronger signature is still possible.
  if (best !== null && (best.kind === 'match' && best.confidence === 'high')) return best;
  if (more && bytes.length < DETECT_MAX_BYTES) return MORE;
  return best ?? UNKNOWN;
}

/**
 * Detection timed out (or the client stopped) on bytes that are still a proper prefix: the
 * protocol they can only be the start of, so its parser reads them (and what follows) rather
 * than the flow passing as TCP — a request split as `G`, pause, `ET /admin ...` is HTTP. Null
 * when no such protocol (or DNS's 1-byte ambiguity alone) remains: then the flow is undetected.
 */
export function detectOnTimeout(bytes: Buffer): DetectedClientProtocol | null {
  if (bytes.length === 0) return null;
  const candidates: Array<[DetectedClientProtocol, Verdict<DetectedClientProtocol>]> = [
    ['http2', detectHttp2(bytes)],
    ['tls', detectTls(bytes)],
    ['ssh', detectSsh(bytes, 'ssh')],
    ['postgres', detectPostgres(bytes)],
    ['redis', detectRedis(bytes)],
    ['http', detectHttp1(bytes)],
  ];
  for (const [protocol, v] of candidates) if (v.kind === 'match') return protocol;
  // A cut request-line: a prefix of a known method (`G`, `POS`) or a method and its separator.
  // ('PRI' is both the HTTP/2 preface and an HTTP/1 method: HTTP/1's parser takes it.) Bare
  // tokens and empty lines are not taken for HTTP: a text protocol's `ping` would wait forever.
  if (httpRequestLinePrefix(bytes)) return 'http';
  const more = candidates.filter(([p, v]) => v.kind === 'more' && p !== 'http').map(([p]) => p);
  return more.length === 1 ? more[0]! : null;
}

function httpRequestLinePrefix(bytes: Buffer): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x0d || bytes[i] === 0x0a)) i++;
  const start = i;
  while (i < bytes.length && isTchar(bytes[i]!)) i++;
  const method = bytes.toString('latin1', start, i);
  if (method.length === 0) return false;
  if (i === bytes.length) {
    for (const name of KNOWN_METHOD_NAMES) if (name.startsWith(method)) return true;
    return false;
  }
  return (bytes[i] === 0x20 || bytes[i] === 0x09) && detectHttp1(bytes).kind !== 'unknown';
}

/**
 * The parser that reads what detection did not recognise on a port declared to carry
 * `declared` (`ports:`), or null for a protocol without a parser.
 */
export function declaredParser(declared: string): DetectedClientProtocol | null {
  switch (declared) {
    case 'http':
      return 'http';
    case 'http2':
    case 'grpc':
      return 'http2';
    case 'tls':
    case 'dns':
    case 'ssh':
    case 'redis':
    case 'postgres':
      return declared;
    default:
      return null;
  }
}

function rank(c: DetectConfidence): number {
  return c === 'high' ? 3 : c === 'medium' ? 2 : 1;
}

function detectMysqlGreeting(bytes: Buffer): Verdict<'mysql'> {
  // MySQL/MariaDB Protocol::Handshake v10: 3-byte LE payload length, sequence id 0,
  // protocol version 10, NUL-terminated server version, 4-byte thread id, ...
  if (bytes.length < 5) {
    if (bytes.length >= 4 && bytes[3] !== 0) return UNKNOWN;
    return MORE;
  }
  const length = bytes.readUIntLE(0, 3);
  if (bytes[3] !== 0 || length < 10 || length > 1024) return UNKNOWN;
  if (bytes[4] === 0xff) {
    // ERR packet as greeting (e.g. "Host ... is not allowed to connect"): 0xff, code, message.
    return match('mysql', 'medium');
  }
  if (bytes[4] !== 0x0a) return UNKNOWN;
  const versionEnd = bytes.indexOf(0, 5);
  const scanned = versionEnd < 0 ? bytes.length : versionEnd;
  for (let i = 5; i < scanned; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b > 0x7e) return UNKNOWN;
  }
  if (versionEnd < 0) return scanned - 5 < 64 && bytes.length < 64 + 5 ? MORE : UNKNOWN;
  return versionEnd > 5 ? match('mysql', 'high') : UNKNOWN;
}

function detectLineGreeting(bytes: Buffer): Verdict<'smtp' | 'ftp' | 'pop3' | 'imap'> {
  const eol = bytes.indexOf(0x0a);
  const text = bytes.toString('latin1', 0, eol < 0 ? Math.min(bytes.length, GREETING_MAX_BYTES) : eol);
  if (/^\+OK(\s|$)/.test(text)) return match('pop3', 'high');
  if (/^\* (OK|PREAUTH|BYE)(\s|$)/i.test(text)) return match('imap', 'high');
  if (/^220[ -]/.test(text)) {
    if (eol < 0 && bytes.length < GREETING_MAX_BYTES) return MORE;
    // RFC 5321 §4.2 and RFC 959 §5.4 share the 220 greeting; the text names the service.
    if (/\bE?SMTP\b|\bMail\b|\bPostfix\b|\bExim\b/i.test(text)) return match('smtp', 'high');
    if (/\bFTP\b|FileZilla|vsFTPd|ProFTPD|Pure-FTPd/i.test(text)) return match('ftp', 'high');
    return match('smtp', 'low');
  }
  // Proper prefixes of the signatures above.
  if (text.length < 4 && eol < 0) {
    for (const sig of ['+OK', '* OK', '* PREAUTH', '* BYE', '220 ', '220-']) {
      if (sig.startsWith(text)) return MORE;
    }
  }
  return UNKNOWN;
}

/**
 * Classify a server-first protocol from the server's greeting: SSH identification string,
 * MySQL/MariaDB initial handshake (v10), SMTP/FTP `220`, POP3 `+OK`, IMAP `* OK`.
 * Exception to the 24-byte bound: a `220` greeting is read to its line end (at most
 * GREETING_MAX_BYTES) because only its text tells SMTP from FTP.
 */
export function detectServerGreeting(bytes: Buffer): Detection<DetectedServerProtocol> {
  if (bytes.length === 0) return MORE;
  const verdicts: Array<Verdict<DetectedServerProtocol>> = [
    detectSsh(bytes, 'ssh'),
    detectMysqlGreeting(bytes),
    detectLineGreeting(bytes),
  ];
  let more = false;
  for (const v of verdicts) {
    if (v.kind === 'match') return v;
    if (v.kind === 'more') more = true;
  }
  return more && bytes.length < GREETING_MAX_BYTES ? MORE : UNKNOWN;
}
