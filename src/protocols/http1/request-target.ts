// One normalisation of HTTP request targets for the rules, for HTTP/1 (RFC 9112 §3.2) and HTTP/2
// `:path`/`:authority` (RFC 9113 §8.3.1) alike, after Envoy's `normalize_path` + `merge_slashes`
// + `path_with_escaped_slashes_action` (RFC 3986 §6.2.2: percent-decoding of unreserved
// characters, §5.2.4: dot-segment removal). A rule sees the path every server behind us would
// resolve, or the request is refused: whatever servers could read two ways (an escaped slash,
// a backslash, `%00`, broken or overlong UTF-8, an absolute-form host differing from Host) is
// not guessed at. The decisions and their reasons are tabled in the README ("Request targets").
import { removeDotSegments } from '../../policy/glob.js';

/** What to do with `%2F`, `%5C` and `\` in a path (Envoy: path_with_escaped_slashes_action). */
export type EscapedSlashes = 'reject' | 'decode';

export interface TargetOptions {
  /**
   * `reject` (default): 400. nginx and Python's http.server decode `%2F` into a separator,
   * Node's router and Envoy do not, and Node apps using `new URL()` treat `\` as `/`: no one
   * reading serves them all. `decode`: `%2F`, `%5C` and `\` become `/` before dot segments are
   * resolved (the reading that resolves the most, so a deny of `/admin/**` covers `/admin%2Fx`).
   */
  readonly escapedSlashes: EscapedSlashes;
}

export const DEFAULT_TARGET_OPTIONS: TargetOptions = Object.freeze({ escapedSlashes: 'reject' });

export type NormalizedTarget =
  | { readonly ok: true; readonly path: string; readonly host: string | undefined }
  | { readonly ok: false; readonly reason: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** RFC 3986 pchar (less pct-encoded, handled apart) plus '/'; '\' is handled apart too. */
const PATH_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]$/;
const QUERY_BAD = /[\x00-\x20\x7f#]/;
/** RFC 3986 §3.2.2 reg-name as DNS names use it: letters, digits, '-', '_' per label; a final dot. */
const REG_NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;
const IPV6_LITERAL = /^\[([0-9a-f:.]+)\]$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function refuse(reason: string): NormalizedTarget {
  return { ok: false, reason };
}

/**
 * `host [":" port]` of a Host field, `:authority` or absolute-form target (RFC 3986 §3.2.2,
 * §3.2.3): lower-cased name (no trailing dot) or bracketed IPv6, and the port; null when it is
 * anything else (userinfo, percent-encoding, a second colon, an empty label, a bad port).
 */
export function parseAuthority(raw: string): { host: string; port: number | null } | null {
  const value = raw.toLowerCase();
  let host = value;
  let port: number | null = null;
  const close = value.lastIndexOf(']');
  const colon = value.lastIndexOf(':');
  if (colon > close) {
    host = value.slice(0, colon);
    const digits = value.slice(colon + 1);
    if (!/^\d{1,5}$/.test(digits) || Number(digits) > 65535) return null;
    port = Number(digits);
  }
  const v6 = IPV6_LITERAL.exec(host);
  if (v6 !== null) return isIpv6(v6[1]!) ? { host, port } : null;
  if (host === '' || host.length > 253 || !REG_NAME.test(host)) return null;
  return { host: host.endsWith('.') ? host.slice(0, -1) : host, port };
}

function isIpv6(text: string): boolean {
  // Delegates to the URL parser's IPv6 grammar (RFC 4291 §2.2), which rejects zone ids too.
  try {
    return new URL(`http://[${text}]/`).hostname !== '';
  } catch {
    return false;
  }
}

/**
 * A path the character loop below and dot-segment removal would both return unchanged: only
 * PATH_CHAR characters (so no '%' and no '\\'), starting with '/', and (tested apart) no '//'
 * and no '/.' (so no empty, '.' or '..' segment and no '..;'). Most requests' paths are such.
 */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

/**
 * The path a rule sees: `%XX` of unreserved characters decoded (upper-case hex kept for the
 * rest), escaped slashes per `options`, `//` merged, `.` and `..` segments removed.
 */
export function normalizePathPart(path: string, options: TargetOptions): string | { reason: string } {
  // Fast path, exactly what the general one returns for such a path (the unit tests compare the
  // two on random paths): no array of characters and no strings per request for '/api/items'.
  if (PLAIN_PATH.test(path) && !path.includes('//') && !path.includes('/.')) return path;
  return normalizePathPartByChar(path, options);
}

/** The general normalisation, character by character (exported for the fast path's tests). */
export function normalizePathPartByChar(path: string, options: TargetOptions): string | { reason: string } {
  const out: string[] = [];
  const bytes: number[] = []; // a run of escaped non-ASCII bytes, checked as UTF-8 when it ends
  const flushUtf8 = (): string | null => {
    if (bytes.length === 0) return null;
    try {
      utf8.decode(Uint8Array.from(bytes));
    } catch {
      return 'percent-encoded bytes that are not UTF-8 (overlong or broken sequences are refused)';
    }
    bytes.length = 0;
    return null;
  };
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '%') {
      const hex = path.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return { reason: 'invalid percent-encoding' };
      const code = parseInt(hex, 16);
      i += 2;
      if (code >= 0x80) {
        bytes.push(code);
        out.push(`%${hex.toUpperCase()}`);
        continue;
      }
      const bad = flushUtf8();
      if (bad !== null) return { reason: bad };
      if (code === 0) return { reason: '%00 in the path' };
      if (code < 0x20 || code === 0x7f) return { reason: 'an escaped control character in the path' };
      const ch = String.fromCharCode(code);
      if (code === 0x2f || code === 0x5c) {
        if (options.escapedSlashes === 'reject') return { reason: `an escaped ${code === 0x2f ? 'slash (%2F)' : 'backslash (%5C)'} in the path` };
        out.push('/');
        continue;
      }
      if (code === 0x25 && HEX.test(path.slice(i + 1, i + 3)) && options.escapedSlashes === 'reject') {
        // %25XX: a server or app that decodes twice reads XX; which XX does not matter to us.
        return { reason: 'double percent-encoding (%25 followed by hex digits)' };
      }
      out.push(UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`);
      continue;
    }
    const bad = flushUtf8();
    if (bad !== null) return { reason: bad };
    if (c === '\\') {
      if (options.escapedSlashes === 'reject') return { reason: 'a backslash in the path' };
      out.push('/');
      continue;
    }
    if (!PATH_CHAR.test(c)) return { reason: `character ${JSON.stringify(c)} not allowed in a path` };
    out.push(c);
  }
  const bad = flushUtf8();
  if (bad !== null) return { reason: bad };
  return resolveDotSegments(out.join(''));
}

/** RFC 3986 §5.2.4 on a path whose slashes are merged (Envoy merge_slashes), refusing `..;` first. */
function resolveDotSegments(path: string): string | { reason: string } {
  // `..;x` is `..` to Tomcat and Jetty (path parameters are cut before resolving).
  if (/\/\.\.?;/.test(path)) return { reason: 'a dot segment with ";" parameters' };
  return removeDotSegments(path);
}

function samePort(a: number | null, b: number | null, scheme: string): boolean {
  const fallback = scheme === 'https' ? 443 : 80;
  return (a ?? fallback) === (b ?? fallback);
}

/**
 * Normalises a request's target and host for the rules. `hostField`: the Host header (HTTP/1) or
 * `:authority` (HTTP/2); undefined when absent.
 */
export function normalizeRequestTarget(method: string, target: string, hostField: string | undefined, options: TargetOptions = DEFAULT_TARGET_OPTIONS): NormalizedTarget {
  let host: string | undefined;
  if (hostField !== undefined) {
    const authority = parseAuthority(hostField);
    if (authority === null) return refuse(`invalid host ${JSON.stringify(hostField.slice(0, 80))}`);
    host = authority.host;
  }
  if (method === 'CONNECT') {
    // RFC 9110 §9.3.6: authority-form, host and port; it names the host the tunnel goes to.
    const authority = parseAuthority(target);
    if (authority === null || authority.port === null) return refuse('CONNECT target is not host:port');
    if (host !== undefined && host !== authority.host) return refuse('CONNECT target and Host name different hosts');
    return { ok: true, path: target, host: authority.host };
  }
  if (target === '*') {
    return method === 'OPTIONS' ? { ok: true, path: '*', host } : refuse('asterisk-form target outside OPTIONS');
  }
  let rest = target;
  if (!target.startsWith('/')) {
    // RFC 9112 §3.2.2: absolute-form; the target's authority decides the host, and a Host field
    // naming another one is refused (nginx serves the target's host, an app may use Host).
    const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(target);
    if (m === null) return refuse('request target is neither origin-form nor absolute-form');
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return refuse(`absolute-form target with scheme ${scheme}`);
    if (m[2]!.includes('@')) return refuse('userinfo in the request target');
    const authority = parseAuthority(m[2]!);
    if (authority === null) return refuse(`invalid host in the request target`);
    if (hostField !== undefined) {
      const given = parseAuthority(hostField)!;
      if (given.host !== authority.host || !samePort(given.port, authority.port, scheme)) return refuse('absolute-form target and Host name different hosts');
    }
    host = authority.host.endsWith('.') ? authority.host.slice(0, -1) : authority.host;
    rest = m[3]! === '' ? '/' : m[3]!;
    if (!rest.startsWith('/')) {
      if (!rest.startsWith('?')) return refuse('request target path does not start with "/"');
      rest = '/' + rest;
    }
  }
  const q = rest.indexOf('?');
  const pathPart = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  if (QUERY_BAD.test(query)) return refuse('control character, space or "#" in the query');
  if (pathPart.includes('#')) return refuse('"#" in the request target');
  const path = normalizePathPart(pathPart, options);
  if (typeof path !== 'string') return refuse(path.reason);
  return { ok: true, path: path + query, host };
}
