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

/** Rule block keys the registered protocols add, in registry order. */
export function ruleBlockKeys(): string[] {
  return plugins.flatMap((p) => (p.ruleBlock === undefined ? [] : [p.ruleBlock.key]));
}

/** Each registered rule block's JSON Schema fragment, keyed by block key (the rules' schema assembles them). */
export function ruleBlockSchemas(): Record<string, JsonSchema> {
  return Object.fromEntries(plugins.flatMap((p) => (p.ruleBlock === undefined ? [] : [[p.ruleBlock.key, p.ruleBlock.schema]])));
}

/** The string formats the registered rule blocks' schemas use (merged by name). */
export function ruleBlockFormats(): Record<string, (value: string) => string | null> {
  return Object.assign({}, ...plugins.map((p) => p.ruleBlock?.formats ?? {})) as Record<string, (value: string) => string | null>;
}
