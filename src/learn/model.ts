// The learned model of a workload's traffic (issue 9): per direction, peer, destination port and
// protocol family, the L7 shape seen, as each protocol's learning (registry `learn`,
// protocols/plugin.ts) records it: named template tries (paths, names, calls...), value sets and
// flags. This file is the generic part and names no protocol. Bounded: at most `maxServices`
// entries, one node budget shared by all tries, 64 values per set; what a limit folds or drops is
// counted. It is fed flow records (schema/flow-record.schema.json) and saved as plain JSON (toState).
import { isIP } from 'node:net';
import { normalizeHost } from '../policy/glob.js';
import type { Direction } from '../policy/types.js';
import type { FlowRecordDraft, WorkloadRecord } from '../flows/types.js';
import type { LearnedEntry, LearnedTemplate, LearnPlugin, LearnRecorder, TemplateKind } from '../protocols/plugin.js';
import { pluginForRecord } from '../protocols/registry.js';
import { LearnStateError } from './errors.js';
import { isUnwritableLabel, templatePathSegment, WILDCARD } from './segment-classifier.js';
import { NodeBudget, TemplateTrie, type TemplateStats, type TrieLimits } from './template-trie.js';
import { registrableDepth } from './templates.js';

export { nameGlob, nameParts, pathGlob, registrableDepth } from './templates.js';

export interface LearnLimits {
  /** Distinct (direction, peer, port, protocol) entries; beyond it observations are dropped and counted. */
  maxServices: number;
  /** Path, host, name and gRPC method nodes of all entries together; beyond it templates fold into '**'. */
  maxPaths: number;
  /** Distinct path segments (or name labels, gRPC methods) under one parent before they collapse to '*'. */
  maxSiblings: number;
  /** Distinct unknown IPv4 peers of one /24 (same direction, port, protocol) before they become the /24. */
  maxPeersPerSubnet: number;
}

export const DEFAULT_LEARN_LIMITS: Readonly<LearnLimits> = Object.freeze({
  maxServices: 1000,
  maxPaths: 20_000,
  maxSiblings: 32,
  maxPeersPerSubnet: 16,
});

/**
 * A peer as a rule names it: a Kubernetes Service ('namespace/name', for calls to its cluster IP:
 * learned egress rules name Services, not cluster IPs), a workload identity, or an address block.
 */
export type LearnedPeer = { namespace: string; labels?: Record<string, string>; serviceAccount?: string } | { cidr: string } | { service: string };

/** What a protocol's learning groups records under (registry `learn.family`), or the protocol of an L4-only entry. */
export type ProtocolFamily = string;

export interface ModelCounters {
  /** Records learned from. */
  observed: number;
  /** Observations recorded under a broader template than their own because of a limit. */
  folded: number;
  /** Observations not recorded at all (entry limit, unusable fields). */
  dropped: number;
}

/** The flow record fields the model reads. */
export type ObservedRecord = Pick<FlowRecordDraft, 'type' | 'direction' | 'src' | 'dst' | 'protocol' | 'l7' | 'tunnel' | 'interim'> & Partial<Pick<FlowRecordDraft, 'verdict' | 'ruleId'>>;

/** Label keys that differ between pods of one workload (set by controllers), never used to name a peer. */
const VOLATILE_LABELS = new Set([
  'pod-template-hash', 'controller-revision-hash', 'pod-template-generation', 'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index', 'job-name', 'controller-uid', 'batch.kubernetes.io/job-name',
  'batch.kubernetes.io/controller-uid', 'batch.kubernetes.io/job-completion-index',
]);
/** The labels that name an application, in order of preference (Kubernetes recommended labels first). */
const APP_LABELS = ['app.kubernetes.io/name', 'app', 'k8s-app'];
/** A template's tag, a flag's or a set's name as a saved model may hold them. */
const TAG = /^[A-Za-z0-9_.:|-]{1,64}$/;
/** Values per set; more are counted as folded. */
const MAX_VALUES = 64;

/**
 * The peer a rule should name: the Service called (a cluster-IP destination), else the
 * application labels, else the service account, else the stable labels, else the namespace.
 */
export function peerOf(workload: WorkloadRecord | undefined, ip: string, service?: { namespace: string; name: string }): LearnedPeer {
  if (service !== undefined) return { service: `${service.namespace}/${service.name}` };
  if (workload?.namespace !== undefined && workload.namespace !== '') {
    const labels = workload.labels ?? {};
    for (const key of APP_LABELS) {
      const value = labels[key];
      if (value !== undefined) return { namespace: workload.namespace, labels: { [key]: value } };
    }
    if (workload.serviceAccount !== undefined && workload.serviceAccount !== '' && workload.serviceAccount !== 'default') {
      return { namespace: workload.namespace, serviceAccount: workload.serviceAccount };
    }
    const stable = Object.keys(labels).filter((k) => !VOLATILE_LABELS.has(k)).sort();
    if (stable.length > 0) return { namespace: workload.namespace, labels: Object.fromEntries(stable.map((k) => [k, labels[k]!])) };
    return { namespace: workload.namespace };
  }
  const plain = unmapIpv4(ip);
  return { cidr: isIP(plain) === 6 ? `${plain}/128` : `${plain}/32` };
}

/** '::ffff:10.1.2.3' (what dual-stack sockets report) → '10.1.2.3'. */
function unmapIpv4(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function peerKey(peer: LearnedPeer): string {
  if ('cidr' in peer) return `cidr:${peer.cidr}`;
  if ('service' in peer) return `svc:${peer.service}`;
  const labels = peer.labels === undefined ? '' : Object.keys(peer.labels).sort().map((k) => `${k}=${peer.labels![k]}`).join(',');
  return `id:${peer.namespace}|${labels}|${peer.serviceAccount ?? ''}`;
}

/** The entry family a record learns under, or null when it teaches nothing (see LearnPlugin.family). */
function familyOf(record: ObservedRecord): ProtocolFamily | null {
  const protocol = record.protocol;
  if (protocol === '') return null;
  const learn = pluginForRecord(protocol)?.learn;
  // Without a protocol's learning: an L4 entry (a rule on the protocol alone).
  if (learn === undefined) return protocol;
  if (learn.family !== undefined) return learn.family(record);
  // Connections of protocols that learn their requests are learned from those requests: a
  // connection that carried none (closed early) must not turn into a rule allowing every request.
  return record.type === 'request' ? protocol : null;
}

function learnOf(family: string): LearnPlugin | undefined {
  return pluginForRecord(family)?.learn;
}

interface EntryStats {
  count: number;
  first: number;
  last: number;
}

/** One (direction, peer, port, protocol family) and what was seen there. */
export class ServiceEntry implements LearnedEntry {
  readonly protocols = new Set<string>();
  readonly stats: EntryStats = { count: 0, first: Number.POSITIVE_INFINITY, last: 0 };
  /** Template tries by name (the protocol's learning names them). */
  readonly tries = new Map<string, TemplateTrie>();
  /** Value sets by name. */
  readonly sets = new Map<string, Set<string>>();
  readonly flags = new Set<string>();

  constructor(
    readonly key: string,
    readonly direction: Direction,
    readonly peer: LearnedPeer,
    readonly port: number,
    readonly family: ProtocolFamily,
  ) {}

  get count(): number {
    return this.stats.count;
  }

  get first(): number {
    return this.stats.first;
  }

  get last(): number {
    return this.stats.last;
  }

  templates(trie: string): LearnedTemplate[] {
    const found = this.tries.get(trie);
    if (found === undefined) return [];
    return found.entries().map((e) => ({ parts: e.parts, deep: e.deep, tags: e.stats.tags, count: e.stats.count, first: e.stats.first, last: e.stats.last }));
  }

  values(set: string): readonly string[] | undefined {
    const found = this.sets.get(set);
    return found === undefined ? undefined : [...found];
  }

  valueSets(): string[] {
    return [...this.sets.keys()].sort();
  }

  flag(name: string): boolean {
    return this.flags.has(name);
  }

  touch(count: number, first: number, last: number): void {
    this.stats.count += count;
    if (first < this.stats.first) this.stats.first = first;
    if (last > this.stats.last) this.stats.last = last;
  }

  /** Node count of this entry's tries (given back to the budget when the entry is merged away). */
  release(): void {
    for (const trie of this.tries.values()) trie.release();
  }
}

export interface ServiceState {
  direction: Direction;
  peer: LearnedPeer;
  port: number;
  family: string;
  protocols: string[];
  count: number;
  first: number;
  last: number;
  /** Template tries by name. */
  tries?: Record<string, TemplateState[]>;
  /** Value sets by name. */
  values?: Record<string, string[]>;
  flags?: string[];
}

/** [parts, deep (0|1), count, first, last, tags] */
export type TemplateState = [string[], 0 | 1, number, number, number, string[]];

export interface ModelState extends ModelCounters {
  kind: 'sidewall-learn-model';
  /** 2: tries, values and flags by name; 1 (read too): the same as fields of their own. */
  version: 2;
  services: ServiceState[];
}

export class LearnModel {
  readonly limits: LearnLimits;
  readonly counters: ModelCounters = { observed: 0, folded: 0, dropped: 0 };
  private readonly budget: NodeBudget;
  private readonly services = new Map<string, ServiceEntry>();
  /** direction|port|family|/24 → keys of the /32 entries in it. */
  private readonly subnets = new Map<string, Set<string>>();
  private readonly trieLimits: Readonly<Record<TemplateKind, TrieLimits>>;

  constructor(limits: Partial<LearnLimits> = {}) {
    this.limits = { ...DEFAULT_LEARN_LIMITS, ...limits };
    this.budget = new NodeBudget(this.limits.maxPaths);
    const maxSiblings = this.limits.maxSiblings;
    this.trieLimits = {
      path: { maxSiblings, minCollapseDepth: () => 0 },
      name: { maxSiblings, minCollapseDepth: registrableDepth },
      plain: { maxSiblings, minCollapseDepth: () => 0 },
    };
  }

  get serviceCount(): number {
    return this.services.size;
  }

  /** Nodes of all tries (the quantity capped by maxPaths). */
  get nodeCount(): number {
    return this.budget.used;
  }

  get folded(): number {
    return this.counters.folded + this.budget.folded;
  }

  entries(): ServiceEntry[] {
    return [...this.services.values()];
  }

  /**
   * Learns from one flow record; returns false when the record carries nothing to learn
   * (alerts, interim records, tunnels, connections of request-level protocols).
   * `timeMs` defaults to the record's own time.
   */
  observe(record: ObservedRecord & { time?: string }, timeMs?: number): boolean {
    if (record.type === 'alert' || record.interim === true || record.tunnel !== undefined) return false;
    // What a rule (a cluster rule with appliesTo, a DLP rule or sensor) denies or would deny is
    // never learned: an allow rule for it would contradict the rule above it. Only what the
    // default action decided is new behaviour to learn.
    if (record.verdict !== undefined && record.verdict !== 'allowed' && record.ruleId !== undefined && record.ruleId !== null && record.ruleId !== 'default') return false;
    const family = familyOf(record);
    if (family === null) return false;
    const time = timeMs ?? (record.time !== undefined ? Date.parse(record.time) : Date.now());
    const at = Number.isFinite(time) ? time : Date.now();
    const remote = record.direction === 'ingress' ? record.src : record.dst;
    const entry = this.entryFor(record.direction, peerOf(remote.workload, remote.ip, record.direction === 'ingress' ? undefined : remote.service), record.dst.port, family);
    if (entry === null) {
      this.counters.dropped++;
      return false;
    }
    this.counters.observed++;
    entry.protocols.add(record.protocol);
    entry.touch(1, at, at);
    // The record's own protocol reads it (http2 records learn into the family http).
    pluginForRecord(record.protocol)?.learn?.observe({ type: record.type, protocol: record.protocol, l7: record.l7 ?? {} }, family, this.recorder(entry, at));
    return true;
  }

  /** What a protocol's learning writes into one entry, for one observation at `at`. */
  private recorder(entry: ServiceEntry, at: number): LearnRecorder {
    return {
      template: (trie, parts, options) => {
        const tags = new Set<string>();
        if (options?.tag !== undefined) tags.add(options.tag);
        this.trieOf(entry, trie).add([...parts], { count: 1, first: at, last: at, tags }, options?.deep === true);
      },
      value: (set, value) => this.addValue(entry, set, value),
      flag: (name) => void entry.flags.add(name),
      drop: () => void this.counters.dropped++,
    };
  }

  private trieOf(entry: ServiceEntry, name: string): TemplateTrie {
    let trie = entry.tries.get(name);
    if (trie === undefined) {
      const kind = learnOf(entry.family)?.tries?.[name] ?? 'plain';
      trie = new TemplateTrie(this.budget, this.trieLimits[kind]);
      entry.tries.set(name, trie);
    }
    return trie;
  }

  /** Bounded: at most maxSiblings + 3 sets per entry (then they share '*'), 64 values per set. */
  private addValue(entry: ServiceEntry, name: string, value: string): void {
    let set = entry.sets.get(name);
    if (set === undefined) {
      if (entry.sets.size >= this.limits.maxSiblings + 3) {
        this.counters.folded++;
        name = WILDCARD;
        set = entry.sets.get(name) ?? new Set();
      } else set = new Set();
      entry.sets.set(name, set);
    }
    if (set.has(value)) return;
    if (set.size < MAX_VALUES) set.add(value);
    else this.counters.folded++;
  }

  /** The entry for these facts: existing, new, or (unknown IPv4 peers) the /24 they were folded into. */
  private entryFor(direction: Direction, peer: LearnedPeer, port: number, family: ProtocolFamily): ServiceEntry | null {
    const key = `${direction}|${peerKey(peer)}|${port}|${family}`;
    const found = this.services.get(key);
    if (found !== undefined) return found;
    if ('cidr' in peer && peer.cidr.endsWith('/32')) {
      const ip = peer.cidr.slice(0, -3);
      const subnet = `${ip.slice(0, ip.lastIndexOf('.'))}.0/24`;
      const subnetEntry = this.services.get(`${direction}|cidr:${subnet}|${port}|${family}`);
      if (subnetEntry !== undefined) {
        this.counters.folded++;
        return subnetEntry;
      }
      const groupKey = `${direction}|${port}|${family}|${subnet}`;
      const group = this.subnets.get(groupKey) ?? new Set<string>();
      if (group.size >= this.limits.maxPeersPerSubnet) {
        this.subnets.delete(groupKey);
        return this.mergeIntoSubnet(direction, subnet, port, family, group);
      }
      const entry = this.create(key, direction, peer, port, family);
      if (entry !== null) {
        group.add(key);
        this.subnets.set(groupKey, group);
      }
      return entry;
    }
    return this.create(key, direction, peer, port, family);
  }

  private create(key: string, direction: Direction, peer: LearnedPeer, port: number, family: ProtocolFamily): ServiceEntry | null {
    if (this.services.size >= this.limits.maxServices) return null;
    const entry = new ServiceEntry(key, direction, peer, port, family);
    this.services.set(key, entry);
    return entry;
  }

  /** Replaces the /32 entries of one /24 by a single /24 entry holding all they saw. */
  private mergeIntoSubnet(direction: Direction, subnet: string, port: number, family: ProtocolFamily, members: Set<string>): ServiceEntry {
    const target = new ServiceEntry(`${direction}|cidr:${subnet}|${port}|${family}`, direction, { cidr: subnet }, port, family);
    for (const key of members) {
      const member = this.services.get(key);
      if (member === undefined) continue;
      this.services.delete(key);
      member.release();
      this.absorb(target, member);
      this.counters.folded += member.stats.count;
    }
    this.services.set(target.key, target);
    this.counters.folded++;
    return target;
  }

  /** Adds everything `from` saw to `into` (tries replayed, so limits apply). */
  private absorb(into: ServiceEntry, from: ServiceEntry): void {
    into.touch(from.stats.count, from.stats.first, from.stats.last);
    for (const p of from.protocols) into.protocols.add(p);
    for (const [name, values] of from.sets) for (const v of values) this.addValue(into, name, v);
    for (const flag of from.flags) into.flags.add(flag);
    for (const [name, trie] of from.tries) for (const e of trie.entries()) this.trieOf(into, name).add(e.parts, e.stats, e.deep);
  }

  /** Plain JSON, for the state file and the admin's /learn/model. Deterministic order. */
  toState(): ModelState {
    const services = [...this.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((entry): ServiceState => {
      const state: ServiceState = {
        direction: entry.direction,
        peer: entry.peer,
        port: entry.port,
        family: entry.family,
        protocols: [...entry.protocols].sort(),
        count: entry.stats.count,
        first: entry.stats.first,
        last: entry.stats.last,
      };
      if (entry.tries.size > 0) state.tries = Object.fromEntries([...entry.tries.keys()].sort().map((k) => [k, trieState(entry.tries.get(k)!)]));
      if (entry.sets.size > 0) state.values = Object.fromEntries(entry.valueSets().map((k) => [k, [...entry.sets.get(k)!].sort()]));
      if (entry.flags.size > 0) state.flags = [...entry.flags].sort();
      return state;
    });
    return { kind: 'sidewall-learn-model', version: 2, observed: this.counters.observed, folded: this.folded, dropped: this.counters.dropped, services };
  }

  /** Adds a saved model (validated field by field) to this one, under this model's limits. */
  load(data: unknown, source: string): void {
    const state = asRecord(data, source, '');
    if (state.kind !== 'sidewall-learn-model') throw new LearnStateError(source, 'kind', `must be 'sidewall-learn-model' (this is not a saved sidewall model)`);
    if (state.version !== 1 && state.version !== 2) throw new LearnStateError(source, 'version', `${JSON.stringify(state.version)} is not a version this sidewall reads (1, 2)`);
    this.counters.observed += count(state.observed, source, 'observed');
    this.counters.folded += count(state.folded, source, 'folded');
    this.counters.dropped += count(state.dropped, source, 'dropped');
    if (!Array.isArray(state.services)) throw new LearnStateError(source, 'services', 'must be a list');
    const v1 = state.version === 1;
    state.services.forEach((raw: unknown, i) => this.loadService(v1 ? fromVersion1(raw) : raw, source, `services[${i}]`));
  }

  private loadService(raw: unknown, source: string, field: string): void {
    const s = asRecord(raw, source, field);
    const direction = s.direction;
    if (direction !== 'ingress' && direction !== 'egress' && direction !== 'intra') throw new LearnStateError(source, `${field}.direction`, 'must be ingress, egress or intra');
    const peer = loadPeer(s.peer, source, `${field}.peer`);
    const port = s.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new LearnStateError(source, `${field}.port`, 'must be a port number');
    if (typeof s.family !== 'string' || !/^[a-z0-9]+$/.test(s.family)) throw new LearnStateError(source, `${field}.family`, 'must be a protocol name');
    const family = s.family;
    const key = `${direction}|${peerKey(peer)}|${port}|${family}`;
    const entry = this.services.get(key) ?? this.create(key, direction, peer, port, family);
    if (entry === null) {
      this.counters.dropped += count(s.count, source, `${field}.count`);
      return;
    }
    entry.touch(count(s.count, source, `${field}.count`), count(s.first, source, `${field}.first`), count(s.last, source, `${field}.last`));
    for (const p of stringList(s.protocols, source, `${field}.protocols`)) entry.protocols.add(p);
    for (const flag of s.flags === undefined ? [] : stringList(s.flags, source, `${field}.flags`)) if (TAG.test(flag)) entry.flags.add(flag);
    if (s.values !== undefined) {
      const values = asRecord(s.values, source, `${field}.values`);
      for (const [name, list] of Object.entries(values)) {
        for (const v of stringList(list, source, `${field}.values.${name}`)) this.addValue(entry, name, v);
      }
    }
    if (s.tries !== undefined) {
      const tries = asRecord(s.tries, source, `${field}.tries`);
      for (const [name, list] of Object.entries(tries)) {
        // Parts go back through what observing would have made of them (a hand-edited state
        // must not put a glob into a rule that the protocol's templating would not).
        const kind = learnOf(family)?.tries?.[name] ?? 'plain';
        const clean = kind === 'path' ? templatePathSegment : kind === 'name' ? (p: string) => (p === WILDCARD || !isUnwritableLabel(p) ? p : WILDCARD) : (p: string) => p;
        this.loadTrie(list, source, `${field}.tries.${name}`, () => this.trieOf(entry, name), clean);
      }
    }
  }

  private loadTrie(raw: unknown, source: string, field: string, trie: () => TemplateTrie, clean: (part: string) => string): void {
    if (!Array.isArray(raw)) throw new LearnStateError(source, field, 'must be a list of [parts, deep, count, first, last, tags]');
    raw.forEach((item: unknown, i) => {
      const where = `${field}[${i}]`;
      if (!Array.isArray(item) || item.length !== 6) throw new LearnStateError(source, where, 'must be [parts, deep, count, first, last, tags]');
      const [parts, deep, n, first, last, tags] = item as unknown[];
      const stats: TemplateStats = {
        count: count(n, source, `${where}[2]`),
        first: count(first, source, `${where}[3]`),
        last: count(last, source, `${where}[4]`),
        tags: new Set(stringList(tags, source, `${where}[5]`).filter((t) => TAG.test(t))),
      };
      trie().add(stringList(parts, source, `${where}[0]`).map(clean), stats, deep === 1);
    });
  }
}

/**
 * A version-1 entry in version 2's shape: its tries, flags and value sets were fields of their own
 * (a list of templates: a trie; true: a flag; a list of strings: a value set; `db`: a mapping of
 * value sets), named as the protocols' learning still names them.
 */
function fromVersion1(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const fixed = new Set(['direction', 'peer', 'port', 'family', 'protocols', 'count', 'first', 'last']);
  const out: Record<string, unknown> = {};
  const tries: Record<string, unknown> = {};
  const values: Record<string, unknown> = {};
  const flags: string[] = [];
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (fixed.has(key)) out[key] = value;
    else if (key === 'db' && value !== null && typeof value === 'object' && !Array.isArray(value)) Object.assign(values, value);
    else if (value === true) flags.push(key);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) values[key] = value;
    else if (Array.isArray(value)) tries[key] = value;
  }
  if (Object.keys(tries).length > 0) out.tries = tries;
  if (Object.keys(values).length > 0) out.values = values;
  if (flags.length > 0) out.flags = flags;
  return out;
}

function trieState(trie: TemplateTrie): TemplateState[] {
  return trie.entries().map((e) => [e.parts, e.deep ? 1 : 0, e.stats.count, e.stats.first, e.stats.last, [...e.stats.tags].sort()]);
}

function asRecord(value: unknown, source: string, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new LearnStateError(source, field, 'must be a mapping');
  return value as Record<string, unknown>;
}

function count(value: unknown, source: string, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new LearnStateError(source, field, `must be a number ≥ 0, not ${JSON.stringify(value)}`);
  return value;
}

function stringList(value: unknown, source: string, field: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new LearnStateError(source, field, 'must be a list of strings');
  return value as string[];
}

function loadPeer(value: unknown, source: string, field: string): LearnedPeer {
  const peer = asRecord(value, source, field);
  if (typeof peer.cidr === 'string') {
    const [ip, bits] = peer.cidr.split('/');
    if (ip === undefined || isIP(ip) === 0 || bits === undefined || !/^\d{1,3}$/.test(bits)) throw new LearnStateError(source, `${field}.cidr`, `'${peer.cidr}' is not an address block`);
    return { cidr: peer.cidr };
  }
  if (peer.service !== undefined) {
    if (typeof peer.service !== 'string' || !/^[a-z0-9-]+\/[a-z0-9-]+$/.test(peer.service)) throw new LearnStateError(source, `${field}.service`, 'must be namespace/name');
    return { service: peer.service };
  }
  if (typeof peer.namespace !== 'string' || peer.namespace === '') throw new LearnStateError(source, field, 'must have a cidr, a service or a namespace');
  const out: LearnedPeer = { namespace: peer.namespace };
  if (peer.labels !== undefined) {
    const labels = asRecord(peer.labels, source, `${field}.labels`);
    for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string') throw new LearnStateError(source, `${field}.labels.${k}`, 'must be a string');
    out.labels = labels as Record<string, string>;
  }
  if (peer.serviceAccount !== undefined) {
    if (typeof peer.serviceAccount !== 'string') throw new LearnStateError(source, `${field}.serviceAccount`, 'must be a string');
    out.serviceAccount = peer.serviceAccount;
  }
  return out;
}
