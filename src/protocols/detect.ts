// Protocol detection from the first bytes of a connection, over the registered protocols
// (registry.ts): each protocol's folder holds its detector (<name>/detect.ts, the spec it reads).
// Client-first protocols are recognised from what the client sends first (`detectClient`),
// server-first ones from the server's greeting (`detectGreeting`).
//
// Bounds: 'more' is answered only while the prefix is a proper prefix of some signature and
// shorter than DETECT_MAX_BYTES (24); the exception is the server greeting of line-based
// protocols (SMTP/FTP need their whole first line, capped at GREETING_MAX_BYTES).
import { MORE, UNKNOWN } from './detect-util.js';
import type { DetectConfidence, Detection } from './plugin.js';
import { PROTOCOL_PLUGINS, pluginOf, type ProtocolName } from './registry.js';
import { GREETING_MAX_BYTES } from './text-greeting/detect.js';

export type { DetectConfidence, Detection } from './plugin.js';
export type DetectedClientProtocol = ProtocolName;
export type DetectedServerProtocol = ProtocolName;
export { GREETING_MAX_BYTES };

/** Detection never asks for more than this many bytes from the client. */
export const DETECT_MAX_BYTES = 24;

function rank(c: DetectConfidence): number {
  return c === 'high' ? 3 : c === 'medium' ? 2 : 1;
}

/**
 * Classify a connection from the first bytes the client sent. `more` means: feed more bytes
 * (never needed beyond DETECT_MAX_BYTES; at that length the answer is match or unknown).
 * Every protocol's detector votes; the strongest match wins (the first registered on a tie).
 */
export function detectClientProtocol(bytes: Buffer): Detection<ProtocolName> {
  if (bytes.length === 0) return MORE;
  let best: Detection<ProtocolName> | null = null;
  let more = false;
  for (const plugin of PROTOCOL_PLUGINS) {
    const v = plugin.detectClient?.(bytes);
    if (v === undefined) continue;
    if (v.kind === 'match') {
      if (best === null || rank(v.confidence) > rank(best.kind === 'match' ? best.confidence : 'low')) best = v;
    } else if (v.kind === 'more') {
      more = true;
    }
  }
  // A high-confidence match wins; a weaker one waits while a stronger signature is still possible.
  if (best !== null && best.kind === 'match' && best.confidence === 'high') return best;
  if (more && bytes.length < DETECT_MAX_BYTES) return MORE;
  return best ?? UNKNOWN;
}

/**
 * Detection timed out (or the client stopped) on bytes that are still a proper prefix: the
 * protocol they can only be the start of, so its parser reads them (and what follows) rather
 * than the flow passing as TCP — a request split as `G`, pause, `ET /admin ...` is HTTP. The
 * first protocol (registry order) whose `detectCut` matches; else the one protocol still
 * possible ('more'); else null: the flow is undetected.
 */
export function detectOnTimeout(bytes: Buffer): ProtocolName | null {
  if (bytes.length === 0) return null;
  const more: ProtocolName[] = [];
  for (const plugin of PROTOCOL_PLUGINS) {
    const cut = plugin.detectCut === undefined ? plugin.detectClient : plugin.detectCut;
    if (cut === undefined || cut === null) continue;
    const v = cut(bytes);
    if (v.kind === 'match') return plugin.name;
    if (v.kind === 'more') more.push(plugin.name);
  }
  return more.length === 1 ? more[0]! : null;
}

/**
 * The protocol whose parser reads what detection did not recognise on a port declared to carry
 * `declared` (`ports:`), or null when no parsed protocol is declared so.
 */
export function declaredParser(declared: string): ProtocolName | null {
  for (const plugin of PROTOCOL_PLUGINS) {
    if (plugin.createParser === undefined) continue;
    if ((plugin.declaredAs ?? [plugin.name]).includes(declared)) return plugin.name;
  }
  return null;
}

/**
 * Classify a server-first protocol from the server's greeting (SSH identification string,
 * MySQL/MariaDB handshake v10, SMTP/FTP `220`, POP3 `+OK`, IMAP `* OK`): the first match.
 */
export function detectServerGreeting(bytes: Buffer): Detection<ProtocolName> {
  if (bytes.length === 0) return MORE;
  let more = false;
  for (const plugin of PROTOCOL_PLUGINS) {
    const v = plugin.detectGreeting?.(bytes);
    if (v === undefined) continue;
    if (v.kind === 'match') return v;
    if (v.kind === 'more') more = true;
  }
  return more && bytes.length < GREETING_MAX_BYTES ? MORE : UNKNOWN;
}

/** Whether a protocol has a parser (then the connection filter inspects it request by request). */
export function isParsed(protocol: string): boolean {
  return pluginOf(protocol)?.createParser !== undefined;
}
