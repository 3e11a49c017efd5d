// DNS tunnelling (iodine, dnscat2, DNSExfiltrator and the like) per pod, over a sliding window:
// data is carried in the names queried (long, random-looking labels, a new name every query,
// all under the one parent domain whose authoritative server is the other end) and in the
// answers (TXT/NULL/CNAME records, large responses).
//
// Names are grouped by parent domain (the registrable domain by the Public Suffix List, the
// namespace for cluster.local names). Per parent, two 30 s buckets make a ~60 s sliding
// window. Findings per parent:
//   experimental types: NULL_QUERIES queries of type NULL or private-use types ........ 0.9
//   encoded names: ENCODED_NAMES distinct names whose labels look like encoded data ... 0.9
//   record-type mix: TYPE_MIX_NAMES distinct names, half or more TXT/CNAME/MX/NULL,
//     with long names (average data part >= 20) ...................................... 0.8
//   large answers: BIG_ANSWERS distinct names answered with >= 512 bytes, >= 8 KiB .... 0.7
//   query rate: RATE_QUERIES queries with RATE_UNIQUE distinct names ................... 0.6
//   a label with '=' in it: one name is enough ...................................... 0.85
//     No host name, SRV or ACME name has one; base64 padding does, and dns2tcp's control
//     labels (`<base64>.=auth.<zone>`, `<base64>.=connect.<zone>`, dns2tcp 0.5 on the wire)
//     open every session with them: refused at its first query, before the session exists.
// A parent that was found stays flagged for FLAG_MS, but only in the zone that carries the
// tunnel: the deepest domain the signalling names share (`t1.example.test` when the encoded
// labels sit left of it), never wider than needed, so `www.example.test` keeps resolving while
// every query under the tunnel's zone is a finding (a blocking sidecar refuses the rest of it).
// A tunnel that moves to a sibling zone is found again and the zone widens to their common parent.
//
// Kubernetes resolves with `ndots:5` and the search list `<ns>.svc.<cluster domain>`,
// `svc.<cluster domain>`, `<cluster domain>` (the resolv.conf the kubelet writes), so every
// external lookup is first tried as three NXDOMAIN names under the cluster domain. Those are
// counted as the external name they expand (one name, not four, and under its own parent, not
// pooled under the pod's namespace); the cluster's own names are answered by the cluster DNS
// itself, with no outside authoritative server to carry data, and are not monitored.
import { LazyModule } from '../lazy/lazy-module.js';
import { BoundedMap } from './bounded-map.js';
import type { DnsTunnelMonitor, TunnelFinding } from './types.js';

export const BUCKET_MS = 30_000;
export const FLAG_MS = 300_000;
export const NULL_QUERIES = 3;
export const ENCODED_NAMES = 8;
export const TYPE_MIX_NAMES = 15;
export const BIG_ANSWERS = 10;
export const RATE_QUERIES = 600;
export const RATE_UNIQUE = 300;
export const PADDED_NAMES = 1;
/** Distinct names remembered per bucket; past it every name counts as new (bounded memory). */
const UNIQUE_CAP = 1024;

const DATA_TYPES = new Set(['TXT', 'CNAME', 'MX', 'NULL', 'ANY', 'SRV', 'PRIVATE']);
const PARENT_OPTIONS = { allowPrivateDomains: true, validateHostname: false, extractHostname: false } as const;
/** The Public Suffix List (≈1 MiB of heap): loaded by the first name outside the cluster's. */
export const tldts = new LazyModule<typeof import('tldts')>('tldts', 'the DNS tunnel monitor (registrable domains)');

/**
 * The parent domain (where a tunnel's authoritative server sits) and the part left of it. The
 * parent is the registrable domain by the Public Suffix List, private section included (tldts):
 * `bucket.s3.us-east-1.amazonaws.com` and `d1234.cloudfront.net` are each their own owner's
 * domain, so a pod's fan-out over a hosting platform is not pooled into one "parent" that looks
 * like a tunnel by its rate. Cluster names group by namespace (`<ns>.svc.cluster.local`).
 */
export function splitName(name: string): { parent: string; data: string[] } {
  const labels = name.replace(/\.$/, '').split('.');
  const n = labels.length;
  let keep: number;
  if (n >= 3 && labels[n - 1] === 'local' && labels[n - 2] === 'cluster') keep = Math.min(n, 4); // <ns>.svc.cluster.local
  else {
    const domain = tldts.get().getDomain(labels.join('.'), PARENT_OPTIONS);
    keep = domain === null ? Math.min(n, 2) : domain.split('.').length;
  }
  if (n <= keep) return { parent: labels.join('.'), data: [] };
  return { parent: labels.slice(n - keep).join('.'), data: labels.slice(0, n - keep) };
}

function charEntropy(s: string): number {
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const p = c / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * Does this label look like encoded data rather than a name people or software chose? Tuned
 * on the benign corpus (test/unit/tunnels): hostnames made of words, hyphenated parts, short
 * CDN ids, IP-like and Kubernetes names.
 */
export function looksEncoded(label: string): boolean {
  if (label.length < 16) return false;
  // Bytes outside letters, digits, hyphen and underscore (iodine's base128, raw binary, base64 '+').
  if (/[^a-z0-9_-]/.test(label)) return true;
  // Hex of hashes, keys, dnscat2 payloads: long runs of hex digits with both letters and digits.
  if (label.length >= 24 && /^[0-9a-f]+$/.test(label) && /[0-9]/.test(label) && /[a-f]/.test(label)) return true;
  if (label.length < 20) return false;
  const parts = label.split(/[-_]+/).filter((p) => p.length > 0);
  const longest = parts.reduce((m, p) => Math.max(m, p.length), 0);
  if (longest < 16) return false; // hyphenated words: "this-is-a-long-service-name"
  const letters = label.replace(/[^a-z]/g, '');
  const digits = label.length - letters.length - (label.length - label.replace(/[-_]/g, '').length);
  const vowels = letters.replace(/[^aeiou]/g, '').length;
  const vowelRatio = letters.length === 0 ? 0 : vowels / letters.length;
  const consonantRun = Math.max(0, ...letters.split(/[aeiouy]+/).map((r) => r.length));
  const entropy = charEntropy(label);
  const digitRatio = digits / label.length;
  let signs = 0;
  if (vowelRatio < 0.25) signs++;
  if (digitRatio >= 0.15 && digitRatio <= 0.7) signs++;
  if (consonantRun >= 6) signs++;
  if (entropy >= 4.2) signs++;
  return entropy >= 3.6 && signs >= 2;
}

/** A label with '=' in it: base64 padding, or dns2tcp's `=auth` / `=connect`. */
function padded(label: string): boolean {
  return label.includes('=');
}

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/**
 * The name a query really asks for: a search-list expansion of an external name under the
 * cluster domain becomes that external name; a cluster-internal name (a Service, a pod, an SRV
 * record, a StatefulSet member) becomes null (not monitored). `namespace` is the pod's own,
 * which the first search domain names; without it any single label before `svc` is taken as one.
 */
export function unsearch(name: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN, namespace?: string): string | null {
  const cd = `.${clusterDomain}`;
  if (!name.endsWith(cd)) return name;
  const inside = name.slice(0, -cd.length);
  let external: string;
  if (namespace !== undefined && inside.endsWith(`.${namespace}.svc`)) external = inside.slice(0, -(namespace.length + 5));
  else if (namespace === undefined && /\.[^.]+\.svc$/.test(inside)) external = inside.replace(/\.[^.]+\.svc$/, '');
  else if (inside.endsWith('.svc')) external = inside.slice(0, -4);
  else external = inside;
  // `payments.shop` (a Service in another namespace), `web-0.web` (a StatefulSet member),
  // `_grpc._tcp.api` (an SRV name): two labels or fewer, or ending in what the cluster itself
  // serves, are the cluster's own (a two-label external name has no labels below its parent to
  // count anyway). An external name expanded has its own TLD as its last label.
  const labels = external.split('.').filter((l) => !l.startsWith('_')); // SRV's _service._proto
  const last = labels[labels.length - 1] ?? '';
  if (labels.length <= 2 || last === 'svc' || last === 'pod' || !/^[a-z][a-z0-9-]*$/.test(last)) return null;
  return external;
}

/** The zone a signalling name puts forward: what is right of its rightmost encoded label (else of its first label). */
function candidateZone(labels: readonly string[], dataCount: number): readonly string[] {
  let cut = 1;
  for (let i = dataCount - 1; i >= 0; i--) {
    if (looksEncoded(labels[i]!) || padded(labels[i]!)) {
      cut = i + 1;
      break;
    }
  }
  return labels.slice(Math.min(cut, dataCount));
}

function commonSuffix(a: readonly string[] | null, b: readonly string[] | null): readonly string[] | null {
  if (a === null) return b;
  if (b === null) return a;
  let n = 0;
  while (n < a.length && n < b.length && a[a.length - 1 - n] === b[b.length - 1 - n]) n++;
  return a.slice(a.length - n);
}

function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

interface Bucket {
  start: number;
  queries: number;
  names: Set<string>;
  distinct: number;
  encoded: number;
  dataChars: number;
  dataTypes: number;
  nullTypes: number;
  /** Distinct names with a label that has '=' in it. */
  padded: number;
  bigAnswers: number;
  answerBytes: number;
  example: string;
  /** Common label suffix of the names with a signal (encoded labels, data or experimental types). */
  zone: readonly string[] | null;
}

interface ParentState {
  current: Bucket;
  previous: Bucket | null;
  flaggedUntil: number;
  flag: TunnelFinding | null;
  /** The zone the flag covers (a suffix of names, at least the parent). */
  flagZone: string;
}

function bucket(start: number): Bucket {
  return { start, queries: 0, names: new Set(), distinct: 0, encoded: 0, padded: 0, dataChars: 0, dataTypes: 0, nullTypes: 0, bigAnswers: 0, answerBytes: 0, example: '', zone: null };
}

function isExperimentalType(type: string): boolean {
  // NULL (10) and the private-use range 65280-65534 iodine uses (its "PRIVATE" is 65399).
  if (type === 'NULL' || type === 'PRIVATE') return true;
  const m = /^TYPE(\d+)$/.exec(type);
  return m !== null && Number(m[1]) >= 65280 && Number(m[1]) <= 65534;
}

export interface DnsMonitorOptions {
  /** Parents tracked at once (least recently used forgotten). */
  capacity?: number;
  /** The cluster's DNS domain (kubelet --cluster-domain); default cluster.local. */
  clusterDomain?: string;
  /** The protected pod's namespace: its search domain is `<namespace>.svc.<clusterDomain>`. */
  namespace?: string;
}

export class SlidingDnsMonitor implements DnsTunnelMonitor {
  private readonly parents: BoundedMap<string, ParentState>;
  private readonly clusterDomain: string;
  private readonly namespace: string | undefined;

  constructor(options: DnsMonitorOptions = {}) {
    this.parents = new BoundedMap(options.capacity ?? 1024);
    this.clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.namespace = options.namespace;
  }

  private monitored(rawName: string): string | null {
    return unsearch(rawName.toLowerCase().replace(/\.$/, ''), this.clusterDomain, this.namespace);
  }

  private state(parent: string, now: number): ParentState {
    let s = this.parents.get(parent);
    if (s === undefined) {
      s = { current: bucket(now), previous: null, flaggedUntil: 0, flag: null, flagZone: parent };
      this.parents.set(parent, s);
    } else if (now - s.current.start >= BUCKET_MS) {
      s.previous = now - s.current.start >= 2 * BUCKET_MS ? null : s.current;
      s.current = bucket(now);
    }
    return s;
  }

  onQuery(rawName: string, type: string, now: number): TunnelFinding | null {
    const name = this.monitored(rawName);
    if (name === null) return null;
    const { parent, data } = splitName(name);
    if (data.length === 0) return null;
    const s = this.state(parent, now);
    const b = s.current;
    b.queries++;
    const upperType = type.toUpperCase();
    const experimental = isExperimentalType(upperType);
    // SRV for `_service._proto.name` is service discovery (MongoDB, Kafka, SIP clients), not a payload.
    const dataType = DATA_TYPES.has(upperType) && !(upperType === 'SRV' && data[0]?.startsWith('_') === true && data[1]?.startsWith('_') === true);
    if (dataType || experimental) b.dataTypes++;
    if (experimental) b.nullTypes++;
    const fresh = !b.names.has(name) && !(s.previous?.names.has(name) ?? false);
    let signal = experimental;
    if (fresh) {
      if (b.names.size < UNIQUE_CAP) b.names.add(name);
      b.distinct++;
      b.dataChars += data.join('.').length;
      if (data.some(looksEncoded)) {
        b.encoded++;
        signal = true;
        if (b.example === '') b.example = name;
      }
      if (data.some(padded)) {
        b.padded++;
        signal = true;
        b.example = name;
      }
    }
    if (signal || dataType) b.zone = commonSuffix(b.zone, candidateZone(name.split('.'), data.length));
    if (now < s.flaggedUntil && s.flag !== null) {
      if (inZone(name, s.flagZone)) return { ...s.flag, evidence: `${s.flagZone} is flagged for DNS tunnelling (${s.flag.evidence}); query ${type} ${show(name)}` };
      // A sibling of the tunnel's zone: resolves, unless it signals a tunnel itself (which widens the zone).
      if (!signal) return null;
    }
    return this.judged(parent, s, name, type, now);
  }

  onResponse(rawName: string, _type: string, size: number, _answers: number, now: number): TunnelFinding | null {
    const name = this.monitored(rawName);
    if (name === null) return null;
    const { parent, data } = splitName(name);
    if (data.length === 0) return null;
    const s = this.state(parent, now);
    if (size >= 512) {
      s.current.bigAnswers++;
      s.current.answerBytes += size;
    }
    if (now < s.flaggedUntil) return null; // the query already carried the finding
    return this.judged(parent, s, name, _type, now);
  }

  /** judge(), and on a finding flag the zone the signalling names share (at least the parent). */
  private judged(parent: string, s: ParentState, name: string, type: string, now: number): TunnelFinding | null {
    const judged = this.judge(parent, s, name, type);
    if (judged === null) return null;
    const { finding: found, byRate } = judged;
    // A bare query rate names no zone: the whole parent is flagged.
    const zoneLabels = byRate ? null : commonSuffix(s.current.zone, s.previous?.zone ?? null);
    const parentDepth = parent.split('.').length;
    const zone = zoneLabels !== null && zoneLabels.length > parentDepth ? zoneLabels.join('.') : parent;
    const finding = zone === parent ? found : { ...found, evidence: `zone ${zone}: ${found.evidence}` };
    s.flaggedUntil = now + FLAG_MS;
    s.flag = finding;
    s.flagZone = zone;
    return finding;
  }

  private judge(parent: string, s: ParentState, name: string, type: string): { finding: TunnelFinding; byRate: boolean } | null {
    const c = s.current;
    const p = s.previous;
    const sum = (f: (b: Bucket) => number): number => f(c) + (p === null ? 0 : f(p));
    const queries = sum((b) => b.queries);
    const distinct = sum((b) => b.distinct);
    const example = c.example || p?.example || name;
    const found = (evidence: string, confidence: number, byRate = false): { finding: TunnelFinding; byRate: boolean } => ({
      finding: {
        kind: 'dns-tunnel',
        evidence: `${parent}: ${evidence} in the last ${p === null ? 30 : 60} s (${queries} queries, ${distinct} distinct names); e.g. ${type} ${show(example)}`,
        confidence,
        expected: 'dns',
        detected: 'dns-tunnel',
      },
      byRate,
    });
    const withPadding = sum((b) => b.padded);
    if (withPadding >= PADDED_NAMES) return found(`${withPadding} name${withPadding === 1 ? '' : 's'} with '=' in a label (base64 padding; dns2tcp's =auth/=connect)`, 0.85);
    const nulls = sum((b) => b.nullTypes);
    if (nulls >= NULL_QUERIES) return found(`${nulls} queries of type NULL or private use`, 0.9);
    const encoded = sum((b) => b.encoded);
    if (encoded >= ENCODED_NAMES) return found(`${encoded} distinct names with encoded-looking labels`, 0.9);
    const dataTypes = sum((b) => b.dataTypes);
    const dataChars = sum((b) => b.dataChars);
    if (distinct >= TYPE_MIX_NAMES && dataTypes * 2 >= queries && dataChars / distinct >= 20) {
      return found(`${dataTypes} of ${queries} queries for TXT/CNAME/MX/SRV/NULL records, names averaging ${Math.round(dataChars / distinct)} characters below the parent`, 0.8);
    }
    const big = sum((b) => b.bigAnswers);
    const bytes = sum((b) => b.answerBytes);
    if (big >= BIG_ANSWERS && bytes >= 8192 && distinct >= BIG_ANSWERS) return found(`${big} answers of 512 bytes or more (${bytes} bytes)`, 0.7);
    const local = parent.endsWith('cluster.local') || parent.endsWith('.arpa');
    if (!local && queries >= RATE_QUERIES && distinct >= RATE_UNIQUE) return found(`query rate`, 0.6, true);
    return null;
  }
}

function show(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
}
