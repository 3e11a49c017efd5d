// Rule schema (PRODUCT.md "Rules"): validates untyped input (parsed YAML/JSON) and produces the
// normalised rule form that is hashed and compiled. Every problem becomes a RuleIssue with the
// rule's index and the field, and validation goes on so the user sees all of them at once.
//
// A rule:
//   id: string, unique across both tiers ('default' is reserved for the defaultAction)
//   action: allow | deny | pass (pass: cluster tier only)
//   log: boolean (default false); description: free text
//   direction: ingress | egress | intra, or a list of them (default: all)
//   peer: {cidr, namespace, labels, serviceAccount, service} or a list of such (any of them);
//         inside one peer every given field must match; cidr/namespace/serviceAccount take a
//         string or list; service takes 'namespace/name', {namespace, name} or a list of them, or
//         a bare 'name' when the peer gives `namespace` (then it names that namespace's Service)
//   ports: 80, "8000-8100", or a list of them (the destination port)
//   protocol: one of RULE_PROTOCOLS (connections), or udp / icmp (DATAGRAM_PROTOCOLS: the
//         non-TCP guard's flows; such a rule takes direction, peer and, for udp, ports; never L7)
//   at most one L7 block: http {methods, paths, hosts, headers}, grpc {services, methods},
//         tls {sni, alpn}, dns {names, types}, redis {commands, keys},
//         postgres {users, databases, statements}, mysql {users, databases, statements};
//         without `protocol` the block implies it.

import { globToRegExpSource, type GlobKind } from './glob.js';
import { parseCidr } from './ip.js';
import type { Direction, RuleAction, RuleIssue, Tier } from './types.js';

/**
 * Protocol names a port may be declared to carry (`ports:` in the config): what protocol
 * verification expects there, detected or not.
 */
export const PROTOCOLS: readonly string[] = [
  'tcp', 'http', 'http2', 'grpc', 'tls', 'dns', 'ssh', 'redis', 'postgres', 'mysql',
  'smtp', 'ftp', 'pop3', 'imap', 'kafka', 'mongodb', 'amqp', 'mqtt',
];

/**
 * Protocol names a rule may use: only those the sidecar detects (protocols/detect.ts, client
 * bytes or server greeting), since a rule for a protocol nothing detects would silently never
 * match. 'tcp' matches every connection. Extend as detectors land.
 */
export const RULE_PROTOCOLS: readonly string[] = [
  'tcp', 'http', 'http2', 'grpc', 'tls', 'dns', 'ssh', 'redis', 'postgres', 'mysql',
  'smtp', 'ftp', 'pop3', 'imap',
];

/**
 * Rule protocols that are not TCP: decided per flow from the first packet (the non-TCP guard).
 * They are not stream protocols, so they are kept apart from PROTOCOLS (which the `ports:`
 * setting also uses).
 */
export const DATAGRAM_PROTOCOLS: readonly string[] = ['udp', 'icmp'];

/** ruleId of the decision for non-TCP traffic no rule matched: always deny (PRODUCT.md "Rules"). */
export const NON_TCP_DEFAULT_ID = 'default:non-tcp';

export type L7Kind = 'http' | 'grpc' | 'tls' | 'dns' | 'redis' | 'postgres' | 'mysql';
export const L7_KINDS: readonly L7Kind[] = ['http', 'grpc', 'tls', 'dns', 'redis', 'postgres', 'mysql'];

/**
 * Which rule protocols an L7 block may be combined with. HTTP semantics (method, path, host)
 * exist in HTTP/1.x, HTTP/2 and gRPC alike; a gRPC block needs gRPC, which runs on HTTP/2.
 */
export const L7_COMPATIBLE: Record<L7Kind, readonly string[]> = {
  http: ['http', 'http2', 'grpc'],
  grpc: ['grpc', 'http2', 'http'],
  tls: ['tls'],
  dns: ['dns'],
  redis: ['redis'],
  postgres: ['postgres'],
  mysql: ['mysql'],
};

/**
 * Statement verbs a `statements` list may name (the leading keyword of a SQL statement; see
 * protocols/sql/sql-statements.ts). 'DDL' names CREATE, ALTER, DROP, TRUNCATE, RENAME, COMMENT.
 */
export const SQL_VERBS: ReadonlySet<string> = new Set([
  'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'UPSERT', 'REPLACE', 'COPY', 'CREATE', 'ALTER', 'DROP', 'TRUNCATE',
  'RENAME', 'COMMENT', 'GRANT', 'REVOKE', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'END', 'ABORT',
  'SET', 'SHOW', 'RESET', 'EXPLAIN', 'ANALYZE', 'VACUUM', 'CLUSTER', 'REINDEX', 'LOCK', 'UNLOCK', 'DO', 'CALL', 'EXECUTE',
  'PREPARE', 'DEALLOCATE', 'DECLARE', 'FETCH', 'MOVE', 'CLOSE', 'LISTEN', 'NOTIFY', 'UNLISTEN', 'DISCARD', 'CHECKPOINT',
  'LOAD', 'REFRESH', 'SECURITY', 'IMPORT', 'VALUES', 'TABLE', 'USE', 'DESCRIBE', 'DESC', 'HANDLER', 'KILL', 'FLUSH',
  'OPTIMIZE', 'REPAIR', 'CHECK', 'CHECKSUM', 'INSTALL', 'UNINSTALL', 'SHUTDOWN', 'HELP', 'XA', 'BINLOG', 'PURGE',
  'CHANGE', 'STOP', 'BACKUP', 'SIGNAL', 'RESIGNAL', 'GET', 'DDL',
]);

const DNS_TYPES = new Set([
  'A', 'NS', 'CNAME', 'SOA', 'PTR', 'HINFO', 'MX', 'TXT', 'RP', 'AFSDB', 'SIG', 'KEY', 'AAAA', 'LOC',
  'SRV', 'NAPTR', 'KX', 'CERT', 'DNAME', 'OPT', 'APL', 'DS', 'SSHFP', 'IPSECKEY', 'RRSIG', 'NSEC',
  'DNSKEY', 'DHCID', 'NSEC3', 'NSEC3PARAM', 'TLSA', 'SMIMEA', 'HIP', 'CDS', 'CDNSKEY', 'OPENPGPKEY',
  'CSYNC', 'ZONEMD', 'SVCB', 'HTTPS', 'SPF', 'NULL', 'TKEY', 'TSIG', 'IXFR', 'AXFR', 'ANY', 'URI', 'CAA',
]);

export interface NormalizedPeer {
  cidr?: string[];
  namespace?: string[];
  labels?: Record<string, string>;
  serviceAccount?: string[];
  /** Kubernetes Services as 'namespace/name'. */
  service?: string[];
}

export interface NormalizedHttp {
  methods?: string[];
  paths?: string[];
  hosts?: string[];
  headers?: Record<string, string>;
}

export interface NormalizedRule {
  id: string;
  action: RuleAction;
  log: boolean;
  description?: string;
  direction?: Direction[];
  peer?: NormalizedPeer[];
  /** Inclusive [from, to] destination port ranges. */
  ports?: Array<[number, number]>;
  /** The explicit protocol, or the one implied by the L7 block. */
  protocol?: string;
  http?: NormalizedHttp;
  grpc?: { services?: string[]; methods?: string[] };
  tls?: { sni?: string[]; alpn?: string[] };
  dns?: { names?: string[]; types?: string[] };
  redis?: { commands?: string[]; keys?: string[] };
  postgres?: NormalizedSql;
  mysql?: NormalizedSql;
}

export interface NormalizedSql {
  users?: string[];
  databases?: string[];
  /** Upper-cased verbs (SQL_VERBS). */
  statements?: string[];
}

const RULE_KEYS = ['id', 'action', 'log', 'description', 'direction', 'peer', 'ports', 'protocol', 'http', 'grpc', 'tls', 'dns', 'redis', 'postgres', 'mysql'];
const PEER_KEYS = ['cidr', 'namespace', 'labels', 'serviceAccount', 'service'];
/** A Service name: an RFC 1035 label (Kubernetes validates Service names so). */
const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const BLOCK_KEYS: Record<L7Kind, string[]> = {
  http: ['methods', 'paths', 'hosts', 'headers'],
  grpc: ['services', 'methods'],
  tls: ['sni', 'alpn'],
  dns: ['names', 'types'],
  redis: ['commands', 'keys'],
  postgres: ['users', 'databases', 'statements'],
  mysql: ['users', 'databases', 'statements'],
};
const DIRECTIONS: readonly Direction[] = ['ingress', 'egress', 'intra'];

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${value.length > 40 ? value.slice(0, 40) + '…' : value}'`;
  return `${typeof value} ${String(value)}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** "unknown key 'prots' (did you mean 'ports'?)" or the list of allowed keys. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= 2 && bestDistance < best.length / 2) return `unknown key '${key}' (did you mean '${best}'?)`;
  return `unknown key '${key}' (allowed: ${allowed.join(', ')})`;
}

/** Collects issues for one rule list. */
class IssueSink {
  index: number | null = null;
  id: string | undefined;
  constructor(readonly source: string, readonly issues: RuleIssue[]) {}
  add(field: string, message: string): void {
    const issue: RuleIssue = { source: this.source, index: this.index, field, message };
    if (this.id !== undefined) issue.id = this.id;
    this.issues.push(issue);
  }
}

function join(field: string, key: string | number): string {
  if (typeof key === 'number') return `${field}[${key}]`;
  return field === '' ? key : `${field}.${key}`;
}

/** A string or a non-empty list of strings, each checked by `check` (returns an error or null). */
function stringList(sink: IssueSink, field: string, value: unknown, check: (s: string) => string | null): string[] | undefined {
  const items = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && value.length === 0) {
    sink.add(field, 'is an empty list; give at least one value or leave the field out');
    return undefined;
  }
  const result: string[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const itemField = Array.isArray(value) ? join(field, i) : field;
    if (typeof item !== 'string') {
      const hint = typeof item === 'number' || typeof item === 'boolean' ? ` (quote it: "${String(item)}")` : '';
      sink.add(itemField, `must be a string, not ${describeValue(item)}${hint}`);
      ok = false;
      return;
    }
    const problem = check(item);
    if (problem !== null) {
      sink.add(itemField, problem);
      ok = false;
      return;
    }
    result.push(item);
  });
  return ok ? result : undefined;
}

function checkKeys(sink: IssueSink, field: string, value: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) sink.add(join(field, key), unknownKeyMessage(key, allowed));
  }
}

function globCheck(kind: GlobKind): (s: string) => string | null {
  return (s) => {
    const result = globToRegExpSource(kind, s);
    return result.ok ? null : result.message;
  };
}

function validatePeer(sink: IssueSink, field: string, value: unknown): NormalizedPeer | undefined {
  if (!isPlainObject(value)) {
    sink.add(field, `must be a mapping with cidr, namespace, labels, serviceAccount or service, not ${describeValue(value)}`);
    return undefined;
  }
  checkKeys(sink, field, value, PEER_KEYS);
  const peer: NormalizedPeer = {};
  let ok = true;
  if (Object.keys(value).filter((k) => PEER_KEYS.includes(k)).length === 0) {
    sink.add(field, 'needs at least one of cidr, namespace, labels, serviceAccount, service (leave peer out to match any peer)');
    return undefined;
  }
  if (value.cidr !== undefined) {
    const canonical: string[] = [];
    const list = stringList(sink, join(field, 'cidr'), value.cidr, (s) => {
      const parsed = parseCidr(s.trim());
      if (!parsed.ok) return parsed.message;
      canonical.push(parsed.cidr.text);
      return null;
    });
    if (list === undefined) ok = false;
    else peer.cidr = canonical;
  }
  if (value.namespace !== undefined) {
    const list = stringList(sink, join(field, 'namespace'), value.namespace, (s) =>
      DNS_LABEL.test(s) ? null : `'${s}' is not a namespace name (lower-case letters, digits and '-', at most 63)`);
    if (list === undefined) ok = false;
    else peer.namespace = list;
  }
  if (value.serviceAccount !== undefined) {
    const list = stringList(sink, join(field, 'serviceAccount'), value.serviceAccount, (s) =>
      DNS_SUBDOMAIN.test(s) ? null : `'${s}' is not a service account name (lower-case letters, digits, '-' and '.')`);
    if (list === undefined) ok = false;
    else peer.serviceAccount = list;
  }
  if (value.labels !== undefined) {
    const labelsField = join(field, 'labels');
    if (!isPlainObject(value.labels) || Object.keys(value.labels).length === 0) {
      sink.add(labelsField, `must be a non-empty mapping of label to value, not ${describeValue(value.labels)}`);
      ok = false;
    } else {
      const labels: Record<string, string> = {};
      for (const [key, labelValue] of Object.entries(value.labels)) {
        const keyField = join(labelsField, key);
        const slash = key.lastIndexOf('/');
        const name = slash === -1 ? key : key.slice(slash + 1);
        const prefix = slash === -1 ? null : key.slice(0, slash);
        if (!LABEL_NAME.test(name) || (prefix !== null && !DNS_SUBDOMAIN.test(prefix))) {
          sink.add(keyField, `'${key}' is not a Kubernetes label key`);
          ok = false;
        } else if (typeof labelValue !== 'string') {
          const hint = typeof labelValue === 'number' || typeof labelValue === 'boolean' ? ` (quote it: "${String(labelValue)}")` : '';
          sink.add(keyField, `must be a string, not ${describeValue(labelValue)}${hint}`);
          ok = false;
        } else if (!LABEL_VALUE.test(labelValue)) {
          sink.add(keyField, `'${labelValue}' is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')`);
          ok = false;
        } else {
          labels[key] = labelValue;
        }
      }
      if (ok) peer.labels = sortKeys(labels);
    }
  }
  if (value.service !== undefined) {
    const services = validateServices(sink, join(field, 'service'), value.service, peer.namespace);
    if (services === undefined) ok = false;
    else {
      peer.service = services.names;
      // `{namespace: shop, service: payments}` names the Service shop/payments; the namespace is
      // then part of the Service's name, not a second matcher on the endpoints' workloads.
      if (services.allBare) delete peer.namespace;
    }
  }
  return ok ? peer : undefined;
}

/** peer.service: 'ns/name', {namespace, name}, a bare name with the peer's namespace, or a list. */
function validateServices(sink: IssueSink, field: string, value: unknown, namespaces: string[] | undefined): { names: string[]; allBare: boolean } | undefined {
  const items = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && value.length === 0) {
    sink.add(field, 'is an empty list; give at least one Service or leave the field out');
    return undefined;
  }
  const names: string[] = [];
  let ok = true;
  let allBare = true;
  items.forEach((item, i) => {
    const itemField = Array.isArray(value) ? join(field, i) : field;
    let namespace: string | undefined;
    let name: string;
    if (typeof item === 'string') {
      const slash = item.indexOf('/');
      if (slash === -1) name = item;
      else {
        namespace = item.slice(0, slash);
        name = item.slice(slash + 1);
      }
    } else if (isPlainObject(item) && typeof item.name === 'string' && typeof item.namespace === 'string' && Object.keys(item).every((k) => k === 'name' || k === 'namespace')) {
      namespace = item.namespace;
      name = item.name;
    } else {
      sink.add(itemField, `must be 'namespace/name' or {namespace, name}, not ${describeValue(item)}`);
      ok = false;
      return;
    }
    if (!SERVICE_NAME.test(name)) {
      sink.add(itemField, `'${name}' is not a Service name (lower-case letters, digits and '-', starting with a letter, at most 63)`);
      ok = false;
      return;
    }
    if (namespace !== undefined) {
      allBare = false;
      if (!DNS_LABEL.test(namespace)) {
        sink.add(itemField, `'${namespace}' is not a namespace name (lower-case letters, digits and '-', at most 63)`);
        ok = false;
        return;
      }
      names.push(`${namespace}/${name}`);
      return;
    }
    if (namespaces === undefined) {
      // A Service name is unique only within its namespace: fail closed rather than match any.
      sink.add(itemField, `'${name}' names no namespace; write 'NAMESPACE/${name}', {namespace, name: ${name}}, or give the peer a namespace`);
      ok = false;
      return;
    }
    for (const ns of namespaces) names.push(`${ns}/${name}`);
  });
  if (!ok) return undefined;
  return { names: [...new Set(names)], allBare };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  const sorted: Record<string, T> = {};
  for (const key of Object.keys(record).sort()) sorted[key] = record[key]!;
  return sorted;
}

function parsePort(sink: IssueSink, field: string, value: unknown): [number, number] | undefined {
  const bad = (why: string): undefined => {
    sink.add(field, why);
    return undefined;
  };
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 65535) return bad(`${value} is not a port (1–65535)`);
    return [value, value];
  }
  if (typeof value !== 'string') return bad(`must be a port number or a range such as "8000-8100", not ${describeValue(value)}`);
  const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(value);
  if (match === null) return bad(`'${value}' is not a port or port range (write 8080 or "8000-8100")`);
  const from = Number(match[1]);
  const to = match[2] === undefined ? from : Number(match[2]);
  if (from < 1 || from > 65535 || to < 1 || to > 65535) return bad(`'${value}' is outside the port range 1–65535`);
  if (from > to) return bad(`'${value}' is an empty range (${from} > ${to}); write "${to}-${from}"`);
  return [from, to];
}

function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  return merged;
}

function validateBlock(sink: IssueSink, kind: L7Kind, value: unknown): NormalizedRule[L7Kind] | undefined {
  const field = kind;
  if (value === null) return {};
  if (!isPlainObject(value)) {
    sink.add(field, `must be a mapping with ${BLOCK_KEYS[kind].join(', ')}, not ${describeValue(value)}`);
    return undefined;
  }
  checkKeys(sink, field, value, BLOCK_KEYS[kind]);
  let ok = true;
  const list = (key: string, check: (s: string) => string | null, normalize?: (s: string) => string): string[] | undefined => {
    if (value[key] === undefined) return undefined;
    const items = stringList(sink, join(field, key), value[key], check);
    if (items === undefined) {
      ok = false;
      return undefined;
    }
    const normalized = normalize === undefined ? items : items.map(normalize);
    return [...new Set(normalized)];
  };
  const upper = (s: string): string => s.toUpperCase();
  const lowerName = (s: string): string => s.toLowerCase().replace(/\.$/, '');
  switch (kind) {
    case 'http': {
      const block: NormalizedHttp = {};
      const methods = list('methods', (s) => (TOKEN.test(s) ? null : `'${s}' is not an HTTP method`), upper);
      const paths = list('paths', globCheck('path'));
      const hosts = list('hosts', globCheck('name'), lowerName);
      if (methods) block.methods = methods;
      if (paths) block.paths = paths;
      if (hosts) block.hosts = hosts;
      if (value.headers !== undefined) {
        const headersField = join(field, 'headers');
        if (!isPlainObject(value.headers) || Object.keys(value.headers).length === 0) {
          sink.add(headersField, `must be a non-empty mapping of header name to value pattern, not ${describeValue(value.headers)}`);
          ok = false;
        } else {
          const headers: Record<string, string> = {};
          for (const [name, pattern] of Object.entries(value.headers)) {
            if (!TOKEN.test(name)) {
              sink.add(join(headersField, name), `'${name}' is not an HTTP header name`);
              ok = false;
            } else if (typeof pattern !== 'string') {
              sink.add(join(headersField, name), `must be a string value pattern ('*' for any value), not ${describeValue(pattern)}`);
              ok = false;
            } else {
              headers[name.toLowerCase()] = pattern;
            }
          }
          if (ok) block.headers = sortKeys(headers);
        }
      }
      return ok ? block : undefined;
    }
    case 'grpc': {
      const services = list('services', globCheck('service'));
      const methods = list('methods', (s) => (/^[A-Za-z0-9_*]+$/.test(s) ? null : `'${s}' is not a gRPC method name pattern (letters, digits, '_', '*')`));
      return ok ? { ...(services && { services }), ...(methods && { methods }) } : undefined;
    }
    case 'tls': {
      const sni = list('sni', globCheck('name'), lowerName);
      const alpn = list('alpn', (s) => (s.length > 0 && s.length < 256 ? null : `'${s}' is not an ALPN protocol id`));
      return ok ? { ...(sni && { sni }), ...(alpn && { alpn }) } : undefined;
    }
    case 'dns': {
      const names = list('names', globCheck('name'), lowerName);
      const types = list('types', (s) => {
        const t = s.toUpperCase();
        return DNS_TYPES.has(t) || /^TYPE\d{1,5}$/.test(t) ? null : `'${s}' is not a DNS record type (e.g. A, AAAA, TXT, or TYPE65)`;
      }, upper);
      return ok ? { ...(names && { names }), ...(types && { types }) } : undefined;
    }
    case 'redis': {
      const commands = list('commands', (s) => (/^[A-Za-z0-9_|.*-]{1,64}$/.test(s) ? null : `'${s}' is not a Redis command name (letters, digits, '_', '-', '|', '.', '*' as glob)`), upper);
      const keys = list('keys', (s) => (s.length > 0 && s.length <= 4096 ? null : `'${s.slice(0, 40)}' is not a key pattern (1–4096 bytes, '*' matches any characters)`));
      return ok ? { ...(commands && { commands }), ...(keys && { keys }) } : undefined;
    }
    case 'postgres':
    case 'mysql': {
      const name = (what: string) => (s: string): string | null => (s.length > 0 && s.length <= 128 && !/[\u0000-\u001f]/.test(s) ? null : `'${s.slice(0, 40)}' is not a ${what} name pattern (1–128 characters, '*' matches any)`);
      const users = list('users', name('user'));
      const databases = list('databases', name('database'));
      const statements = list('statements', (s) => (SQL_VERBS.has(s.toUpperCase()) ? null : `'${s}' is not a statement verb (e.g. SELECT, INSERT, UPDATE, DELETE, DDL, COPY, CREATE, DROP)`), upper);
      return ok ? { ...(users && { users }), ...(databases && { databases }), ...(statements && { statements }) } : undefined;
    }
  }
}

/** Validates one rule; returns the normalised rule or undefined (issues recorded). */
function validateRule(sink: IssueSink, value: unknown, tier: Tier): NormalizedRule | undefined {
  if (!isPlainObject(value)) {
    sink.add('', `a rule must be a mapping with id, action and matchers, not ${describeValue(value)}`);
    return undefined;
  }
  if (typeof value.id === 'string') sink.id = value.id;
  const before = sink.issues.length;
  checkKeys(sink, '', value, RULE_KEYS);

  let id = '';
  if (value.id === undefined) sink.add('id', 'is required (a unique name, reported as ruleId in flow records)');
  else if (typeof value.id !== 'string') sink.add('id', `must be a string, not ${describeValue(value.id)}`);
  else if (value.id === 'default') sink.add('id', "'default' is reserved for the defaultAction; choose another id");
  else if (value.id === NON_TCP_DEFAULT_ID) sink.add('id', `'${NON_TCP_DEFAULT_ID}' is reserved for non-TCP traffic no rule allows; choose another id`);
  else if (!ID_PATTERN.test(value.id)) sink.add('id', `'${value.id}' is not a valid id (1–128 letters, digits and . _ : / @ -, starting with a letter or digit)`);
  else id = value.id;

  let action: RuleAction = 'deny';
  const actions = tier === 'cluster' ? ['allow', 'deny', 'pass'] : ['allow', 'deny'];
  if (value.action === undefined) sink.add('action', `is required (${actions.join(', ')})`);
  else if (value.action === 'pass' && tier === 'workload') {
    sink.add('action', "'pass' is only allowed in cluster rules (it hands over to the workload tier); use allow or deny");
  } else if (typeof value.action !== 'string' || !actions.includes(value.action)) {
    sink.add('action', `must be one of ${actions.join(', ')}, not ${describeValue(value.action)}`);
  } else action = value.action as RuleAction;

  const rule: NormalizedRule = { id, action, log: false };
  if (value.log !== undefined) {
    if (typeof value.log !== 'boolean') sink.add('log', `must be true or false, not ${describeValue(value.log)}`);
    else rule.log = value.log;
  }
  if (value.description !== undefined) {
    if (typeof value.description !== 'string') sink.add('description', `must be a string, not ${describeValue(value.description)}`);
    else rule.description = value.description;
  }
  if (value.direction !== undefined) {
    const directions = stringList(sink, 'direction', value.direction, (s) =>
      (DIRECTIONS as readonly string[]).includes(s) ? null : `'${s}' is not a direction (ingress, egress, intra)`);
    if (directions) rule.direction = DIRECTIONS.filter((d) => directions.includes(d));
  }
  if (value.peer !== undefined) {
    if (Array.isArray(value.peer)) {
      if (value.peer.length === 0) sink.add('peer', 'is an empty list; leave peer out to match any peer');
      const peers = value.peer.map((p, i) => validatePeer(sink, join('peer', i), p));
      if (peers.length > 0 && peers.every((p) => p !== undefined)) rule.peer = peers as NormalizedPeer[];
    } else {
      const peer = validatePeer(sink, 'peer', value.peer);
      if (peer) rule.peer = [peer];
    }
  }
  if (value.ports !== undefined) {
    const items = Array.isArray(value.ports) ? value.ports : [value.ports];
    if (Array.isArray(value.ports) && value.ports.length === 0) sink.add('ports', 'is an empty list; leave ports out to match any port');
    const ranges = items.map((p, i) => parsePort(sink, Array.isArray(value.ports) ? join('ports', i) : 'ports', p));
    if (ranges.length > 0 && ranges.every((r) => r !== undefined)) rule.ports = mergeRanges(ranges as Array<[number, number]>);
  }
  let protocol: string | undefined;
  if (value.protocol !== undefined) {
    const given = typeof value.protocol === 'string' ? value.protocol.toLowerCase() : undefined;
    if (given === undefined || (!RULE_PROTOCOLS.includes(given) && !DATAGRAM_PROTOCOLS.includes(given))) {
      const named = typeof value.protocol === 'string' ? `'${value.protocol}'` : describeValue(value.protocol);
      const undetected = given !== undefined && PROTOCOLS.includes(given);
      const known = [...RULE_PROTOCOLS, ...DATAGRAM_PROTOCOLS].join(', ');
      sink.add('protocol', undetected
        ? `${named} is not detected by the sidecar, so this rule would never match; use protocol: tcp with the port instead (detected: ${RULE_PROTOCOLS.join(', ')})`
        : `${named} is not a known protocol (${known})`);
    } else protocol = given;
  }
  if (protocol === 'icmp' && value.ports !== undefined) {
    sink.add('ports', 'ICMP has no ports; leave ports out and match ICMP by peer and direction');
  }
  const blocks = L7_KINDS.filter((k) => value[k] !== undefined);
  if (blocks.length > 1) {
    sink.add(blocks[1]!, `a rule has at most one L7 block; this one has ${blocks.join(' and ')} (split it into one rule per protocol)`);
  }
  const kind = blocks[0];
  if (kind !== undefined) {
    if (protocol === 'tcp') {
      sink.add(kind, `protocol 'tcp' is decided when the connection opens and cannot have an L7 block; use protocol: ${kind}`);
    } else if (protocol !== undefined && !L7_COMPATIBLE[kind].includes(protocol)) {
      sink.add(kind, `an ${kind} block does not match protocol '${protocol}' (it needs protocol ${L7_COMPATIBLE[kind].join(', ')})`);
    }
    const block = validateBlock(sink, kind, value[kind]);
    if (block !== undefined) (rule as unknown as Record<string, unknown>)[kind] = block;
    protocol ??= kind;
  }
  if (protocol !== undefined) rule.protocol = protocol;
  return sink.issues.length === before ? rule : undefined;
}

export interface RuleListResult {
  rules: NormalizedRule[];
  issues: RuleIssue[];
}

/**
 * Validates a rule list (already parsed). Accepts a list, or a mapping with `rules` (a sidecar
 * config or `{rules: [...]}`); other keys of such a mapping are left to the config loader.
 * Null or absent means no rules.
 */
export function validateRuleList(input: unknown, source: string, tier: Tier, issues: RuleIssue[] = []): RuleListResult {
  const sink = new IssueSink(source, issues);
  let list: unknown = input;
  if (isPlainObject(input)) list = input.rules ?? [];
  if (list === null || list === undefined) list = [];
  if (!Array.isArray(list)) {
    sink.add('', `rules must be a list of rules (or a mapping with 'rules:'), not ${describeValue(list)}`);
    return { rules: [], issues };
  }
  const rules: NormalizedRule[] = [];
  const seen = new Map<string, number>();
  list.forEach((item: unknown, index) => {
    sink.index = index;
    sink.id = undefined;
    const rule = validateRule(sink, item, tier);
    const id = isPlainObject(item) && typeof item.id === 'string' ? item.id : undefined;
    if (id !== undefined) {
      const first = seen.get(id);
      if (first !== undefined) sink.add('id', `duplicate id '${id}' (also used by rules[${first}]); ids must be unique`);
      else seen.set(id, index);
    }
    if (rule !== undefined) rules.push(rule);
  });
  return { rules, issues };
}
