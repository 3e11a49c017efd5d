// ICMP echo tunnels (ptunnel/ptunnel-ng, icmptunnel, hans and the like): data carried in the
// payloads of echo requests and replies between a pair of hosts. Pure: the non-TCP guard hands
// over each echo message of an allowed flow (src/sidecar/non-tcp-guard.ts; every packet of the
// flow is queued, seal-rules.ts) and decides from the finding; this file knows nothing of rules,
// queues or records.
//
// Specs: ICMP echo RFC 792 (type 8/0: identifier, sequence, data echoed back), ICMPv6 echo
// RFC 4443 §4.1-4.2 (type 128/129). The ping payloads that are normal, as senders write them:
//   iputils ping (Linux): a timeval (8 or 16 bytes) then bytes counting up from 0x08/0x10;
//     `-p` fills with up to 16 pattern bytes repeated.
//   BSD/macOS ping: a timeval then counting bytes. busybox ping: a timestamp then zeros.
//   Windows ping: "abcdefghijklmnopqrstuvwabcdefghi" (32 bytes, period 23).
//   Go pro-bing (Telegraf, many exporters): 8-byte time, a 16-byte tracker UUID per pinger,
//     then 0x01 bytes. blackbox_exporter: a constant text. fping/hping3: zeros by default.
//   icmplib (Python): random letters and digits, a new payload per request, constant size.
// So past the first 32 bytes (timestamps, trackers, sequence words) a ping payload repeats with
// a short period or counts up; and one sender keeps one size. A tunnel's payload carries its
// data: not periodic, and its size follows the data (ptunnel-ng's acks are 28 bytes, its data
// packets 28 + up to 1024).
//
// Findings per (requester, responder) pair, both directions' echo payloads counted:
//   ptunnel framing: a 28-byte header whose data_len word equals the bytes that follow and
//     whose state word carries ptunnel's user/proxy flag ................................. 0.9
//     with ptunnel-ng's (0xDEADC0DE) or ptunnel's (0xD5200880) default magic .............. 0.95
//     (the magic is configurable: `-m`; the framing is not). One packet is enough: its first
//     packet names the TCP destination, so under block the proxy never dials it.
//   varying payloads: PATTERNLESS distinct payloads that are not a ping pattern past byte 32,
//     of at least SIZES different sizes, within WINDOW_MS .................................. 0.8
//   volume: VOLUME distinct patternless payloads of one size within WINDOW_MS (a constant-size
//     tunnel; icmplib-style random pings stay far below at one per second) ................ 0.7
// A pair that was found stays flagged for FLAG_MS after its last finding (under block every
// echo message between them is dropped, so a benign ping between the same hosts fails too
// until then: fail closed). State is bounded: PAIRS pairs, least recently seen forgotten.
import { BoundedMap } from './bounded-map.js';
import type { TunnelFinding } from './types.js';

export const WINDOW_MS = 60_000;
export const FLAG_MS = 300_000;
export const PATTERNLESS = 4;
export const SIZES = 3;
export const VOLUME = 120;
const PAIRS = 4096;
/** The bytes a ping may use for timestamps, trackers and counters. */
const HEAD = 32;
/** Fewer bytes than this past HEAD cannot show a pattern (or its absence). */
const MIN_TAIL = 8;
/** Longest period a ping pattern repeats with (Windows: 23; `ping -p`: up to 16). */
const MAX_PERIOD = 32;
/** Bytes of the tail hashed to tell payloads apart. */
const TAIL_HASHED = 64;

const PTUNNEL_HEADER = 28;
/** ptunnel's state word: kUser_flag / kProxy_flag in the top bits, the state (0..4) below. */
const PTUNNEL_FLAGS = 0xc0000000;
const PTUNNEL_MAGICS: ReadonlyMap<number, string> = new Map([
  [0xdeadc0de, "ptunnel-ng's default magic 0xdeadc0de"],
  [0xd5200880, "ptunnel's default magic 0xd5200880"],
]);

export interface EchoMessage {
  /** The host that sends the requests (the reply's destination). */
  requester: string;
  /** The host that answers them. */
  responder: string;
  /** An echo request (type 8 / 128) or a reply (0 / 129). */
  reply: boolean;
  identifier: number;
  /** The echo data as far as it was copied (a view; not kept). */
  payload: Uint8Array;
  /** The echo data's length as the IP header states it. */
  length: number;
}

interface PairState {
  windowStart: number;
  patternless: number;
  distinct: number;
  lastTail: number;
  sizes: number[];
  flaggedUntil: number;
}

export interface EchoVerdict {
  /** A new finding (the pair was not flagged before it): alert on it. */
  finding: TunnelFinding | null;
  /** The pair is flagged now (by this message or an earlier finding). */
  flagged: boolean;
}

/**
 * The pattern a ping payload's bytes follow from `from` on, or null when they follow none: bytes
 * counting up, or a period of up to MAX_PERIOD bytes — repeating what came before `from` (a
 * pattern that began in the head: Windows' letters, `ping -p` after a timeval), or repeating
 * within the tail alone (a pattern that began later).
 */
export function pingPattern(payload: Uint8Array, from: number): string | null {
  const end = payload.length;
  if (end - from < 2) return 'short';
  let counting = true;
  for (let i = from + 1; i < end && counting; i++) if (payload[i] !== ((payload[i - 1]! + 1) & 0xff)) counting = false;
  if (counting) return 'counting bytes';
  for (let p = 1; p <= MAX_PERIOD; p++) {
    const start = p <= from ? from : p;
    let i = start;
    while (i < end && payload[i] === payload[i - p]) i++;
    if (i === end && start < end) return describePeriod(payload, from, p);
    if (2 * p <= end - from) {
      i = from + p;
      while (i < end && payload[i] === payload[i - p]) i++;
      if (i === end) return describePeriod(payload, from, p);
    }
  }
  return null;
}

function describePeriod(payload: Uint8Array, from: number, p: number): string {
  return p === 1 ? `one byte 0x${payload[from]!.toString(16).padStart(2, '0')} repeated` : `a ${p}-byte pattern repeated`;
}

/** ptunnel's framing: magic, dst ip, dst port, state, ack, data_len, seq, id (ptunnel.h, ping_tunnel_pkt_t), then data_len bytes (and one of padding when odd). */
export function ptunnelFraming(payload: Uint8Array, length: number): { magic: number; state: number; dataLength: number } | null {
  if (length < PTUNNEL_HEADER || payload.length < PTUNNEL_HEADER) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const state = view.getUint32(12);
  const dataLength = view.getUint32(20);
  const flags = (state & PTUNNEL_FLAGS) >>> 0;
  // The proxy pads an odd data length with one byte (seen from ptunnel-ng 1.42).
  const padding = length - PTUNNEL_HEADER - dataLength;
  if ((padding !== 0 && padding !== 1) || (flags !== 0x40000000 && flags !== 0x80000000) || (state & ~PTUNNEL_FLAGS) > 8) return null;
  return { magic: view.getUint32(0), state, dataLength };
}

function tailHash(payload: Uint8Array, from: number): number {
  // FNV-1a: only equality matters (the same payload sent again, or echoed back).
  let h = 0x811c9dc5;
  const end = Math.min(payload.length, from + TAIL_HASHED);
  for (let i = from; i < end; i++) h = Math.imul(h ^ payload[i]!, 0x01000193);
  return h >>> 0;
}

export class IcmpTunnelMonitor {
  private readonly pairs = new BoundedMap<string, PairState>(PAIRS);

  /** One echo message of an allowed flow; never throws. */
  onEcho(echo: EchoMessage, now: number): EchoVerdict {
    const key = `${echo.requester}|${echo.responder}`;
    let s = this.pairs.get(key);
    if (s === undefined || now - s.windowStart >= WINDOW_MS) {
      const flaggedUntil = s?.flaggedUntil ?? 0;
      s = { windowStart: now, patternless: 0, distinct: 0, lastTail: -1, sizes: [], flaggedUntil };
      this.pairs.set(key, s);
    }
    const wasFlagged = s.flaggedUntil > now;
    const found = this.inspect(echo, s);
    if (found !== null) s.flaggedUntil = now + FLAG_MS;
    return { finding: found !== null && !wasFlagged ? found : null, flagged: s.flaggedUntil > now };
  }

  private inspect(echo: EchoMessage, s: PairState): TunnelFinding | null {
    const what = `${echo.reply ? 'echo reply' : 'echo request'} ${echo.reply ? `${echo.responder} -> ${echo.requester}` : `${echo.requester} -> ${echo.responder}`} (id ${echo.identifier}, ${echo.length} bytes of data)`;
    const framing = ptunnelFraming(echo.payload, echo.length);
    if (framing !== null) {
      const known = PTUNNEL_MAGICS.get(framing.magic);
      return {
        kind: 'icmp-tunnel',
        evidence: `${what} carries ptunnel framing: magic 0x${framing.magic.toString(16).padStart(8, '0')}${known !== undefined ? ` (${known})` : ''}, state 0x${framing.state.toString(16)}, data_len ${framing.dataLength} = the bytes after its 28-byte header`,
        confidence: known !== undefined ? 0.95 : 0.9,
        expected: 'ping',
        detected: 'ptunnel',
      };
    }
    if (echo.payload.length < HEAD + MIN_TAIL || pingPattern(echo.payload, HEAD) !== null) return null;
    s.patternless++;
    const tail = tailHash(echo.payload, HEAD);
    if (tail !== s.lastTail) s.distinct++;
    s.lastTail = tail;
    if (s.sizes.length < SIZES && !s.sizes.includes(echo.length)) s.sizes.push(echo.length);
    const varying = s.distinct >= PATTERNLESS && s.sizes.length >= SIZES;
    if (!varying && s.distinct < VOLUME) return null;
    const head = Buffer.from(echo.payload.buffer, echo.payload.byteOffset + HEAD, Math.min(16, echo.payload.length - HEAD)).toString('hex');
    return {
      kind: 'icmp-tunnel',
      evidence: varying
        ? `${s.distinct} distinct echo payloads between ${echo.requester} and ${echo.responder} within ${WINDOW_MS / 1000} s follow no ping pattern past byte ${HEAD}, in ${s.sizes.length}+ sizes (${s.sizes.join(', ')}): data, not pings; last: ${what}, bytes ${HEAD}.. ${head}`
        : `${s.distinct} distinct echo payloads of one size between ${echo.requester} and ${echo.responder} within ${WINDOW_MS / 1000} s follow no ping pattern past byte ${HEAD}: a constant-size data stream; last: ${what}, bytes ${HEAD}.. ${head}`,
      confidence: varying ? 0.8 : 0.7,
      expected: 'ping',
      detected: 'icmp-data',
    };
  }
}
