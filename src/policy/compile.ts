// Compilation and evaluation of the two rule tiers (PRODUCT.md "Rules").
//
// Evaluation order: cluster rules in order (allow/deny decide; pass ends the cluster tier), then
// workload rules in order, then defaultAction. Within a rule every matcher must match.
//
// Matching semantics decided here:
// - peer is the source for ingress and the destination for egress and intra; ports is always the
//   destination port. An identity matcher (namespace, labels, serviceAccount) never matches a
//   peer whose workload is unknown. IPv4-mapped IPv6 peers match IPv4 CIDRs.
// - A destination that is a Service's cluster IP (Endpoint.service, issue 20) is the Service's
//   ready endpoints: `service` matches the Service's namespace/name; for allow and pass rules an
//   identity matcher must match EVERY ready endpoint (none ready, or one whose workload is
//   unknown: no match), for deny rules ANY one of them — so while endpoints disagree (a rollout
//   that changes labels) a label allow does not open the Service and a label deny still closes
//   it. `cidr` matches the cluster IP the app dialled; a deny rule's cidr also matches when any
//   ready endpoint's pod IP is inside it.
// - protocol: 'tcp' matches every flow (it says "decide at connect time"). Otherwise a rule's
//   protocol matches the flow's protocol or one layered on it, as the protocol registry says
//   (ruleProtocolMatcher: a family matches its members, a protocol those it carries, a carried
//   protocol its carrier's flows whose facts show it). An L7 block is compiled by the protocol
//   folder that registers it (`ruleBlock.compile`) and only matches when the flow carries that
//   block's L7 facts (`l7[key]`); this file names no protocol.
// - A flow without a protocol (not yet detected) matches only rules without protocol/L7.
// - Non-TCP flows (decideDatagram): a rule with `protocol: udp` or `icmp` applies only to them,
//   never to connections. A non-TCP flow is matched by the rules naming its protocol and by the
//   deny and pass rules that name no protocol (a blanket deny of a peer covers every protocol);
//   an allow rule without a protocol was written for connections and does not open UDP or ICMP.
//   No match: denied ('default:non-tcp'), whatever defaultAction says (PRODUCT.md "Rules").
//
// Cost: rules are compiled to integer port ranges, CIDR words, Sets and one RegExp per glob
// list. Each tier keeps, per (direction, destination port), the list of rules whose direction
// and port matchers pass, computed on first use and cached, so a decision touches only the rules
// that can apply to that port rather than all of them. When such a list is long (many rules on
// one port told apart by peer CIDR), it is narrowed once more per peer address, dropping the
// CIDR-only rules that cannot match that address. Both caches are bounded and start over when full.

import { createHash } from 'node:crypto';
import { IPV4, IPV6, parseCidr, parseIp, type Cidr, type IpFamily } from './ip.js';
import { ruleBlockOf, ruleProtocolMatcher } from '../protocols/registry.js';
import { DATAGRAM_PROTOCOLS, NON_TCP_DEFAULT_ID, validateRuleList, type NormalizedRule } from './schema.js';
import type { CompiledPolicy, DatagramFacts, Decision, Direction, Endpoint, FlowFacts, L7Facts, Mode, RuleIssue, ServiceEndpoint, Tier, Workload } from './types.js';

const DIRECTION_BIT: Record<Direction, number> = { ingress: 1, egress: 2, intra: 4 };
const DIRECTION_INDEX: Record<Direction, number> = { ingress: 0, egress: 1, intra: 2 };
const ALL_DIRECTIONS = 7;

interface CompiledPeer {
  /** Any CIDR given (then v4 and v6 hold them, flattened so a check reads plain numbers). */
  hasCidr: boolean;
  /** IPv4 CIDRs as [network, mask, network, mask, ...]. */
  v4: Float64Array;
  /** IPv6 CIDRs as 8 words each: 4 network words, then 4 mask words. */
  v6: Uint32Array;
  namespaces: ReadonlySet<string> | null;
  labels: Array<[string, string]> | null;
  serviceAccounts: ReadonlySet<string> | null;
  /** Services as 'namespace/name'. */
  services: ReadonlySet<string> | null;
}

/** A rule's L7 block (registry ruleBlock): its key (= the L7 facts' key) and compiled matcher. */
interface CompiledL7 {
  key: string;
  match: (facts: never, action: 'allow' | 'deny' | 'pass') => boolean;
}

interface CompiledRule {
  readonly id: string;
  readonly action: 'allow' | 'deny' | 'pass';
  readonly directionMask: number;
  /** Flattened inclusive ranges [from0, to0, from1, to1, ...], or null for any port. */
  readonly ports: Uint16Array | null;
  readonly peers: CompiledPeer[] | null;
  /** Every peer is CIDRs only: the peer address alone decides whether the peer matcher passes. */
  readonly cidrOnly: boolean;
  readonly protocol: string | null;
  /** Whether the flow's protocol (and, for a carried protocol, its facts) satisfy `protocol` (registry ruleProtocolMatcher). */
  readonly protocolMatch: ((flow: string, l7: Readonly<Record<string, unknown>> | undefined) => boolean) | null;
  /** protocol is udp or icmp: the rule is for the non-TCP guard only. */
  readonly datagram: boolean;
  readonly l7: CompiledL7 | null;
  /** `dlp: [...]` non-empty: the rule matches only a request one of these sensors hit in. */
  readonly dlp: ReadonlySet<string> | null;
  /** The decision this rule yields (null for pass); shared and frozen. */
  readonly decision: Decision | null;
}

function flattenCidrs(texts: readonly string[] | undefined): { hasCidr: boolean; v4: Float64Array; v6: Uint32Array } {
  const cidrs: Cidr[] = (texts ?? []).map((text) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) throw new Error(`internal: unvalidated CIDR ${text}`);
    return parsed.cidr;
  });
  const v4: number[] = [];
  const v6words: number[] = [];
  for (const cidr of cidrs) {
    if (cidr.family === IPV4) v4.push(cidr.network[0]!, cidr.mask[0]!);
    else v6words.push(...cidr.network, ...cidr.mask);
  }
  return { hasCidr: texts !== undefined, v4: Float64Array.from(v4), v6: Uint32Array.from(v6words) };
}

function setOrNull(values: readonly string[] | undefined): ReadonlySet<string> | null {
  return values === undefined ? null : new Set(values);
}

function compileRule(rule: NormalizedRule, tier: Tier, mode: Mode, hash: string): CompiledRule {
  let directionMask = ALL_DIRECTIONS;
  if (rule.direction !== undefined) {
    directionMask = 0;
    for (const d of rule.direction) directionMask |= DIRECTION_BIT[d];
  }
  const ports = rule.ports === undefined ? null : Uint16Array.from(rule.ports.flat());
  const peers = rule.peer === undefined ? null : rule.peer.map((p): CompiledPeer => {
    const cidrs = flattenCidrs(p.cidr);
    // Built field by field (not by spreading) so every peer shares one object shape.
    return {
      hasCidr: cidrs.hasCidr,
      v4: cidrs.v4,
      v6: cidrs.v6,
      namespaces: setOrNull(p.namespace),
      labels: p.labels === undefined ? null : Object.entries(p.labels),
      serviceAccounts: setOrNull(p.serviceAccount),
      services: setOrNull(p.service),
    };
  });
  let l7: CompiledL7 | null = null;
  const block = rule.blocks === undefined ? undefined : Object.entries(rule.blocks)[0];
  if (block !== undefined) {
    const [key, value] = block;
    const spec = ruleBlockOf(key);
    if (spec === undefined) throw new TypeError(`rule block ${key} is not registered`); // validated before: a bug
    l7 = { key, match: spec.compile(value as never) };
  }
  const decision = rule.action === 'pass' ? null : makeDecision(rule.action, rule.id, hash, rule.log, tier, mode, rule.capture === true, rule.dlp);
  const dlp = rule.dlp === undefined || rule.dlp.length === 0 ? null : new Set(rule.dlp);
  const cidrOnly = peers !== null && peers.every((p) => p.hasCidr && p.namespaces === null && p.labels === null && p.serviceAccounts === null && p.services === null);
  const protocol = rule.protocol ?? null;
  const datagram = protocol !== null && DATAGRAM_PROTOCOLS.includes(protocol);
  const protocolMatch = protocol === null || protocol === 'tcp' || datagram ? null : ruleProtocolMatcher(protocol);
  return { id: rule.id, action: rule.action, directionMask, ports, peers, cidrOnly, protocol, protocolMatch, datagram, l7, dlp, decision };
}

function makeDecision(action: 'allow' | 'deny', ruleId: string, hash: string, log: boolean, tier: Tier | 'default', mode: Mode, capture = false, dlp?: readonly string[]): Decision {
  const enforce = mode === 'protect';
  const decision: Decision = {
    action: enforce ? action : 'allow',
    verdict: action === 'allow' ? 'allowed' : enforce ? 'denied' : 'would-deny',
    ruleId,
    policy: hash,
    log,
    tier,
    ...(capture ? { capture: true as const } : {}),
  };
  if (dlp !== undefined) decision.dlp = Object.freeze([...dlp]);
  return Object.freeze(decision);
}

// ---- per-decision facts -------------------------------------------------------------------

/** Scratch space for the peer address: parsed at most once per decision, only if a CIDR asks. */
const peerWords = new Uint32Array(4);

/** The facts of one evaluation, prepared lazily so rules that need nothing cost nothing. */
class Evaluation {
  peer!: Endpoint;
  family: IpFamily | -1 = -1;
  protocol: string | undefined;
  l7: L7Facts | undefined;

  reset(facts: Omit<FlowFacts, 'protocol' | 'l7'> & Partial<Pick<FlowFacts, 'protocol' | 'l7'>>): void {
    this.peer = facts.direction === 'ingress' ? facts.src : facts.dst;
    this.family = -1;
    this.protocol = facts.protocol;
    this.l7 = facts.l7;
  }

  forgetFamily(): void {
    this.family = -1;
  }

  peerFamily(): IpFamily {
    if (this.family === -1) this.family = parseIp(this.peer.ip, peerWords, true);
    return this.family;
  }
}

/** Whether `ip` (parsed into peerWords by the caller) is inside one of the peer's CIDRs. */
function cidrContains(peer: CompiledPeer, family: IpFamily): boolean {
  if (family === IPV4) {
    const ip = peerWords[0]!;
    const v4 = peer.v4;
    for (let i = 0; i < v4.length; i += 2) {
      if (((ip & v4[i + 1]!) >>> 0) === v4[i]) return true;
    }
  } else if (family === IPV6) {
    const v6 = peer.v6;
    for (let i = 0; i < v6.length; i += 8) {
      if (
        ((peerWords[0]! & v6[i + 4]!) >>> 0) === v6[i] &&
        ((peerWords[1]! & v6[i + 5]!) >>> 0) === v6[i + 1] &&
        ((peerWords[2]! & v6[i + 6]!) >>> 0) === v6[i + 2] &&
        ((peerWords[3]! & v6[i + 7]!) >>> 0) === v6[i + 3]
      ) return true;
    }
  }
  return false;
}

function workloadMatches(peer: CompiledPeer, workload: Workload | undefined): boolean {
  if (workload === undefined) return false;
  if (peer.namespaces !== null && (workload.namespace === undefined || !peer.namespaces.has(workload.namespace))) return false;
  if (peer.serviceAccounts !== null && (workload.serviceAccount === undefined || !peer.serviceAccounts.has(workload.serviceAccount))) return false;
  if (peer.labels !== null) {
    const labels = workload.labels;
    if (labels === undefined) return false;
    for (let i = 0; i < peer.labels.length; i++) {
      const [key, value] = peer.labels[i]!;
      if (labels[key] !== value) return false;
    }
  }
  return true;
}

/**
 * `action` matters only for a Service destination: allow/pass need every ready endpoint to
 * match (the peer's workload is what they all share), deny needs one (see the header).
 */
function peerMatches(peer: CompiledPeer, ev: Evaluation, action: CompiledRule['action']): boolean {
  const service = ev.peer.service;
  if (peer.services !== null && (service === undefined || !peer.services.has(`${service.namespace}/${service.name}`))) return false;
  const anyEndpoint = action === 'deny' && service !== undefined;
  if (peer.hasCidr && !cidrContains(peer, ev.peerFamily())) {
    if (!anyEndpoint || !anyEndpointInCidr(peer, service.endpoints, ev)) return false;
  }
  if (peer.namespaces === null && peer.labels === null && peer.serviceAccounts === null) return true;
  if (workloadMatches(peer, ev.peer.workload)) return true;
  if (!anyEndpoint) return false;
  const endpoints = service.endpoints ?? [];
  for (let i = 0; i < endpoints.length; i++) if (workloadMatches(peer, endpoints[i]!.workload)) return true;
  return false;
}

function anyEndpointInCidr(peer: CompiledPeer, endpoints: readonly ServiceEndpoint[] | undefined, ev: Evaluation): boolean {
  if (endpoints === undefined) return false;
  let found = false;
  for (let i = 0; i < endpoints.length && !found; i++) found = cidrContains(peer, parseIp(endpoints[i]!.ip, peerWords, true));
  // peerWords held the endpoints' addresses: the dialled address is parsed again when next asked.
  ev.forgetFamily();
  return found;
}

function anyPeerMatches(peers: readonly CompiledPeer[], ev: Evaluation, action: CompiledRule['action']): boolean {
  for (let p = 0; p < peers.length; p++) {
    if (peerMatches(peers[p]!, ev, action)) return true;
  }
  return false;
}

/** Whether the flow's protocol satisfies a rule protocol (not tcp); see the header. */
function protocolMatches(rule: CompiledRule, ev: Evaluation): boolean {
  const flow = ev.protocol;
  if (flow === undefined) return false;
  return rule.protocolMatch === null ? flow === rule.protocol : rule.protocolMatch(flow, ev.l7);
}

/** The rule's L7 block against the facts under its key: none there, no match. */
function l7Matches(m: CompiledL7, ev: Evaluation, action: CompiledRule['action']): boolean {
  const facts = ev.l7?.[m.key];
  return facts !== undefined && m.match(facts as never, action);
}

/** A rule's `dlp` sensors against the sensors that hit in the request so far. */
function dlpMatches(sensors: ReadonlySet<string>, ev: Evaluation): boolean {
  const hits = ev.l7?.dlp?.sensors;
  if (hits === undefined) return false;
  for (let i = 0; i < hits.length; i++) if (sensors.has(hits[i]!)) return true;
  return false;
}

// ---- tier index ---------------------------------------------------------------------------

const CANDIDATE_CACHE_LIMIT = 4096;
/** Candidate lists at least this long are narrowed further by the peer address. */
const PEER_FILTER_MIN = 32;
const PEER_CACHE_LIMIT = 2048;

/**
 * The rules of one tier, with the per-(direction, port) candidate lists, and for long lists
 * (many rules on one port that differ by peer CIDR) the list narrowed to one peer address.
 */
class TierIndex {
  private readonly cache = new Map<number, Uint32Array>();
  private readonly peerCache = new Map<string, Uint32Array>();
  readonly hasCidrOnly: boolean;
  /** A connection index leaves out the udp/icmp rules (they never decide a TCP connection). */
  constructor(readonly rules: readonly CompiledRule[], private readonly skipDatagram = true) {
    this.hasCidrOnly = rules.some((r) => r.cidrOnly);
  }

  /** `candidates` without the CIDR-only rules whose CIDRs do not contain the peer address. */
  forPeer(direction: Direction, port: number, candidates: Uint32Array, ev: Evaluation): Uint32Array {
    const key = `${DIRECTION_INDEX[direction]}:${port}:${ev.peer.ip}`;
    let list = this.peerCache.get(key);
    if (list !== undefined) return list;
    const found: number[] = [];
    for (let c = 0; c < candidates.length; c++) {
      const rule = this.rules[candidates[c]!]!;
      if (rule.cidrOnly && !anyPeerMatches(rule.peers!, ev, rule.action)) continue;
      found.push(candidates[c]!);
    }
    list = Uint32Array.from(found);
    if (this.peerCache.size >= PEER_CACHE_LIMIT) this.peerCache.clear();
    this.peerCache.set(key, list);
    return list;
  }

  /** Indexes (in order) of the rules whose direction and port matchers accept the flow. */
  candidates(direction: Direction, port: number): Uint32Array {
    const key = DIRECTION_INDEX[direction] * 65536 + port;
    let list = this.cache.get(key);
    if (list !== undefined) return list;
    const bit = DIRECTION_BIT[direction];
    const found: number[] = [];
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i]!;
      if ((rule.directionMask & bit) === 0) continue;
      if (this.skipDatagram && rule.datagram) continue;
      if (rule.ports !== null && !portIn(rule.ports, port)) continue;
      found.push(i);
    }
    list = Uint32Array.from(found);
    // Scanning ports cannot grow memory without bound: start over when the cache is full.
    if (this.cache.size >= CANDIDATE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, list);
    return list;
  }
}

function portIn(ranges: Uint16Array, port: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (port >= ranges[i]! && port <= ranges[i + 1]!) return true;
  }
  return false;
}

/** How far to evaluate: L4 only (accept time), up to the protocol, or everything. */
const STAGE_CONNECTION = 0;
const STAGE_PROTOCOL = 1;
const STAGE_FULL = 2;
/** A flow whose protocol is unknown: deny rules with protocol/L7 matchers apply (fail closed). */
const STAGE_UNDETECTED = 3;

const NEEDS_L7 = 'needs-l7' as const;
/** Returned by a tier scan when the tier did not decide (no match, or a cluster 'pass'). */
const NO_DECISION = null;

class Policy implements CompiledPolicy {
  readonly ruleCount: number;
  readonly hasCaptureRules: boolean;
  readonly dlpSensors: readonly string[];
  private readonly cluster: TierIndex;
  private readonly workload: TierIndex;
  private readonly defaultDecision: Decision;
  private readonly datagramDefault: Decision;
  /** Per non-TCP protocol ('udp', 'icmp', 'other'): the rules of each tier that apply to it. */
  private readonly datagramTiers = new Map<string, [TierIndex, TierIndex]>();
  private readonly evaluation = new Evaluation();

  constructor(
    readonly hash: string,
    readonly mode: Mode,
    readonly defaultAction: 'allow' | 'deny',
    clusterRules: readonly NormalizedRule[],
    workloadRules: readonly NormalizedRule[],
  ) {
    this.cluster = new TierIndex(clusterRules.map((r) => compileRule(r, 'cluster', mode, hash)));
    this.workload = new TierIndex(workloadRules.map((r) => compileRule(r, 'workload', mode, hash)));
    this.ruleCount = clusterRules.length + workloadRules.length;
    this.hasCaptureRules = clusterRules.some((r) => r.capture === true) || workloadRules.some((r) => r.capture === true);
    this.dlpSensors = Object.freeze([...new Set([...clusterRules, ...workloadRules].flatMap((r) => r.dlp ?? []))].sort());
    this.defaultDecision = makeDecision(defaultAction, 'default', hash, false, 'default', mode);
    this.datagramDefault = makeDecision('deny', NON_TCP_DEFAULT_ID, hash, false, 'default', mode);
  }

  decideDatagram(facts: DatagramFacts): Decision {
    const key = facts.protocol === 'udp' || facts.protocol === 'icmp' ? facts.protocol : 'other';
    let tiers = this.datagramTiers.get(key);
    if (tiers === undefined) {
      const applies = (r: CompiledRule): boolean => r.protocol === key || (r.protocol === null && r.l7 === null && r.action !== 'allow');
      tiers = [new TierIndex(this.cluster.rules.filter(applies), false), new TierIndex(this.workload.rules.filter(applies), false)];
      this.datagramTiers.set(key, tiers);
    }
    const ev = this.evaluation;
    ev.reset(facts);
    return scanDatagram(tiers[0], facts.direction, facts.dst.port, ev) ?? scanDatagram(tiers[1], facts.direction, facts.dst.port, ev) ?? this.datagramDefault;
  }

  decide(facts: FlowFacts): Decision {
    return this.evaluate(facts, STAGE_FULL) as Decision;
  }

  decideConnection(facts: Omit<FlowFacts, 'protocol' | 'l7'>): Decision | 'needs-l7' {
    return this.evaluate(facts, STAGE_CONNECTION);
  }

  decideProtocol(facts: Omit<FlowFacts, 'l7'>): Decision | 'needs-l7' {
    return this.evaluate(facts, STAGE_PROTOCOL);
  }

  decideUndetected(facts: Omit<FlowFacts, 'protocol' | 'l7'>): Decision {
    return this.evaluate(facts, STAGE_UNDETECTED) as Decision;
  }

  private evaluate(facts: Omit<FlowFacts, 'protocol' | 'l7'> & Partial<Pick<FlowFacts, 'protocol' | 'l7'>>, stage: number): Decision | 'needs-l7' {
    const ev = this.evaluation;
    ev.reset(facts);
    const port = facts.dst.port;
    const clusterResult = scanTier(this.cluster, facts.direction, port, ev, stage);
    if (clusterResult !== NO_DECISION) return clusterResult;
    const workloadResult = scanTier(this.workload, facts.direction, port, ev, stage);
    if (workloadResult !== NO_DECISION) return workloadResult;
    return this.defaultDecision;
  }
}

function scanTier(tier: TierIndex, direction: Direction, port: number, ev: Evaluation, stage: number): Decision | 'needs-l7' | null {
  let candidates = tier.candidates(direction, port);
  // The per-address narrowing reads the dialled address only; a Service's deny rules also look at its endpoints.
  if (candidates.length >= PEER_FILTER_MIN && tier.hasCidrOnly && ev.peer.service === undefined) candidates = tier.forPeer(direction, port, candidates, ev);
  const rules = tier.rules;
  for (let c = 0; c < candidates.length; c++) {
    const rule = rules[candidates[c]!]!;
    if (rule.peers !== null && !anyPeerMatches(rule.peers, ev, rule.action)) continue;
    if (stage === STAGE_UNDETECTED && ((rule.protocol !== null && rule.protocol !== 'tcp') || rule.l7 !== null || rule.dlp !== null)) {
      if (rule.action === 'deny') return rule.decision;
      continue;
    }
    if (rule.protocol !== null && rule.protocol !== 'tcp') {
      if (stage === STAGE_CONNECTION) return NEEDS_L7;
      if (!protocolMatches(rule, ev)) continue;
    }
    if (rule.l7 !== null) {
      if (stage === STAGE_PROTOCOL) return NEEDS_L7;
      if (!l7Matches(rule.l7, ev, rule.action)) continue;
    }
    if (rule.dlp !== null) {
      // A content matcher: nothing is known of the content before the request is read.
      if (stage === STAGE_PROTOCOL) return NEEDS_L7;
      if (!dlpMatches(rule.dlp, ev)) continue;
    }
    // A cluster 'pass' ends the cluster tier without a decision.
    return rule.decision;
  }
  return NO_DECISION;
}

/** A tier's first matching rule for a non-TCP flow (the index holds only rules that apply). */
function scanDatagram(tier: TierIndex, direction: Direction, port: number, ev: Evaluation): Decision | null {
  const candidates = tier.candidates(direction, port);
  const rules = tier.rules;
  for (let c = 0; c < candidates.length; c++) {
    const rule = rules[candidates[c]!]!;
    if (rule.peers !== null && !anyPeerMatches(rule.peers, ev, rule.action)) continue;
    return rule.decision; // null for a cluster 'pass': on to the workload tier
  }
  return NO_DECISION;
}

// ---- public entry points ------------------------------------------------------------------

/** Stable JSON (sorted keys) so that the hash depends on content, not on key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A rule as it is hashed: its L7 block under its own key, as the rule is written (`http: {...}`),
 * so the hash of a rule does not depend on where the engine keeps its block.
 */
function hashedRule(rule: NormalizedRule): Record<string, unknown> {
  const { blocks, ...rest } = rule;
  return blocks === undefined ? rest : { ...rest, ...blocks };
}

/** 12 hex chars of sha256 over the normalised rules of both tiers, defaultAction and mode. */
export function policyHash(clusterRules: readonly NormalizedRule[], workloadRules: readonly NormalizedRule[], defaultAction: string, mode: Mode): string {
  const canonical = canonicalJson({ v: 1, cluster: clusterRules.map(hashedRule), workload: workloadRules.map(hashedRule), defaultAction, mode });
  return createHash('sha256').update(canonical).digest('hex').slice(0, 12);
}

export interface CompileInput {
  /** Parsed cluster rules (a list or {rules: [...]}), or null/undefined for none. */
  clusterRules: unknown;
  /** Parsed workload rules, likewise. */
  workloadRules: unknown;
  defaultAction: 'allow' | 'deny';
  mode: Mode;
  /** Names used in issues; defaults 'cluster rules' and 'workload rules'. */
  clusterSource?: string;
  workloadSource?: string;
  /**
   * The protected pod (its namespace, labels, service account), for cluster rules with
   * `appliesTo`. Null or absent: not known — then such rules are in force only when they deny
   * (fail closed: the pod may be one they select), never when they allow or pass.
   */
  pod?: Workload | null;
}

/** Whether a cluster rule's `appliesTo` selects the protected pod (see CompileInput.pod). */
export function appliesToPod(rule: NormalizedRule, pod: Workload | null | undefined): boolean {
  const sel = rule.appliesTo;
  if (sel === undefined) return true;
  if (pod === null || pod === undefined) return rule.action === 'deny';
  if (sel.namespace !== undefined && (pod.namespace === undefined || !sel.namespace.includes(pod.namespace))) return false;
  if (sel.serviceAccount !== undefined && (pod.serviceAccount === undefined || !sel.serviceAccount.includes(pod.serviceAccount))) return false;
  if (sel.labels !== undefined) {
    for (const [k, v] of Object.entries(sel.labels)) if (pod.labels?.[k] !== v) return false;
  }
  return true;
}

/** Validates and compiles both tiers; ids must be unique across the two tiers. */
export function compilePolicy(input: CompileInput): { policy: CompiledPolicy } | { issues: RuleIssue[] } {
  const clusterSource = input.clusterSource ?? 'cluster rules';
  const workloadSource = input.workloadSource ?? 'workload rules';
  const issues: RuleIssue[] = [];
  if (input.defaultAction !== 'allow' && input.defaultAction !== 'deny') {
    issues.push({ source: workloadSource, index: null, field: 'defaultAction', message: `must be allow or deny, not '${String(input.defaultAction)}'` });
  }
  if (input.mode !== 'protect' && input.mode !== 'monitor' && input.mode !== 'learn') {
    issues.push({ source: workloadSource, index: null, field: 'mode', message: `must be protect, monitor or learn, not '${String(input.mode)}'` });
  }
  const cluster = validateRuleList(input.clusterRules, clusterSource, 'cluster', issues);
  const workload = validateRuleList(input.workloadRules, workloadSource, 'workload', issues);
  const clusterIds = new Map(cluster.rules.map((r, i) => [r.id, i]));
  const rawWorkload = Array.isArray(input.workloadRules)
    ? input.workloadRules
    : input.workloadRules !== null && typeof input.workloadRules === 'object' && Array.isArray((input.workloadRules as { rules?: unknown }).rules)
      ? ((input.workloadRules as { rules: unknown[] }).rules)
      : [];
  rawWorkload.forEach((raw, index) => {
    const id = raw !== null && typeof raw === 'object' ? (raw as { id?: unknown }).id : undefined;
    if (typeof id !== 'string') return;
    const clash = clusterIds.get(id);
    if (clash !== undefined) {
      issues.push({ source: workloadSource, index, id, field: 'id', message: `id '${id}' is already used by cluster rule ${clash} in ${clusterSource}; rule ids must be unique across both tiers` });
    }
  });
  if (issues.length > 0) return { issues };
  // Only the cluster rules in force in this pod are compiled and hashed: the record's policy
  // hash proves which of them were (a label change gives another hash).
  const inForce = cluster.rules.filter((r) => appliesToPod(r, input.pod));
  const hash = policyHash(inForce, workload.rules, input.defaultAction, input.mode);
  return { policy: new Policy(hash, input.mode, input.defaultAction, inForce, workload.rules) };
}
