// THE list of protocols: one line per protocol folder. Detection, the connection filter, the
// rules' protocol names, protocol verification and the records read it; none of them names a
// protocol. Order matters for detection: on equally strong client-side matches the earlier entry
// wins, a cut (timed-out) prefix goes to the first entry that claims it, and the first greeting
// match decides. See README.md "Adding a protocol".
import { dnsProtocol } from './dns/index.js';
import { http1Protocol } from './http1/index.js';
import { http2Protocol } from './http2/index.js';
import { mysqlProtocol } from './mysql/index.js';
import type { JsonSchema, ProtocolPlugin, RuleBlockPlugin } from './plugin.js';
import { postgresProtocol } from './postgres/index.js';
import { redisProtocol } from './redis/index.js';
import { sshProtocol } from './ssh/index.js';
import { ftpProtocol, imapProtocol, pop3Protocol, smtpProtocol } from './text-greeting/index.js';
import { tlsProtocol } from './tls/index.js';
import type { StreamParser } from './types.js';

const BUILTIN = [
  http2Protocol,
  tlsProtocol,
  sshProtocol,
  postgresProtocol,
  redisProtocol,
  dnsProtocol,
  http1Protocol,
  mysqlProtocol,
  smtpProtocol,
  ftpProtocol,
  pop3Protocol,
  imapProtocol,
] as const;

/** The name of a registered protocol (a rule naming another one does not compile). */
export type ProtocolName = (typeof BUILTIN)[number]['name'];

const plugins: Array<ProtocolPlugin<ProtocolName>> = [...BUILTIN];
/** Changes when a protocol is registered or removed (what is derived from the registry is recomputed). */
let version = 0;

export function registryVersion(): number {
  return version;
}
const byName = new Map<string, ProtocolPlugin<ProtocolName>>(plugins.map((p) => [p.name, p]));

/** Every registered protocol, in registry order. */
export const PROTOCOL_PLUGINS: ReadonlyArray<ProtocolPlugin<ProtocolName>> = plugins;

export function pluginOf(name: string): ProtocolPlugin<ProtocolName> | undefined {
  return byName.get(name);
}

/**
 * Adds a protocol at run time, after the built-in ones (tests: a toy protocol registered only
 * there). Everything reading the registry sees it from then on; rules compiled before do not.
 */
export function registerProtocol(plugin: ProtocolPlugin): void {
  if (byName.has(plugin.name)) throw new TypeError(`protocol ${JSON.stringify(plugin.name)} is registered already`);
  if ((plugin.createParser === undefined) !== (plugin.enforcer === undefined)) {
    throw new TypeError(`protocol ${JSON.stringify(plugin.name)}: a parser needs an enforcer and an enforcer a parser`);
  }
  // Its name is not a ProtocolName at compile time: only the registry's own list is.
  const added = plugin as ProtocolPlugin<ProtocolName>;
  plugins.push(added);
  byName.set(plugin.name, added);
  version++;
}

/** Removes a protocol added by registerProtocol (tests clean up after themselves). */
export function unregisterProtocol(name: string): void {
  if (BUILTIN.some((p) => p.name === name)) throw new TypeError(`protocol ${JSON.stringify(name)} is built in`);
  const i = plugins.findIndex((p) => p.name === name);
  if (i >= 0) plugins.splice(i, 1);
  byName.delete(name);
  version++;
}

/** Protocols that have a parser, in registry order. */
export function parsedProtocols(): ProtocolName[] {
  return plugins.filter((p) => p.createParser !== undefined).map((p) => p.name);
}

/** The parsed protocols of the built-in registry (the conformance suite iterates them). */
export const PARSED_PROTOCOLS: readonly ProtocolName[] = parsedProtocols();

export function hasParser(protocol: string): protocol is ProtocolName {
  return pluginOf(protocol)?.createParser !== undefined;
}

/** A fresh parser for one connection. Throws only for a protocol without a parser (a bug). */
export function createParser(protocol: ProtocolName): StreamParser {
  const make = pluginOf(protocol)?.createParser;
  if (make === undefined) throw new TypeError(`no parser for protocol ${JSON.stringify(protocol)}`);
  return make();
}

/**
 * Protocol names a rule may use: what the sidecar detects (a rule for a protocol nothing detects
 * would silently never match), the protocols they carry (grpc), and 'tcp' for every connection.
 */
export function ruleProtocols(): string[] {
  return ['tcp', ...plugins.flatMap((p) => [p.name, ...(p.ruleProtocols ?? [])])];
}

/** Protocol verification: what detection may report on a port declared `declared`, or undefined when no protocol answers to it. */
export function acceptedOn(declared: string): readonly string[] | undefined {
  for (const p of plugins) {
    const verify = p.verify ?? { [p.name]: [p.name] };
    const accepted = verify[declared];
    if (accepted !== undefined) return accepted;
  }
  return undefined;
}

/** Protocols that may legitimately share a port (HTTP/1.1, h2c and gRPC are one family). */
export function familyOf(protocol: string): string {
  const direct = pluginOf(protocol);
  if (direct !== undefined) return direct.family ?? direct.name;
  const carrier = plugins.find((p) => p.ruleProtocols?.includes(protocol) === true);
  return carrier === undefined ? protocol : (carrier.family ?? carrier.name);
}

/** The protocol that reads records of `protocol` (itself, or the one carrying it: grpc → http2). */
export function pluginForRecord(protocol: string): ProtocolPlugin<ProtocolName> | undefined {
  return pluginOf(protocol) ?? plugins.find((p) => p.ruleProtocols?.includes(protocol) === true);
}

/** The rule block registered under `key` (a protocol's `ruleBlock`), if any. */
export function ruleBlockOf(key: string): RuleBlockPlugin<Record<string, unknown>, unknown> | undefined {
  for (const p of plugins) if (p.ruleBlock?.key === key) return p.ruleBlock as unknown as RuleBlockPlugin<Record<string, unknown>, unknown>;
  return undefined;
}

/**
 * The order of these blocks among a rule's fields (the rule schema's, the order `policy check`
 * reports a rule's issues and blocks in): as it has always been; the other protocols' blocks
 * follow in registry order.
 */
const RULE_BLOCK_ORDER = ['http', 'grpc', 'tls', 'dns'];

/** Rule block keys the registered protocols add (RULE_BLOCK_ORDER first, then registry order). */
export function ruleBlockKeys(): string[] {
  const keys = plugins.flatMap((p) => (p.ruleBlock === undefined ? [] : [p.ruleBlock.key]));
  const rank = (key: string): number => (RULE_BLOCK_ORDER.includes(key) ? RULE_BLOCK_ORDER.indexOf(key) : RULE_BLOCK_ORDER.length);
  return keys.map((key, i) => [key, i] as const).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([key]) => key);
}

/**
 * How a rule's protocol matches a flow's (PRODUCT.md "Rules"): the flow's own protocol, the
 * protocols of the family it names (`http`: HTTP/1, HTTP/2 and gRPC), those a protocol carries
 * (`http2`: gRPC), and a carried protocol on its carrier once the request's facts show it (`grpc`
 * on an HTTP/2 stream that is a gRPC call: `l7.grpc`). Computed from the registry when a rule is
 * compiled.
 */
export function ruleProtocolMatcher(rule: string): (flow: string, l7: Readonly<Record<string, unknown>> | undefined) => boolean {
  const flows = new Set<string>([rule]);
  const carriers = new Set<string>();
  for (const p of plugins) {
    const own = [p.name, ...(p.ruleProtocols ?? [])];
    if ((p.family ?? p.name) === rule || p.name === rule) for (const f of own) flows.add(f);
    if (p.ruleProtocols?.includes(rule) === true) carriers.add(p.name);
  }
  if (carriers.size === 0) return (flow) => flows.has(flow);
  return (flow, l7) => flows.has(flow) || (carriers.has(flow) && l7?.[rule] !== undefined);
}

/**
 * Rule protocols whose content DLP reads (the protocols that scan it, `scansContent`, and those
 * they carry), the family they share first: a rule's `dlp` matcher fits these, and implies the first.
 */
export function contentProtocols(): string[] {
  const scanning = plugins.filter((p) => p.scansContent === true);
  const all = new Set<string>(scanning.map((p) => p.family ?? p.name));
  for (const p of scanning) for (const f of [p.name, ...(p.ruleProtocols ?? [])]) all.add(f);
  return [...all];
}

/** Each registered rule block's JSON Schema fragment, keyed by block key (the rules' schema assembles them). */
export function ruleBlockSchemas(): Record<string, JsonSchema> {
  return Object.fromEntries(plugins.flatMap((p) => (p.ruleBlock === undefined ? [] : [[p.ruleBlock.key, p.ruleBlock.schema]])));
}

/** The string formats the registered rule blocks' schemas use (merged by name). */
export function ruleBlockFormats(): Record<string, (value: string) => string | null> {
  return Object.assign({}, ...plugins.map((p) => p.ruleBlock?.formats ?? {})) as Record<string, (value: string) => string | null>;
}
