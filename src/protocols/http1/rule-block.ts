// The `http:` rule block (PRODUCT.md "Rules": {methods, paths, hosts, authorities, headers}): its
// schema, normalisation, matcher and warnings. HTTP semantics (method, path, host) exist in
// HTTP/1.x, HTTP/2 and gRPC alike, so the block fits those three rule protocols; the facts are
// what http-facts.ts gives the rules (`l7.http`). Paths are matched after normalisation
// (glob.ts normalizePath: RFC 3986 §5.2.4 dot segments, unreserved percent-decoding, merged
// slashes), hosts without case, trailing dot and port (normalizeHost).
import { compileGlobs, globMatches, normalizeHost, normalizePath, type GlobMatcher } from '../../policy/glob.js';
import { blockSchema, normalizeLists, oneOrList, str, TOKEN } from '../../schema/rule-block.js';
import type { RuleBlockPlugin } from '../plugin.js';

/** What an HTTP request gives the rules (HttpRequestFacts; plain objects in `policy test`). */
export interface HttpFacts {
  readonly method: string;
  readonly path: string;
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

interface HttpBlock {
  methods?: string[];
  paths?: string[];
  hosts?: string[];
  /** CONNECT targets, host-glob:port. */
  authorities?: string[];
  headers?: Record<string, string>;
}

/** IANA HTTP Method Registry (https://www.iana.org/assignments/http-methods), plus PURGE and M-SEARCH seen in the wild. */
export const KNOWN_HTTP_METHODS: ReadonlySet<string> = new Set([
  'ACL', 'BASELINE-CONTROL', 'BIND', 'CHECKIN', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LABEL', 'LINK', 'LOCK',
  'MERGE', 'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MKREDIRECTREF', 'MKWORKSPACE', 'MOVE', 'OPTIONS', 'ORDERPATCH', 'PATCH', 'POST',
  'PRI', 'PROPFIND', 'PROPPATCH', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'TRACE', 'UNBIND', 'UNCHECKOUT', 'UNLINK', 'UNLOCK',
  'UPDATE', 'UPDATEREDIRECTREF', 'VERSION-CONTROL', 'PURGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE',
]);
const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

function closeTo(word: string, candidates: readonly string[]): string | undefined {
  // Same letters in another order (GTE → GET), or one letter off (PSOT, PUTT).
  const sorted = [...word].sort().join('');
  for (const c of candidates) if ([...c].sort().join('') === sorted) return c;
  for (const c of candidates) {
    if (Math.abs(c.length - word.length) > 1) continue;
    let i = 0;
    while (i < c.length && c[i] === word[i]) i++;
    const rest = (a: string, b: string): boolean => a.slice(i + 1) === b.slice(i + 1) || a.slice(i + 1) === b.slice(i) || a.slice(i) === b.slice(i + 1);
    if (rest(c, word)) return c;
  }
  return undefined;
}

/** '/admin*' → '/admin/**': a glob ending in a '*' that is not a whole segment. */
function segmentStarTrap(glob: string): string | null {
  if (!glob.endsWith('*') || glob.endsWith('**') || glob.endsWith('/*')) return null;
  const stem = glob.slice(0, -1);
  if (stem.includes('*')) return null;
  return `${stem}/**`;
}

const upper = (s: string): string => s.toUpperCase();
const lowerName = (s: string): string => s.toLowerCase().replace(/\.$/, '');

/**
 * 'host-glob:port' or '[v6]:*' (the schema checked the form). A host of '*' alone is any host
 * (`CONNECT *:443`, as forward-proxy rules are written); other host globs match label by label.
 */
function compileAuthority(pattern: string): { host: GlobMatcher; port: number | null } {
  const colon = pattern.lastIndexOf(':');
  const host = pattern.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = pattern.slice(colon + 1);
  return { host: compileGlobs('name', [host === '*' ? '**' : host]), port: port === '*' ? null : Number(port) };
}

/**
 * A CONNECT target against `authorities`: only CONNECT requests have one (a rule naming
 * authorities never matches another method). The target is split at its last colon; a target
 * that is not host:port matches no allow rule and every deny rule that could apply.
 */
function authorityMatches(list: ReadonlyArray<{ host: GlobMatcher; port: number | null }>, method: string, target: string, action: 'allow' | 'deny' | 'pass'): boolean {
  if (method.toUpperCase() !== 'CONNECT') return false;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):([0-9]{1,5})$/.exec(target);
  if (m === null) return action === 'deny';
  const host = (m[1] ?? m[2] ?? '').toLowerCase().replace(/\.$/, '');
  const port = Number(m[3]);
  return list.some((a) => (a.port === null || a.port === port) && globMatches(a.host, host));
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  const sorted: Record<string, T> = {};
  for (const key of Object.keys(record).sort()) sorted[key] = record[key]!;
  return sorted;
}

/**
 * The facts of the request being decided, each normalised at most once for all the rules it
 * meets, and only when a rule asks (one decision reads the same facts object rule after rule; a
 * new object, or a changed path or host, starts over).
 */
let seen: HttpFacts | null = null;
let seenRawPath = '';
let seenRawHost: string | undefined;
let seenPath: string | null = null;
let seenHost: string | undefined | null = null;
let seenHeaders: Map<string, string> | null = null;

function prepare(facts: HttpFacts): void {
  if (facts === seen && facts.path === seenRawPath && facts.host === seenRawHost) return;
  seen = facts;
  seenRawPath = facts.path;
  seenRawHost = facts.host;
  seenPath = null;
  seenHost = null;
  seenHeaders = null;
}

function pathOf(facts: HttpFacts): string {
  return (seenPath ??= normalizePath(facts.path));
}

function hostOf(facts: HttpFacts): string | undefined {
  if (seenHost === null) seenHost = facts.host === undefined ? undefined : normalizeHost(facts.host);
  return seenHost;
}

function header(facts: HttpFacts, name: string): string | undefined {
  if (seenHeaders === null) {
    seenHeaders = new Map();
    const given = facts.headers;
    if (given !== undefined) for (const key of Object.keys(given)) seenHeaders.set(key.toLowerCase(), given[key]!);
  }
  return seenHeaders.get(name);
}

export const httpRuleBlock: RuleBlockPlugin<HttpBlock, HttpFacts> = {
  key: 'http',
  protocols: ['http', 'http2', 'grpc'],
  schema: blockSchema('http', {
    methods: oneOrList(str({ pattern: TOKEN, 'x-messages': { pattern: "'{value}' is not an HTTP method" } })),
    paths: oneOrList(str({ format: 'path-glob' })),
    hosts: oneOrList(str({ format: 'name-glob' })),
    // The target of a CONNECT (RFC 9110 §9.3.6 authority-form): a name glob or IP, and a port or '*'.
    authorities: oneOrList(str({ pattern: '^([^:\\s\\[\\]]+|\\[[0-9A-Fa-f:.]+\\]):([0-9]{1,5}|\\*)$', 'x-messages': { pattern: "'{value}' is not host:port (a name glob or IP address, then a port or '*'), e.g. '*.example.com:443'" } })),
    headers: {
      type: 'object',
      minProperties: 1,
      'x-messages': {
        type: 'must be a non-empty mapping of header name to value pattern, not {describe}',
        minProperties: 'must be a non-empty mapping of header name to value pattern, not {describe}',
      },
      propertyNames: { type: 'string', pattern: TOKEN, 'x-messages': { pattern: "'{value}' is not an HTTP header name" } },
      additionalProperties: str({ 'x-messages': { type: "must be a string value pattern ('*' for any value), not {describe}" } }),
    },
  }),
  normalize: (block) => {
    const { headers, ...lists } = block;
    const out = normalizeLists(lists, { methods: upper, hosts: lowerName, authorities: (a) => a.toLowerCase() });
    if (headers !== undefined) {
      const lower: Record<string, string> = {};
      for (const [name, pattern] of Object.entries(headers as Record<string, string>)) lower[name.toLowerCase()] = pattern;
      out.headers = sortKeys(lower);
    }
    return out;
  },
  compile: (h) => {
    const methods = h.methods === undefined ? null : new Set(h.methods);
    const paths = h.paths === undefined ? null : compileGlobs('path', h.paths);
    const hosts = h.hosts === undefined ? null : compileGlobs('name', h.hosts);
    const authorities = h.authorities === undefined ? null : h.authorities.map(compileAuthority);
    const headers = h.headers === undefined ? null : Object.entries(h.headers).map(([name, value]): [string, GlobMatcher] => [name, compileGlobs('plain', [value])]);
    return (http, action) => {
      prepare(http);
      if (methods !== null && !methods.has(http.method.toUpperCase())) return false;
      if (paths !== null && !globMatches(paths, pathOf(http))) return false;
      if (hosts !== null) {
        const host = hostOf(http);
        if (host === undefined || !globMatches(hosts, host)) return false;
      }
      if (authorities !== null && !authorityMatches(authorities, http.method, http.path, action)) return false;
      if (headers !== null) {
        for (let i = 0; i < headers.length; i++) {
          const [name, pattern] = headers[i]!;
          const value = header(http, name);
          if (value === undefined || !globMatches(pattern, value)) return false;
        }
      }
      return true;
    };
  },
  warnings: (h) => {
    const out: Array<{ field: string; message: string }> = [];
    const paths = h.paths ?? [];
    for (const path of paths) {
      const subtree = segmentStarTrap(path);
      if (subtree === null || paths.includes(subtree)) continue;
      out.push({ field: 'paths', message: `'${path}' matches '${path.slice(0, -1)}' and '${path.slice(0, -1)}-x' but not '${path.slice(0, -1)}/x': '*' stays within one path segment; for the subtree write '${subtree}' (as well)` });
    }
    for (const method of h.methods ?? []) {
      if (KNOWN_HTTP_METHODS.has(method) || method === '*') continue;
      const guess = closeTo(method, COMMON_METHODS);
      out.push({ field: 'methods', message: `'${method}' is not a registered HTTP method, so no request will match it${guess === undefined ? '' : ` (did you mean '${guess}'?)`}` });
    }
    return out;
  },
};
