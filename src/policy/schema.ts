// Rule validation (PRODUCT.md "Rules"): checks untyped input (parsed YAML/JSON) against the rule
// schema (rule-schema.ts, compiled once with ajv) and produces the normalised rule form that is
// hashed and compiled. Every problem becomes a RuleIssue with the rule's index and the field, and
// validation goes on so the user sees all of them at once. After the schema, the checks JSON
// Schema cannot say well: unique ids, at most one L7 block, a block that fits `protocol`.
//
// A rule:
//   id: string, unique across both tiers ('default' is reserved for the defaultAction)
//   action: allow | deny | pass (pass: cluster tier only)
//   log: boolean (default false); description: free text
//   direction: ingress | egress | intra, or a list of them (default: all)
//   peer: {cidr, namespace, labels, serviceAccount} or a list of such (any of them); inside one
//         peer every given field must match; cidr/namespace/serviceAccount take a string or list
//   ports: 80, "8000-8100", or a list of them (the destination port)
//   protocol: one of RULE_PROTOCOLS (connections), or udp / icmp (DATAGRAM_PROTOCOLS: the
//         non-TCP guard's flows; such a rule takes direction, peer and, for udp, ports; never L7)
//   at most one L7 block, one a protocol folder adds (registry `ruleBlock`: http, grpc, tls, dns,
//         redis, postgres, mysql...); without `protocol` the block implies it.

import { parseCidr } from './ip.js';
import {
  CLUSTER_ONLY_PROPERTIES, DATAGRAM_PROTOCOLS, NON_TCP_DEFAULT_ID, PROTOCOLS, RULE_FORMATS, RULE_PROTOCOLS, ruleBlocks, ruleSchema,
  type RuleBlockSpec,
} from './rule-schema.js';
import { compileSchema, describeValue, generatedFromFile, validatorCache, unknownKeyMessage, type CompiledSchema, type FormatCheck } from '../schema/validator.js';
import type { Direction, RuleAction, RuleIssue, Tier } from './types.js';
import { contentProtocols, registryVersion, ruleBlockFormats } from '../protocols/registry.js';

export { DATAGRAM_PROTOCOLS, NON_TCP_DEFAULT_ID, PROTOCOLS, RULE_PROTOCOLS, describeValue, unknownKeyMessage };

export interface NormalizedPeer {
  cidr?: string[];
  namespace?: string[];
  labels?: Record<string, string>;
  serviceAccount?: string[];
  /** Kubernetes Services as 'namespace/name'. */
  service?: string[];
}

export interface NormalizedRule {
  id: string;
  action: RuleAction;
  log: boolean;
  /** Flows this rule decides are captured (pcapng, src/capture). */
  capture?: boolean;
  description?: string;
  direction?: Direction[];
  peer?: NormalizedPeer[];
  /** Inclusive [from, to] destination port ranges. */
  ports?: Array<[number, number]>;
  /** The explicit protocol, or the one implied by the L7 block. */
  protocol?: string;
  /** DLP sensors: non-empty, a content matcher; empty, DLP off for the flows this rule decides. */
  dlp?: string[];
  /** The protected pods this (cluster) rule is in force in. */
  appliesTo?: NormalizedAppliesTo;
  /**
   * The rule's L7 block (at most one), by key, as its protocol's `normalize` left it (registry
   * `ruleBlock`: http, grpc, tls, dns, redis, postgres, mysql...). The policy hash reads it under
   * its key, as the rule is written (policyHash).
   */
  blocks?: Record<string, Record<string, unknown>>;
}

/** The protected pod's identity a cluster rule applies to; every given field must match. */
export interface NormalizedAppliesTo {
  namespace?: string[];
  labels?: Record<string, string>;
  serviceAccount?: string[];
}

/** Rule protocols a `dlp` matcher fits (DLP reads HTTP, HTTP/2 and gRPC content: the protocols that scan content), the first implied. */
const DLP_PROTOCOLS: readonly string[] = contentProtocols();

const DIRECTIONS: readonly Direction[] = ['ingress', 'egress', 'intra'];

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Held through a WeakRef (validatorCache): the rule validator is needed at start and on a reload.
let compiled: { version: number; validator: () => CompiledSchema } | undefined;
const GENERATED_RULES = new URL('../schema/generated/rules.js', import.meta.url);
/** A rule's fields in schema order (issues of one rule are reported in it). */
const RULE_ORDER = (ruleSchema('any').properties ?? {}) as Record<string, unknown>;

/**
 * The compiled rule schema (on first use: the build's generated code while the schema is the built-in one, else compiled; then shared until the protocol registry changes). One for both tiers: what only
 * cluster rules may have is refused for the workload tier in workloadTierIssues.
 */
/** The formats the rule schema names: the policy's own and those of the registered rule blocks. */
export function ruleFormats(): Record<string, FormatCheck> {
  return { ...RULE_FORMATS, ...ruleBlockFormats() };
}

export function ruleValidator(): CompiledSchema {
  // Recompiled when a protocol is registered at run time (its rule block joins the schema).
  const version = registryVersion();
  if (compiled === undefined || compiled.version !== version) compiled = { version, validator: validatorCache(() => compileSchema(ruleSchema('any'), { formats: ruleFormats(), generated: generatedFromFile(GENERATED_RULES) })) };
  return compiled.validator();
}

/** What a workload rule may not have that a cluster rule may. */
function workloadTierIssues(value: Record<string, unknown>, add: (field: string, message: string) => void): void {
  if (value.action === 'pass') add('action', "'pass' is only allowed in cluster rules (it hands over to the workload tier); use allow or deny");
  for (const key of Object.keys(CLUSTER_ONLY_PROPERTIES)) {
    if (value[key] !== undefined) add(key, `only cluster rules may have '${key}'`);
  }
}

function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [value as T];
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  const sorted: Record<string, T> = {};
  for (const key of Object.keys(record).sort()) sorted[key] = record[key]!;
  return sorted;
}

function portRange(value: number | string): [number, number] {
  if (typeof value === 'number') return [value, value];
  const [from, to] = value.split('-').map((part) => Number(part.trim()));
  return [from!, to ?? from!];
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

function normalizePeer(value: Record<string, unknown>): NormalizedPeer {
  const peer: NormalizedPeer = {};
  if (value.cidr !== undefined) peer.cidr = [...new Set(list<string>(value.cidr).map((s) => {
    const parsed = parseCidr(s.trim());
    return parsed.ok ? parsed.cidr.text : s;
  }))];
  if (value.namespace !== undefined) peer.namespace = list<string>(value.namespace);
  if (value.serviceAccount !== undefined) peer.serviceAccount = list<string>(value.serviceAccount);
  if (value.labels !== undefined) peer.labels = sortKeys(value.labels as Record<string, string>);
  if (value.service !== undefined) {
    const names: string[] = [];
    let allBare = true;
    for (const ref of list<string | { namespace: string; name: string }>(value.service)) {
      if (typeof ref === 'object') {
        allBare = false;
        names.push(`${ref.namespace}/${ref.name}`);
      } else if (ref.includes('/')) {
        allBare = false;
        names.push(ref);
      } else for (const ns of peer.namespace ?? []) names.push(`${ns}/${ref}`);
    }
    peer.service = [...new Set(names)];
    // `{namespace: shop, service: payments}` names the Service shop/payments; the namespace is
    // then part of the Service's name, not a second matcher on the endpoints' workloads.
    if (allBare) delete peer.namespace;
  }
  return peer;
}

/** A rule that passed the schema, in the form the compiler reads. */
function normalizeRule(value: Record<string, unknown>, blocks: Readonly<Record<string, RuleBlockSpec>>): NormalizedRule {
  const rule: NormalizedRule = { id: value.id as string, action: value.action as RuleAction, log: value.log === true };
  if (value.capture === true) rule.capture = true;
  if (typeof value.description === 'string') rule.description = value.description;
  if (value.direction !== undefined) {
    const given = list<string>(value.direction);
    rule.direction = DIRECTIONS.filter((d) => given.includes(d));
  }
  if (value.peer !== undefined) rule.peer = list<Record<string, unknown>>(value.peer).map(normalizePeer);
  if (value.ports !== undefined) rule.ports = mergeRanges(list<number | string>(value.ports).map(portRange));
  let protocol = typeof value.protocol === 'string' ? value.protocol.toLowerCase() : undefined;
  for (const [kind, spec] of Object.entries(blocks)) {
    const block = value[kind];
    if (block === undefined) continue;
    const normalized = block === null ? {} : spec.normalize(block as Record<string, unknown>);
    rule.blocks = { ...rule.blocks, [kind]: normalized };
    protocol ??= spec.protocols[0] ?? kind;
  }
  if (Array.isArray(value.dlp)) {
    rule.dlp = [...new Set(value.dlp as string[])].sort();
    if (rule.dlp.length > 0) protocol ??= DLP_PROTOCOLS[0];
  }
  if (isPlainObject(value.appliesTo)) {
    const sel = value.appliesTo;
    const appliesTo: NormalizedAppliesTo = {};
    if (sel.namespace !== undefined) appliesTo.namespace = list<string>(sel.namespace);
    if (sel.labels !== undefined) appliesTo.labels = sortKeys(sel.labels as Record<string, string>);
    if (sel.serviceAccount !== undefined) appliesTo.serviceAccount = list<string>(sel.serviceAccount);
    rule.appliesTo = appliesTo;
  }
  if (protocol !== undefined) rule.protocol = protocol;
  return rule;
}

/** The checks between fields that the schema leaves to code; issues go to `add`. */
function crossFieldIssues(value: Record<string, unknown>, blocks: Readonly<Record<string, RuleBlockSpec>>, add: (field: string, message: string) => void): void {
  // peer.service: a bare Service name needs the peer's namespace (names are unique only within one).
  const peers = Array.isArray(value.peer) ? value.peer : [value.peer];
  peers.forEach((peer: unknown, p) => {
    if (!isPlainObject(peer) || peer.service === undefined || peer.namespace !== undefined) return;
    const at = Array.isArray(value.peer) ? `peer[${p}].service` : 'peer.service';
    const refs = Array.isArray(peer.service) ? peer.service : [peer.service];
    refs.forEach((ref: unknown, i) => {
      if (typeof ref !== 'string' || ref.includes('/')) return;
      add(Array.isArray(peer.service) ? `${at}[${i}]` : at, `'${ref}' names no namespace; write 'NAMESPACE/${ref}', {namespace, name: ${ref}}, or give the peer a namespace`);
    });
  });
  // A protocol the schema refused has its own issue; the checks below read only a valid one.
  const protocol = typeof value.protocol === 'string' && RULE_FORMATS['rule-protocol']!(value.protocol) === null ? value.protocol.toLowerCase() : undefined;
  if (protocol === 'icmp' && value.ports !== undefined) add('ports', 'ICMP has no ports; leave ports out and match ICMP by peer and direction');
  if (Array.isArray(value.dlp) && value.dlp.length > 0 && protocol !== undefined && !DLP_PROTOCOLS.includes(protocol)) {
    const fits = `${DLP_PROTOCOLS.slice(0, -1).join(', ')} or ${DLP_PROTOCOLS[DLP_PROTOCOLS.length - 1]}`;
    add('dlp', `DLP scans HTTP, HTTP/2 and gRPC content; a dlp matcher cannot match protocol '${protocol}' (use protocol ${fits}, or leave protocol out)`);
  }
  const present = Object.keys(blocks).filter((k) => value[k] !== undefined);
  if (present.length > 1) {
    add(present[1]!, `a rule has at most one L7 block; this one has ${present.join(' and ')} (split it into one rule per protocol)`);
  }
  const kind = present[0];
  if (kind === undefined || protocol === undefined) return;
  const allowed = blocks[kind]!.protocols;
  if (protocol === 'tcp') {
    add(kind, `protocol 'tcp' is decided when the connection opens and cannot have an L7 block; use protocol: ${kind}`);
  } else if (!allowed.includes(protocol)) {
    add(kind, `an ${kind} block does not match protocol '${protocol}' (it needs protocol ${allowed.join(', ')})`);
  }
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
  let items: unknown = input;
  if (isPlainObject(input)) items = input.rules ?? [];
  if (items === null || items === undefined) items = [];
  if (!Array.isArray(items)) {
    issues.push({ source, index: null, field: '', message: `rules must be a list of rules (or a mapping with 'rules:'), not ${describeValue(items)}` });
    return { rules: [], issues };
  }
  const validator = ruleValidator();
  const blocks = ruleBlocks();
  const rules: NormalizedRule[] = [];
  const seen = new Map<string, number>();
  items.forEach((item: unknown, index) => {
    const id = isPlainObject(item) && typeof item.id === 'string' ? item.id : undefined;
    const before = issues.length;
    const add = (field: string, message: string): void => {
      const issue: RuleIssue = { source, index, field, message };
      if (id !== undefined) issue.id = id;
      issues.push(issue);
    };
    // One rule's issues in the order of its fields (the schema's, then the tier's, interleaved).
    const found: Array<{ field: string; message: string }> = [];
    const collect = (field: string, message: string): void => void found.push({ field, message });
    for (const problem of validator.issues(item)) {
      // The schema serves both tiers; a workload rule is told only what it may use.
      const message = tier === 'workload' && problem.field === 'action' ? problem.message.replace('allow, deny, pass', 'allow, deny') : problem.message;
      collect(problem.field, message);
    }
    if (tier === 'workload' && isPlainObject(item)) workloadTierIssues(item, collect);
    const order = Object.keys(RULE_ORDER);
    const rank = (field: string): number => order.indexOf(field.split(/[.[]/)[0] ?? '');
    found.sort((a, b) => rank(a.field) - rank(b.field));
    for (const issue of found) add(issue.field, issue.message);
    if (isPlainObject(item)) crossFieldIssues(item, blocks, add);
    if (id !== undefined) {
      const first = seen.get(id);
      if (first !== undefined) add('id', `duplicate id '${id}' (also used by rules[${first}]); ids must be unique`);
      else seen.set(id, index);
    }
    if (issues.length === before && isPlainObject(item)) rules.push(normalizeRule(item, blocks));
  });
  return { rules, issues };
}
