// HTTP used as a carrier (httptunnel's htc/hts, and the like): requests and responses whose
// bodies are opaque byte streams in both directions between one client and one server,
// often with no content type or a content type the bytes contradict, repeated or long-lived.
//
// Per body, the first bytes (the inspector's payload budget) are classified: opaque (bytes
// that never occur in text, or entropy close to the sample's maximum) or text. Per client and
// server (across connections: httptunnel sends upstream in a POST and downstream in a GET on
// another connection), opaque bodies are tallied over a window and scored:
//   opaque bodies both ways ............................. required, +1
//   a body whose bytes contradict its declared type ...... +2 (text/html carrying binary)
//   an opaque request body with no content type .......... +1
//   an opaque response body with no content type ......... +1
//   CARRIER_RAPID or more requests in the window ......... +1
// A score of 3 or more is a carrier; the pair stays flagged for CARRIER_FLAG_MS, during which
// every request between them (and any opaque body) is a finding too.
//
// httptunnel (htc/hts) is also recognised by itself, earlier: the scoring needs an opaque body
// both ways, and hts's first response chunk would reach htc before it could decide. htc opens
// its two connections with fixed shapes (httptunnel 3.3, tunnel.c, seen on the wire from
// Debian's htc): `GET /index.html?crap=<number>` and `POST /index.html?crap=<number>` with
// `Content-Length: 102400` and no content type, whose body begins with the TUNNEL_OPEN frame
// (type 0x01, a 16-bit length, the auth data) and goes on in TUNNEL_* frames (0x02 DATA,
// 0x03 PADDING, 0x04 ERROR, 0x45 PAD1, 0x46 CLOSE, 0x47 DISCONNECT). Either request's target
// flags the pair at its head (before it reaches hts); a POST body without a content type that
// opens with a TUNNEL_OPEN frame flags it at its first bytes, whatever the target.
import type { HeaderList } from '../protocols/types.js';
import { BoundedMap } from './bounded-map.js';
import type { PayloadWindow } from './payload-window.js';
import type { TunnelFinding } from './types.js';

export type DeclaredKind = 'text' | 'binary' | 'absent' | 'encoded';

export interface BodyDeclaration {
  kind: DeclaredKind;
  /** Media type without parameters, lower case; null when absent. */
  contentType: string | null;
  /** Content-Encoding when not identity, lower case. */
  encoding: string | null;
}

const TEXT_TYPES = new Set([
  'application/json', 'application/xml', 'application/javascript', 'application/ecmascript',
  'application/x-www-form-urlencoded', 'application/x-ndjson', 'application/graphql',
  'application/yaml', 'application/x-yaml', 'application/ld+json', 'application/problem+json',
]);

function header(headers: HeaderList, name: string): string | null {
  for (const [n, v] of headers) if (n === name) return v;
  return null;
}

export function declaredBody(headers: HeaderList): BodyDeclaration {
  const rawType = header(headers, 'content-type');
  const contentType = rawType === null ? null : (rawType.split(';', 1)[0] ?? '').trim().toLowerCase();
  const rawEncoding = header(headers, 'content-encoding');
  const encoding = rawEncoding === null || rawEncoding.trim().toLowerCase() === 'identity' ? null : rawEncoding.trim().toLowerCase();
  if (encoding !== null) return { kind: 'encoded', contentType, encoding };
  if (contentType === null || contentType === '') return { kind: 'absent', contentType: null, encoding };
  // UTF-16/32 text has NUL bytes by nature.
  const wide = rawType !== null && /charset\s*=\s*"?utf-?(16|32)/i.test(rawType);
  const text = !wide && (contentType.startsWith('text/') || TEXT_TYPES.has(contentType) || contentType.endsWith('+json') || contentType.endsWith('+xml'));
  return { kind: text ? 'text' : 'binary', contentType, encoding };
}

export type BodyClass = 'opaque' | 'text' | 'pending';

/** Minimum sample before entropy is trusted (sample entropy of fewer bytes is too noisy). */
const ENTROPY_MIN_BYTES = 128;
/** Relative entropy at or above which bytes look random: compressed or encrypted. */
const OPAQUE_ENTROPY_RATIO = 0.88;

/** Classifies the first bytes of a body; `final` when the body (or the budget) has ended. */
export function classifyBody(window: PayloadWindow, final: boolean): BodyClass {
  if (window.binaryBytes >= 2) return 'opaque';
  if (window.length >= ENTROPY_MIN_BYTES && window.entropyRatio() >= OPAQUE_ENTROPY_RATIO) return 'opaque';
  return final || window.full ? 'text' : 'pending';
}

/** Magic numbers of the content codings that have one (RFC 1952 gzip, RFC 1950 zlib, RFC 8878 zstd). */
function encodingMatches(encoding: string, bytes: Buffer): boolean {
  if (bytes.length < 2) return true;
  if (encoding === 'gzip' || encoding === 'x-gzip') return bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (encoding === 'deflate') return (bytes[0]! & 0x0f) === 8 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0;
  if (encoding === 'zstd') return bytes.length < 4 || bytes.readUInt32LE(0) === 0xfd2fb528;
  return true; // br and others: no magic number
}

/** Does the opaque body contradict what its headers say it is? Returns why, or null. */
export function contradiction(declared: BodyDeclaration, window: PayloadWindow): string | null {
  if (declared.kind === 'text') return `declared ${declared.contentType} but carries ${window.binaryBytes >= 2 ? `${window.binaryBytes} binary bytes` : `random-looking bytes (entropy ${window.entropy().toFixed(2)} bits/byte)`}`;
  if (declared.kind === 'encoded' && declared.encoding !== null && !encodingMatches(declared.encoding, window.bytes)) return `declared content-encoding ${declared.encoding} but does not start like it`;
  return null;
}

export interface BodyObservation {
  side: 'client' | 'server';
  declared: BodyDeclaration;
  /** Why it contradicts its declaration, if it does. */
  contradiction: string | null;
  /** For evidence: "request body of POST /x" / "response body to GET /x". */
  what: string;
  window: PayloadWindow;
}

interface PairState {
  since: number;
  requests: number;
  up: number;
  down: number;
  upUntyped: number;
  downUntyped: number;
  contradictions: number;
  evidence: string[];
  flaggedUntil: number;
  flaggedScore: number;
  flaggedEvidence: string;
}

export const CARRIER_WINDOW_MS = 120_000;
export const CARRIER_FLAG_MS = 300_000;
export const CARRIER_RAPID = 30;
export const CARRIER_SCORE = 3;

function describe(obs: BodyObservation): string {
  const w = obs.window;
  const type = obs.declared.contentType === null ? 'no content-type' : obs.declared.contentType;
  const why = obs.contradiction ?? `${w.binaryBytes} binary bytes, entropy ${w.entropy().toFixed(2)} bits/byte`;
  return `${obs.what} (${type}): ${why}, begins ${w.hexHead()}`;
}

/** htc's request target: `"/index.html?crap=%ld"` (tunnel.c), fixed in the tool. */
const HTTPTUNNEL_TARGET = /^\/index\.html\?crap=\d{1,20}$/;

/** Is this htc's request (its fixed target on a GET or POST)? */
export function httptunnelRequest(method: string, path: string): boolean {
  return (method === 'GET' || method === 'POST') && HTTPTUNNEL_TARGET.test(path);
}

/** httptunnel frame types that may follow TUNNEL_OPEN (tunnel.c). */
const HTTPTUNNEL_NEXT = new Set([0x02, 0x03, 0x04, 0x45, 0x46, 0x47]);
/** htc's auth data is a few bytes; a longer TUNNEL_OPEN is not worth the guess. */
const HTTPTUNNEL_OPEN_MAX = 255;

/**
 * Does an untyped request body begin with httptunnel's TUNNEL_OPEN frame? 'more' while the
 * frame (and the type byte after it, when more bytes came) is not all in.
 */
export function httptunnelOpen(body: Buffer, final: boolean): boolean | 'more' {
  if (body.length === 0) return final ? false : 'more';
  if (body[0] !== 0x01) return false;
  if (body.length < 3) return final ? false : 'more';
  const length = body.readUInt16BE(1);
  if (length > HTTPTUNNEL_OPEN_MAX) return false;
  if (body.length < 3 + length) return final ? false : 'more';
  // The frame alone (htc waits for the app before its first DATA): 0x01 + length + data is
  // already three binary bytes at the start of an untyped POST body; a following byte must be
  // another frame type.
  return body.length === 3 + length || HTTPTUNNEL_NEXT.has(body[3 + length]!);
}

/** Carrier pattern per client→server pair, across connections; bounded. */
export class CarrierTracker {
  private readonly pairs: BoundedMap<string, PairState>;

  constructor(private readonly now: () => number, capacity = 2048) {
    this.pairs = new BoundedMap(capacity);
  }

  private state(key: string): PairState {
    const now = this.now();
    let s = this.pairs.get(key);
    if (s === undefined) {
      s = { since: now, requests: 0, up: 0, down: 0, upUntyped: 0, downUntyped: 0, contradictions: 0, evidence: [], flaggedUntil: 0, flaggedScore: 0, flaggedEvidence: '' };
      this.pairs.set(key, s);
    } else if (now - s.since > CARRIER_WINDOW_MS) {
      Object.assign(s, { since: now, requests: 0, up: 0, down: 0, upUntyped: 0, downUntyped: 0, contradictions: 0, evidence: [] });
    }
    return s;
  }

  /**
   * Counts a request; when the pair is flagged, the request itself is a finding (before its
   * body or its response moves a byte), so a blocking sidecar refuses the tunnel's reconnects.
   */
  noteRequest(key: string, request: string): TunnelFinding | null {
    const s = this.state(key);
    s.requests++;
    if (this.now() >= s.flaggedUntil) return null;
    return { kind: 'http-carrier', evidence: `${key} was found carrying opaque streams over HTTP (${s.flaggedEvidence}); new request ${request}`, confidence: confidence(s.flaggedScore), expected: 'http', detected: 'opaque stream' };
  }

  /**
   * The pair was recognised from one request (a carrier tool's own request shape): flagged at
   * once, as a score would have flagged it.
   */
  flag(key: string, evidence: string, score: number): TunnelFinding {
    const s = this.state(key);
    s.flaggedUntil = this.now() + CARRIER_FLAG_MS;
    s.flaggedScore = score;
    s.flaggedEvidence = evidence.length > 300 ? `${evidence.slice(0, 297)}...` : evidence;
    return { kind: 'http-carrier', evidence: `${key}: ${evidence}`, confidence: confidence(score), expected: 'http', detected: 'httptunnel' };
  }

  /** An opaque body between the pair; a finding when the pair now looks like a carrier. */
  observe(key: string, obs: BodyObservation): TunnelFinding | null {
    const s = this.state(key);
    const now = this.now();
    const line = describe(obs);
    if (obs.side === 'client') {
      s.up++;
      if (obs.declared.kind === 'absent') s.upUntyped++;
    } else {
      s.down++;
      if (obs.declared.kind === 'absent') s.downUntyped++;
    }
    if (obs.contradiction !== null) s.contradictions++;
    if (s.evidence.length < 3) s.evidence.push(line);
    if (now < s.flaggedUntil) {
      return { kind: 'http-carrier', evidence: `${key} was found carrying opaque streams over HTTP; again: ${line}`, confidence: confidence(s.flaggedScore), expected: 'http', detected: 'opaque stream' };
    }
    if (s.up === 0 || s.down === 0) return null;
    const score = 1 + (s.contradictions > 0 ? 2 : 0) + (s.upUntyped > 0 ? 1 : 0) + (s.downUntyped > 0 ? 1 : 0) + (s.requests >= CARRIER_RAPID ? 1 : 0);
    if (score < CARRIER_SCORE) return null;
    s.flaggedUntil = now + CARRIER_FLAG_MS;
    s.flaggedScore = score;
    const evidence = `${key}: opaque bodies both ways (${s.up} up, ${s.down} down, ${s.requests} requests in ${Math.round((now - s.since) / 1000)} s, score ${score}): ${s.evidence.join('; ')}`;
    s.flaggedEvidence = evidence.length > 300 ? `${evidence.slice(0, 297)}...` : evidence;
    return { kind: 'http-carrier', evidence, confidence: confidence(score), expected: 'http', detected: 'opaque stream' };
  }
}

function confidence(score: number): number {
  return Math.min(0.95, 0.5 + 0.1 * score);
}
