// THE rule schema (PRODUCT.md "Rules"), as JSON Schema data: `sidewall policy check`, the policy
// store, the injector's annotation check and the chart's values.schema.json all validate rules
// with it (src/schema/validator.ts compiles it with ajv). One rule:
//
//   id: string, unique across both tiers ('default' and 'default:non-tcp' are reserved)
//   action: allow | deny | pass (pass: cluster tier only)
//   log: boolean (default false); description: free text
//   direction: ingress | egress | intra, or a list of them (default: all)
//   peer: {cidr, namespace, labels, serviceAccount, service} or a list of such (any of them);
//         inside one peer every given field must match; cidr/namespace/serviceAccount take a
//         string or list; service takes 'namespace/name', {namespace, name} or a list of them, or
//         a bare 'name' when the peer gives `namespace` (then it names that namespace's Service)
//   ports: 80, "8000-8100", or a list of them (the destination port)
//   protocol: one of RULE_PROTOCOLS (connections), or udp / icmp (DATAGRAM_PROTOCOLS)
//   at most one L7 block: the blocks protocol folders add (registry `ruleBlock`; http, grpc, tls,
//         dns, redis, postgres, mysql...); without `protocol` the block implies it.
//
// Where new rule fields go: peer fields in PEER_PROPERTIES, rule fields in RULE_PROPERTIES (or
// CLUSTER_ONLY_PROPERTIES), L7 blocks in their protocol's folder (`ruleBlock`, src/protocols/README.md). What JSON
// Schema cannot say well (duplicate ids, a block that does not fit `protocol`) is checked in
// schema.ts after the schema.

import type { FormatCheck, JsonSchema } from '../schema/validator.js';
import { blockSchema, normalizeLists, oneOrList, str } from '../schema/rule-block.js';

export { blockSchema, normalizeLists, oneOrList };
import { globToRegExpSource, type GlobKind } from './glob.js';
import { parseCidr } from './ip.js';
import type { Tier } from './types.js';
import { ruleBlockFormats, ruleBlockKeys, ruleBlockOf, ruleProtocols } from '../protocols/registry.js';

/**
 * Protocol names a port may be declared to carry (`ports:` in the config): what protocol
 * verification expects there, detected or not.
 */
export const PROTOCOLS: readonly string[] = [...ruleProtocols(), 'kafka', 'mongodb', 'amqp', 'mqtt'];

/**
 * Protocol names a rule may use: only those the sidecar detects (the protocol registry,
 * protocols/registry.ts: client bytes or server greeting), since a rule for a protocol nothing
 * detects would silently never match. 'tcp' matches every connection. The built-in registry's;
 * `ruleProtocols()` also has those registered at run time.
 */
export const RULE_PROTOCOLS: readonly string[] = ruleProtocols();

/**
 * Rule protocols that are not TCP: decided per flow from the first packet (the non-TCP guard).
 * They are not stream protocols, so they are kept apart from PROTOCOLS (which the `ports:`
 * setting also uses).
 */
export const DATAGRAM_PROTOCOLS: readonly string[] = ['udp', 'icmp'];

/** ruleId of the decision for non-TCP traffic no rule matched: always deny (PRODUCT.md "Rules"). */
export const NON_TCP_DEFAULT_ID = 'default:non-tcp';

// Kubernetes name forms (apimachinery validation): DNS-1123 label and subdomain, label key and value.
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
export const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A Service name: an RFC 1035 label (Kubernetes validates Service names so). */
export const SERVICE_NAME = '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$';
export const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';
const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$';

function globCheck(kind: GlobKind): FormatCheck {
  return (s) => {
    const result = globToRegExpSource(kind, s);
    return result.ok ? null : result.message;
  };
}

/** A port range string ("8080", "8000-8100"); numbers are checked by the schema. */
export function portRangeCheck(value: string): string | null {
  const match = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(value);
  if (match === null) return `'${value}' is not a port or port range (write 8080 or "8000-8100")`;
  const from = Number(match[1]);
  const to = match[2] === undefined ? from : Number(match[2]);
  if (from < 1 || from > 65535 || to < 1 || to > 65535) return `'${value}' is outside the port range 1–65535`;
  if (from > to) return `'${value}' is an empty range (${from} > ${to}); write "${to}-${from}"`;
  return null;
}

/** Formats the rule schema names; each check returns the message a user sees. The built-in registry's blocks' formats included (e.g. dns-type). */
export const RULE_FORMATS: Readonly<Record<string, FormatCheck>> = {
  cidr: (s) => {
    const parsed = parseCidr(s.trim());
    return parsed.ok ? null : parsed.message;
  },
  'path-glob': globCheck('path'),
  'name-glob': globCheck('name'),
  'service-glob': globCheck('service'),
  'port-range': portRangeCheck,
  'rule-protocol': (s) => {
    const given = s.toLowerCase();
    const detected = ruleProtocols();
    if (detected.includes(given) || DATAGRAM_PROTOCOLS.includes(given)) return null;
    if (PROTOCOLS.includes(given)) {
      return `'${s}' is not detected by the sidecar, so this rule would never match; use protocol: tcp with the port instead (detected: ${detected.join(', ')})`;
    }
    return `'${s}' is not a known protocol (${[...detected, ...DATAGRAM_PROTOCOLS].join(', ')})`;
  },
  // peer.service as a string: 'namespace/name' or a bare 'name' (the peer's namespace then).
  'service-ref': (ref) => {
    const slash = ref.indexOf('/');
    const name = slash === -1 ? ref : ref.slice(slash + 1);
    const namespace = slash === -1 ? null : ref.slice(0, slash);
    if (!new RegExp(SERVICE_NAME).test(name)) return `'${name}' is not a Service name (lower-case letters, digits and '-', starting with a letter, at most 63)`;
    if (namespace !== null && !new RegExp(DNS_LABEL).test(namespace)) return `'${namespace}' is not a namespace name (lower-case letters, digits and '-', at most 63)`;
    return null;
  },
  'label-key': (key) => {
    const slash = key.lastIndexOf('/');
    const name = slash === -1 ? key : key.slice(slash + 1);
    const prefix = slash === -1 ? null : key.slice(0, slash);
    return LABEL_NAME.test(name) && (prefix === null || new RegExp(DNS_SUBDOMAIN).test(prefix)) ? null : `'${key}' is not a Kubernetes label key`;
  },
  // The formats the registered protocols' rule blocks use (e.g. 'sql-verb').
  ...ruleBlockFormats(),
};

/**
 * Parts the rule schema references as '#/definitions/NAME' instead of repeating them (a peer, a
 * port, a Service): compiled once each, not once per place (the peer alone was 40 % of the
 * generated code). The chart's schema hoists them into its own definitions, so the same refs
 * resolve there.
 */
export const RULE_DEFINITIONS: Record<string, JsonSchema> = {};

function definition(name: string, schema: JsonSchema): JsonSchema {
  RULE_DEFINITIONS[name] = schema;
  return { $ref: `#/definitions/${name}` };
}

/** `labels:` of a peer (and of anything else that selects by Kubernetes labels). */
export const LABELS_SCHEMA: JsonSchema = {
  type: 'object',
  minProperties: 1,
  'x-messages': {
    type: 'must be a non-empty mapping of label to value, not {describe}',
    minProperties: 'must be a non-empty mapping of label to value, not {describe}',
  },
  propertyNames: { type: 'string', format: 'label-key' },
  additionalProperties: str({
    pattern: LABEL_VALUE,
    'x-messages': { pattern: "'{value}' is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')" },
  }),
};

/** The fields of one `peer:` entry. services: add `service` here. */
export const PEER_PROPERTIES: Record<string, JsonSchema> = {
  cidr: oneOrList(str({ format: 'cidr' })),
  namespace: oneOrList(str({
    pattern: DNS_LABEL,
    'x-messages': { pattern: "'{value}' is not a namespace name (lower-case letters, digits and '-', at most 63)" },
  })),
  labels: LABELS_SCHEMA,
  serviceAccount: oneOrList(str({
    pattern: DNS_SUBDOMAIN,
    'x-messages': { pattern: "'{value}' is not a service account name (lower-case letters, digits, '-' and '.')" },
  })),
  // A bare name without the peer's namespace is refused in schema.ts (a Service name is unique
  // only within its namespace: fail closed rather than match any).
  service: oneOrList(definition('rulePeerService', {
    if: { type: 'string' },
    then: { type: 'string', format: 'service-ref' },
    else: {
      type: 'object',
      required: ['namespace', 'name'],
      additionalProperties: false,
      properties: {
        namespace: str({ pattern: DNS_LABEL, 'x-messages': { pattern: "'{value}' is not a namespace name (lower-case letters, digits and '-', at most 63)" } }),
        name: str({ pattern: SERVICE_NAME, 'x-messages': { pattern: "'{value}' is not a Service name (lower-case letters, digits and '-', starting with a letter, at most 63)" } }),
      },
      'x-messages': { type: "must be 'namespace/name' or {namespace, name}, not {describe}", required: "must be 'namespace/name' or {namespace, name}" },
    },
  }), 'is an empty list; give at least one Service or leave the field out'),
};

function peerSchema(): JsonSchema {
  const fields = Object.keys(PEER_PROPERTIES).join(', ');
  const one: JsonSchema = {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: PEER_PROPERTIES,
    'x-messages': {
      type: `must be a mapping with ${fields}, not {describe}`,
      minProperties: `needs at least one of ${fields} (leave peer out to match any peer)`,
    },
  };
  return oneOrList(definition('rulePeer', one), 'is an empty list; leave peer out to match any peer');
}

const PORT: JsonSchema = {
  if: { type: 'number' },
  then: {
    type: 'integer', minimum: 1, maximum: 65535,
    'x-messages': { type: '{value} is not a port (1–65535)', minimum: '{value} is not a port (1–65535)', maximum: '{value} is not a port (1–65535)' },
  },
  else: { type: 'string', format: 'port-range', 'x-messages': { type: 'must be a port number or a range such as "8000-8100", not {describe}' } },
};

/** The fields every rule may have, besides its L7 block. capture, dlp: add yours here. */
export const RULE_PROPERTIES: Record<string, JsonSchema> = {
  id: str({
    pattern: ID_PATTERN,
    not: { enum: ['default', NON_TCP_DEFAULT_ID] },
    'x-messages': {
      required: 'is required (a unique name, reported as ruleId in flow records)',
      pattern: "'{value}' is not a valid id (1–128 letters, digits and . _ : / @ -, starting with a letter or digit)",
      not: `'{value}' is reserved ('default' names the defaultAction, '${NON_TCP_DEFAULT_ID}' non-TCP traffic no rule allows); choose another id`,
    },
  }),
  // action: per tier, see actionSchema.
  log: { type: 'boolean' },
  // The connections this rule decides are captured (pcapng, src/capture).
  capture: { type: 'boolean' },
  description: { type: 'string' },
  direction: oneOrList(str({
    enum: ['ingress', 'egress', 'intra'],
    'x-messages': { enum: "'{value}' is not a direction (ingress, egress, intra)" },
  })),
  peer: peerSchema(),
  ports: oneOrList(definition('rulePort', PORT), 'is an empty list; leave ports out to match any port'),
  protocol: str({ format: 'rule-protocol', 'x-messages': { type: '{describe} is not a known protocol' } }),
  // DLP sensors: a content matcher (non-empty) or DLP off for what the rule decides ([]).
  dlp: {
    type: 'array',
    items: str({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', 'x-messages': { pattern: "'{value}' is not a sensor name (pci-pan, us-ssn, aws-access-key, private-key, jwt, iban, or a name from the config's dlp.patterns)" } }),
    'x-messages': { type: 'must be a list of DLP sensor names (e.g. [pci-pan, us-ssn]), or [] to turn DLP off for the flows this rule decides; not {describe}' },
  },
};

/** Fields only cluster rules may have (the security team's tier). dlp: `appliesTo` goes here. */
export const CLUSTER_ONLY_PROPERTIES: Record<string, JsonSchema> = {
  // The protected pod this rule is in force in (its sidecar compiles it only when it matches).
  appliesTo: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: { namespace: PEER_PROPERTIES.namespace!, labels: LABELS_SCHEMA, serviceAccount: PEER_PROPERTIES.serviceAccount! },
    'x-messages': {
      type: 'must be a mapping with namespace, labels or serviceAccount of the protected pod (e.g. {labels: {pci: "true"}}), not {describe}',
      minProperties: 'needs at least one of namespace, labels, serviceAccount',
    },
  },
};

/** One L7 block: its schema, the rule protocols it combines with, and how it is normalised. */
export interface RuleBlockSpec {
  readonly schema: JsonSchema;
  /** Rule protocols the block may be combined with; the first is implied when `protocol` is absent. */
  readonly protocols: readonly string[];
  /** The block as the compiler reads it (case folded, deduplicated), once it validated. */
  readonly normalize: (block: Record<string, unknown>) => Record<string, unknown>;
}

/**
 * 'any': both tiers in one schema (pass and the cluster-only fields allowed; schema.ts refuses
 * them in workload rules), so a process compiles one rule validator, not two. The chart keeps
 * one schema per tier, for Helm.
 */
export type SchemaTier = Tier | 'any';

function actionSchema(tier: SchemaTier): JsonSchema {
  if (tier === 'any') {
    return { enum: ['allow', 'deny', 'pass'], 'x-messages': { required: 'is required (allow, deny; pass in cluster rules)' } };
  }
  if (tier === 'cluster') return { enum: ['allow', 'deny', 'pass'], 'x-messages': { required: 'is required (allow, deny, pass)' } };
  return {
    'x-messages': { required: 'is required (allow, deny)' },
    if: { const: 'pass' },
    then: { not: {}, 'x-messages': { not: "'pass' is only allowed in cluster rules (it hands over to the workload tier); use allow or deny" } },
    else: { enum: ['allow', 'deny'] },
  };
}

/**
 * Every L7 block a rule may have: those the registered protocols add (`ruleBlock` of
 * src/protocols/<name>/index.ts), in the registry's block order (ruleBlockKeys).
 */
export function ruleBlocks(): Readonly<Record<string, RuleBlockSpec>> {
  const blocks: Record<string, RuleBlockSpec> = {};
  for (const key of ruleBlockKeys()) {
    const plugin = ruleBlockOf(key)!;
    blocks[key] ??= { schema: plugin.schema, protocols: plugin.protocols, normalize: plugin.normalize ?? ((block) => block) };
  }
  return blocks;
}

/** One rule's schema for a tier, with the given L7 blocks. */
export function ruleSchema(tier: SchemaTier, blocks: Readonly<Record<string, RuleBlockSpec>> = ruleBlocks()): JsonSchema {
  const properties: Record<string, JsonSchema> = { id: RULE_PROPERTIES.id!, action: actionSchema(tier) };
  for (const [key, schema] of Object.entries(RULE_PROPERTIES)) properties[key] ??= schema;
  if (tier !== 'workload') Object.assign(properties, CLUSTER_ONLY_PROPERTIES);
  for (const [key, block] of Object.entries(blocks)) properties[key] = block.schema;
  return {
    type: 'object',
    description: `A ${tier === 'any' ? '' : `${tier} `}rule (PRODUCT.md "Rules"); checked in full by \`sidewall policy check\`.`,
    required: ['id', 'action'],
    additionalProperties: false,
    properties,
    'x-messages': { type: 'a rule must be a mapping with id, action and matchers, not {describe}' },
    definitions: { ...RULE_DEFINITIONS },
  };
}
