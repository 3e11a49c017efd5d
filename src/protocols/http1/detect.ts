// HTTP/1.x request line as servers accept it (RFC 9112 §2.2, §3).
import { match, MORE, prefixState, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';
import { H2_PREFACE } from '../http2/detect.js';

/** Methods registered for HTTP/1.x that clients send in practice (IANA HTTP Method Registry). */
const HTTP_METHODS: readonly Buffer[] = [
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT',
  'MKACTIVITY', 'CHECKOUT', 'MERGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE', 'PURGE',
  'MKCALENDAR', 'LINK', 'UNLINK', 'ACL', 'BIND', 'REBIND', 'UNBIND', 'SOURCE', 'QUERY',
].map((m) => Buffer.from(m + ' ', 'latin1'));

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
export function detectHttp1(bytes: Buffer): Detection<'http'> {
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

export function httpRequestLinePrefix(bytes: Buffer): boolean {
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

