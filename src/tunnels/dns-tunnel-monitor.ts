// DNS tunnelling (iodine, dnscat2, DNSExfiltrator and the like) per pod, over a sliding window:
// data is carried in the names queried (long, random-looking labels, a new name every query,
// all under the one parent domain whose authoritative server is the other end) and in the
// answers (TXT/NULL/CNAME records, large responses).
//
// Names are grouped by parent domain (the registrable domain, approximately: the last two
// labels, three under two-letter country domains with a generic second level such as co.uk,
// the namespace for cluster.local names). Per parent, two 30 s buckets make a ~60 s sliding
// window. Findings per parent:
//   experimental types: NULL_QUERIES queries of type NULL or private-use types ........ 0.9
//   encoded names: ENCODED_NAMES distinct names whose labels look like encoded data ... 0.9
//   record-type mix: TYPE_MIX_NAMES distinct names, half or more TXT/CNAME/MX/NULL,
//     with long names (average data part >= 20) ...................................... 0.8
//   large answers: BIG_ANSWERS distinct names answered with >= 512 bytes, >= 8 KiB .... 0.7
//   query rate: RATE_QUERIES queries with RATE_UNIQUE distinct names ................... 0.6
// A parent that was found stays flagged for FLAG_MS: every query under it is a finding, so a
// blocking sidecar refuses the rest of the tunnel.
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
/** Distinct names remembered per bucket; past it every name counts as new (bounded memory). */
const UNIQUE_CAP = 1024;

const GENERIC_SLD = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'or', 'ne', 'go', 'mil', 'ltd', 'plc', 'gob', 'nic']);
const DATA_TYPES = new Set(['TXT', 'CNAME', 'MX', 'NULL', 'ANY', 'SRV', 'PRIVATE']);

/** The parent domain (where a tunnel's authoritative server sits) and the part left of it. */
export function splitName(name: string): { parent: string; data: string[] } {
  const labels = name.replace(/\.$/, '').split('.');
  let keep = 2;
  const n = labels.length;
  if (n >= 3 && labels[n - 1] === 'local' && labels[n - 2] === 'cluster') keep = Math.min(n, 4); // <ns>.svc.cluster.local
  else if (n >= 3 && labels[n - 1]!.length === 2 && GENERIC_SLD.has(labels[n - 2]!)) keep = 3;
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

interface Bucket {
  start: number;
  queries: number;
  names: Set<string>;
  distinct: number;
  encoded: number;
  dataChars: number;
  dataTypes: number;
  nullTypes: number;
  bigAnswers: number;
  answerBytes: number;
  example: string;
}

interface ParentState {
  current: Bucket;
  previous: Bucket | null;
  flaggedUntil: number;
  flag: TunnelFinding | null;
}

function bucket(start: number): Bucket {
  return { start, queries: 0, names: new Set(), distinct: 0, encoded: 0, dataChars: 0, dataTypes: 0, nullTypes: 0, bigAnswers: 0, answerBytes: 0, example: '' };
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
}

export class SlidingDnsMonitor implements DnsTunnelMonitor {
  private readonly parents: BoundedMap<string, ParentState>;

  constructor(options: DnsMonitorOptions = {}) {
    this.parents = new BoundedMap(options.capacity ?? 1024);
  }

  private state(parent: string, now: number): ParentState {
    let s = this.parents.get(parent);
    if (s === undefined) {
      s = { current: bucket(now), previous: null, flaggedUntil: 0, flag: null };
      this.parents.set(parent, s);
    } else if (now - s.current.start >= BUCKET_MS) {
      s.previous = now - s.current.start >= 2 * BUCKET_MS ? null : s.current;
      s.current = bucket(now);
    }
    return s;
  }

  onQuery(rawName: string, type: string, now: number): TunnelFinding | null {
    const name = rawName.toLowerCase().replace(/\.$/, '');
    const { parent, data } = splitName(name);
    if (data.length === 0) return null;
    const s = this.state(parent, now);
    const b = s.current;
    b.queries++;
    const upperType = type.toUpperCase();
    if (DATA_TYPES.has(upperType) || isExperimentalType(upperType)) b.dataTypes++;
    if (isExperimentalType(upperType)) b.nullTypes++;
    const fresh = !b.names.has(name) && !(s.previous?.names.has(name) ?? false);
    if (fresh) {
      if (b.names.size < UNIQUE_CAP) b.names.add(name);
      b.distinct++;
      b.dataChars += data.join('.').length;
      if (data.some(looksEncoded)) {
        b.encoded++;
        if (b.example === '') b.example = name;
      }
    }
    if (now < s.flaggedUntil && s.flag !== null) return { ...s.flag, evidence: `${parent} is flagged for DNS tunnelling (${s.flag.evidence}); query ${type} ${show(name)}` };
    const finding = this.judge(parent, s, name, type);
    if (finding !== null) {
      s.flaggedUntil = now + FLAG_MS;
      s.flag = finding;
    }
    return finding;
  }

  onResponse(rawName: string, _type: string, size: number, _answers: number, now: number): TunnelFinding | null {
    const name = rawName.toLowerCase().replace(/\.$/, '');
    const { parent, data } = splitName(name);
    if (data.length === 0) return null;
    const s = this.state(parent, now);
    if (size >= 512) {
      s.current.bigAnswers++;
      s.current.answerBytes += size;
    }
    if (now < s.flaggedUntil) return null; // the query already carried the finding
    const finding = this.judge(parent, s, name, _type);
    if (finding !== null) {
      s.flaggedUntil = now + FLAG_MS;
      s.flag = finding;
    }
    return finding;
  }

  private judge(parent: string, s: ParentState, name: string, type: string): TunnelFinding | null {
    const c = s.current;
    const p = s.previous;
    const sum = (f: (b: Bucket) => number): number => f(c) + (p === null ? 0 : f(p));
    const queries = sum((b) => b.queries);
    const distinct = sum((b) => b.distinct);
    const example = c.example || p?.example || name;
    const found = (evidence: string, confidence: number): TunnelFinding => ({
      kind: 'dns-tunnel',
      evidence: `${parent}: ${evidence} in the last ${p === null ? 30 : 60} s (${queries} queries, ${distinct} distinct names); e.g. ${type} ${show(example)}`,
      confidence,
      expected: 'dns',
      detected: 'dns-tunnel',
    });
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
    if (!local && queries >= RATE_QUERIES && distinct >= RATE_UNIQUE) return found(`query rate`, 0.6);
    return null;
  }
}

function show(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
}
