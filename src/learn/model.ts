// The learned model of a workload's traffic (issue 9): per direction, peer, destination port and
// protocol family, the L7 shape seen — HTTP methods, path templates and hosts; gRPC services and
// methods; TLS SNI; DNS names and types. Bounded: at most `maxServices` entries, and one node
// budget shared by all path and name tries; what a limit folds or drops is counted.
// It is fed flow records (schema/flow-record.schema.json) and saved as plain JSON (toState).
import { isIP } from 'node:net';
import { normalizeHost } from '../policy/glob.js';
import type { Direction } from '../policy/types.js';
import type { FlowRecordDraft, WorkloadRecord } from '../flows/types.js';
import { keyTemplate } from '../protocols/redis/redis-commands.js';
import { pluginForRecord } from '../protocols/registry.js';
import { LearnStateError } from './errors.js';
import { MAX_PATH_DEPTH, pathSegments } from './path-template.js';
import { isUnwritableLabel, templateNameLabel, templatePathSegment, WILDCARD } from './segment-classifier.js';
import { NodeBudget, TemplateTrie, type TemplateStats, type TrieLimits } from './template-trie.js';

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

/** http (HTTP/1.x and HTTP/2 requests), grpc, tls, dns, or the protocol of an L4-only entry (tcp, ssh, postgres, ...). */
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
/** Second-level labels under which a ccTLD sells names (example.co.uk): the registrable name is one label deeper. */
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'or', 'ne', 'go']);
const HTTP_METHOD = /^[A-Z][A-Z0-9_-]{0,23}$/;
const GRPC_SERVICE = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;
const GRPC_METHOD = /^[A-Za-z0-9_]+$/;
const DNS_TYPE = /^[A-Z0-9]{1,10}$/;

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

/** Depth (in labels, TLD first) of a name's registrable part; labels at or past it may be templated. */
export function registrableDepth(reversed: readonly string[]): number {
  if (reversed[0] === 'local' && reversed[1] === 'cluster' && reversed[2] === 'svc') return 4; // <service>.<namespace>.svc.cluster.local
  if (reversed.length > 2 && reversed[0]!.length === 2 && SECOND_LEVEL.has(reversed[1]!)) return 3;
  return 2;
}

/** A DNS name, SNI or host as trie parts (TLD first), variable labels templated; null when unusable. */
export function nameParts(name: string): string[] | null {
  const lower = name.toLowerCase().replace(/\.$/, '');
  if (lower === '') return null;
  const labels = lower.split('.');
  if (labels.some((l) => l === '')) return null;
  const reversed = labels.reverse();
  const depth = registrableDepth(reversed);
  return reversed.map((label, i) => (i >= depth ? templateNameLabel(label) : isUnwritableLabel(label) ? WILDCARD : label));
}

/** Trie parts back to a name glob: ['com', 'example', '*'] → '*.example.com'; deep → '**.example.com'. */
export function nameGlob(parts: readonly string[], deep: boolean): string {
  const name = [...parts].reverse().join('.');
  if (!deep) return name === '' ? '**' : name;
  return name === '' ? '**' : `**.${name}`;
}

/** Trie parts back to a path glob: ['api', '*'] → '/api/*'; deep → '/api/**'. */
export function pathGlob(parts: readonly string[], deep: boolean): string {
  const path = '/' + parts.join('/');
  if (!deep) return path;
  return parts.length === 0 ? '/**' : `${path}/**`;
}

function familyOf(record: ObservedRecord): ProtocolFamily | null {
  const protocol = record.protocol;
  if (record.type === 'request') {
    if (protocol === 'http' || protocol === 'http2') return 'http';
    if (protocol === 'grpc' || protocol === 'dns') return protocol;
    return protocol === '' ? null : protocol;
  }
  // Connections of request-level protocols are learned from their requests: a connection that
  // carried none (closed early) must not turn into a rule allowing every request.
  if (protocol === 'http' || protocol === 'http2' || protocol === 'grpc' || protocol === 'dns') return null;
  // So are those of protocols that template their requests (registry `learn`).
  if (pluginForRecord(protocol)?.learn !== undefined) return null;
  return protocol === '' ? null : protocol;
}

interface EntryStats {
  count: number;
  first: number;
  last: number;
}

/** One (direction, peer, port, protocol family) and what was seen there. */
export class ServiceEntry {
  readonly protocols = new Set<string>();
  readonly stats: EntryStats = { count: 0, first: Number.POSITIVE_INFINITY, last: 0 };
  /** http: path templates (tags: methods). */
  paths: TemplateTrie | undefined;
  /** http: host names (TLD first); tls: SNI; dns: query names. */
  names: TemplateTrie | undefined;
  /** http: a request had no host or one a rule cannot list; tls: a ClientHello without SNI. */
  unnamed = false;
  /** grpc: [service, method]. */
  grpc: TemplateTrie | undefined;
  /** dns: query types. */
  readonly dnsTypes = new Set<string>();
  /**
   * Databases. redis: key template (`session:*`; '' for commands without keys) → commands;
   * postgres/mysql: 'users', 'databases', 'statements' → values.
   */
  readonly db = new Map<string, Set<string>>();
  /** A protocol that templates its own requests (registry `learn.parts`): their templates. */
  templates: TemplateTrie | undefined;

  constructor(
    readonly key: string,
    readonly direction: Direction,
    readonly peer: LearnedPeer,
    readonly port: number,
    readonly family: ProtocolFamily,
  ) {}

  touch(count: number, first: number, last: number): void {
    this.stats.count += count;
    if (first < this.stats.first) this.stats.first = first;
    if (last > this.stats.last) this.stats.last = last;
  }

  /** Node count of this entry's tries (given back to the budget when the entry is merged away). */
  release(): void {
    this.paths?.release();
    this.names?.release();
    this.grpc?.release();
    this.templates?.release();
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
  paths?: TemplateState[];
  names?: TemplateState[];
  unnamed?: boolean;
  grpc?: TemplateState[];
  dnsTypes?: string[];
  db?: Record<string, string[]>;
  templates?: TemplateState[];
}

/** [parts, deep (0|1), count, first, last, tags] */
export type TemplateState = [string[], 0 | 1, number, number, number, string[]];

export interface ModelState extends ModelCounters {
  kind: 'sidewall-learn-model';
  version: 1;
  services: ServiceState[];
}

export class LearnModel {
  readonly limits: LearnLimits;
  readonly counters: ModelCounters = { observed: 0, folded: 0, dropped: 0 };
  private readonly budget: NodeBudget;
  private readonly services = new Map<string, ServiceEntry>();
  /** direction|port|family|/24 → keys of the /32 entries in it. */
  private readonly subnets = new Map<string, Set<string>>();
  private readonly pathLimits: TrieLimits;
  private readonly nameLimits: TrieLimits;
  private readonly grpcLimits: TrieLimits;

  constructor(limits: Partial<LearnLimits> = {}) {
    this.limits = { ...DEFAULT_LEARN_LIMITS, ...limits };
    this.budget = new NodeBudget(this.limits.maxPaths);
    const maxSiblings = this.limits.maxSiblings;
    this.pathLimits = { maxSiblings, minCollapseDepth: () => 0 };
    this.nameLimits = { maxSiblings, minCollapseDepth: registrableDepth };
    this.grpcLimits = { maxSiblings, minCollapseDepth: () => 0 };
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
    const stats: TemplateStats = { count: 1, first: at, last: at, tags: new Set() };
    const l7 = record.l7 ?? {};
    entry.protocols.add(record.protocol);
    entry.touch(1, at, at);
    switch (family) {
      case 'http':
        this.observeHttp(entry, l7, stats);
        break;
      case 'grpc':
        this.observeGrpc(entry, l7, stats);
        break;
      case 'tls':
        this.observeName(entry, typeof l7.sni === 'string' ? l7.sni : undefined, stats);
        break;
      case 'redis':
      case 'postgres':
      case 'mysql':
        if (record.type === 'request') this.observeDb(entry, family, l7);
        break;
      case 'dns': {
        this.observeName(entry, typeof l7.name === 'string' ? l7.name : undefined, stats);
        const type = typeof l7.type === 'string' ? l7.type.toUpperCase() : '';
        if (DNS_TYPE.test(type) && (entry.dnsTypes.has(type) || entry.dnsTypes.size < this.limits.maxSiblings)) entry.dnsTypes.add(type);
        break;
      }
      default: {
        const learn = pluginForRecord(family)?.learn;
        if (learn === undefined || record.type !== 'request') break;
        const parts = learn.parts(l7);
        if (parts === null || parts.length === 0) {
          this.counters.dropped++;
          break;
        }
        entry.templates ??= new TemplateTrie(this.budget, this.grpcLimits);
        entry.templates.add([...parts], stats);
        break;
      }
    }
    return true;
  }

  /** Redis: commands by key template (keys collapsed to their prefix); SQL: users, databases, verbs. */
  private observeDb(entry: ServiceEntry, family: string, l7: Record<string, unknown>): void {
    const add = (tag: string, value: string): void => {
      let set = entry.db.get(tag);
      if (set === undefined) {
        if (entry.db.size >= this.limits.maxSiblings + 3) {
          this.counters.folded++;
          tag = '*';
          set = entry.db.get(tag) ?? new Set();
        } else set = new Set();
        entry.db.set(tag, set);
      }
      if (set.size < 64) set.add(value);
      else this.counters.folded++;
    };
    if (family === 'redis') {
      const command = typeof l7.command === 'string' && /^[A-Z0-9_|.-]{1,64}$/.test(l7.command) ? l7.command : null;
      if (command === null) {
        this.counters.dropped++;
        return;
      }
      const keys = Array.isArray(l7.keys) ? l7.keys.filter((k): k is string => typeof k === 'string') : [];
      if (keys.length === 0) add('', command);
      for (const key of keys) add(keyTemplate(key), command);
      return;
    }
    const text = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 && v.length <= 128 && !/[\u0000-\u001f*]/.test(v) ? v : null);
    const user = text(l7.user);
    const database = text(l7.database);
    if (user !== null) add('users', user);
    if (database !== null) add('databases', database);
    const verbs = Array.isArray(l7.statements) ? l7.statements : [];
    for (const v of verbs) if (typeof v === 'string' && /^[A-Z]{2,20}$/.test(v)) add('statements', v);
  }

  private observeHttp(entry: ServiceEntry, l7: Record<string, unknown>, stats: TemplateStats): void {
    const method = typeof l7.method === 'string' ? l7.method.toUpperCase() : '';
    const path = typeof l7.path === 'string' ? l7.path : '';
    if (!HTTP_METHOD.test(method) || path === '') {
      this.counters.dropped++;
      return;
    }
    stats.tags.add(method);
    const segments = pathSegments(path);
    const deep = segments.length > MAX_PATH_DEPTH;
    const parts = (deep ? segments.slice(0, MAX_PATH_DEPTH) : segments).map(templatePathSegment);
    entry.paths ??= new TemplateTrie(this.budget, this.pathLimits);
    entry.paths.add(parts, stats, deep);
    const host = typeof l7.host === 'string' ? l7.host : typeof l7.authority === 'string' ? l7.authority : undefined;
    this.observeHost(entry, host);
  }

  private observeHost(entry: ServiceEntry, host: string | undefined): void {
    if (host === undefined || host === '') {
      entry.unnamed = true;
      return;
    }
    const normal = normalizeHost(host);
    const version = isIP(normal);
    // An IPv6 literal cannot be written as a host glob; an IPv4 literal is kept whole (its
    // numbers are an address, not ids).
    if (version === 6 || normal.startsWith('[')) {
      entry.unnamed = true;
      return;
    }
    const parts = version === 4 ? normal.split('.').reverse() : nameParts(normal);
    if (parts === null) {
      entry.unnamed = true;
      return;
    }
    entry.names ??= new TemplateTrie(this.budget, this.nameLimits);
    entry.names.add(parts, { count: 1, first: entry.stats.last, last: entry.stats.last, tags: new Set() });
  }

  private observeGrpc(entry: ServiceEntry, l7: Record<string, unknown>, stats: TemplateStats): void {
    const service = typeof l7.service === 'string' && GRPC_SERVICE.test(l7.service) ? l7.service : WILDCARD;
    const method = typeof l7.grpcMethod === 'string' && GRPC_METHOD.test(l7.grpcMethod) ? l7.grpcMethod : WILDCARD;
    entry.grpc ??= new TemplateTrie(this.budget, this.grpcLimits);
    entry.grpc.add([service, method], stats);
  }

  private observeName(entry: ServiceEntry, name: string | undefined, stats: TemplateStats): void {
    const parts = name === undefined ? null : nameParts(name);
    if (parts === null) {
      entry.unnamed = true;
      return;
    }
    entry.names ??= new TemplateTrie(this.budget, this.nameLimits);
    entry.names.add(parts, stats);
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
    for (const t of from.dnsTypes) into.dnsTypes.add(t);
    for (const [tag, values] of from.db) {
      const set = into.db.get(tag) ?? new Set<string>();
      for (const v of values) set.add(v);
      into.db.set(tag, set);
    }
    if (from.unnamed) into.unnamed = true;
    for (const e of from.paths?.entries() ?? []) (into.paths ??= new TemplateTrie(this.budget, this.pathLimits)).add(e.parts, e.stats, e.deep);
    for (const e of from.names?.entries() ?? []) (into.names ??= new TemplateTrie(this.budget, this.nameLimits)).add(e.parts, e.stats, e.deep);
    for (const e of from.grpc?.entries() ?? []) (into.grpc ??= new TemplateTrie(this.budget, this.grpcLimits)).add(e.parts, e.stats, e.deep);
    for (const e of from.templates?.entries() ?? []) (into.templates ??= new TemplateTrie(this.budget, this.grpcLimits)).add(e.parts, e.stats, e.deep);
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
      if (entry.paths !== undefined) state.paths = trieState(entry.paths);
      if (entry.names !== undefined) state.names = trieState(entry.names);
      if (entry.unnamed) state.unnamed = true;
      if (entry.grpc !== undefined) state.grpc = trieState(entry.grpc);
      if (entry.dnsTypes.size > 0) state.dnsTypes = [...entry.dnsTypes].sort();
      if (entry.db.size > 0) state.db = Object.fromEntries([...entry.db.keys()].sort().map((k) => [k, [...entry.db.get(k)!].sort()]));
      if (entry.templates !== undefined) state.templates = trieState(entry.templates);
      return state;
    });
    return { kind: 'sidewall-learn-model', version: 1, observed: this.counters.observed, folded: this.folded, dropped: this.counters.dropped, services };
  }

  /** Adds a saved model (validated field by field) to this one, under this model's limits. */
  load(data: unknown, source: string): void {
    const state = asRecord(data, source, '');
    if (state.kind !== 'sidewall-learn-model') throw new LearnStateError(source, 'kind', `must be 'sidewall-learn-model' (this is not a saved sidewall model)`);
    if (state.version !== 1) throw new LearnStateError(source, 'version', `${JSON.stringify(state.version)} is not a version this sidewall reads (1)`);
    this.counters.observed += count(state.observed, source, 'observed');
    this.counters.folded += count(state.folded, source, 'folded');
    this.counters.dropped += count(state.dropped, source, 'dropped');
    if (!Array.isArray(state.services)) throw new LearnStateError(source, 'services', 'must be a list');
    state.services.forEach((raw: unknown, i) => this.loadService(raw, source, `services[${i}]`));
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
    if (s.unnamed === true) entry.unnamed = true;
    for (const t of s.dnsTypes === undefined ? [] : stringList(s.dnsTypes, source, `${field}.dnsTypes`)) {
      if (DNS_TYPE.test(t)) entry.dnsTypes.add(t);
    }
    if (s.db !== undefined) {
      const db = asRecord(s.db, source, `${field}.db`);
      for (const [tag, values] of Object.entries(db)) {
        const set = entry.db.get(tag) ?? new Set<string>();
        for (const v of stringList(values, source, `${field}.db.${tag}`)) set.add(v);
        entry.db.set(tag, set);
      }
    }
    this.loadTrie(s.paths, source, `${field}.paths`, () => (entry.paths ??= new TemplateTrie(this.budget, this.pathLimits)), (p) => templatePathSegment(p));
    this.loadTrie(s.names, source, `${field}.names`, () => (entry.names ??= new TemplateTrie(this.budget, this.nameLimits)), (p) => (p === WILDCARD || !isUnwritableLabel(p) ? p : WILDCARD));
    this.loadTrie(s.grpc, source, `${field}.grpc`, () => (entry.grpc ??= new TemplateTrie(this.budget, this.grpcLimits)), (p) => (/^[A-Za-z0-9_.]+$/.test(p) ? p : WILDCARD));
    this.loadTrie(s.templates, source, `${field}.templates`, () => (entry.templates ??= new TemplateTrie(this.budget, this.grpcLimits)), (p) => p);
  }

  private loadTrie(raw: unknown, source: string, field: string, trie: () => TemplateTrie, clean: (part: string) => string): void {
    if (raw === undefined) return;
    if (!Array.isArray(raw)) throw new LearnStateError(source, field, 'must be a list of [parts, deep, count, first, last, tags]');
    raw.forEach((item: unknown, i) => {
      const where = `${field}[${i}]`;
      if (!Array.isArray(item) || item.length !== 6) throw new LearnStateError(source, where, 'must be [parts, deep, count, first, last, tags]');
      const [parts, deep, n, first, last, tags] = item as unknown[];
      const stats: TemplateStats = {
        count: count(n, source, `${where}[2]`),
        first: count(first, source, `${where}[3]`),
        last: count(last, source, `${where}[4]`),
        tags: new Set(stringList(tags, source, `${where}[5]`).filter((t) => HTTP_METHOD.test(t))),
      };
      trie().add(stringList(parts, source, `${where}[0]`).map(clean), stats, deep === 1);
    });
  }
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
