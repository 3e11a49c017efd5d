// Drives a TunnelDetection the way the L7 firewall does (src/enforcement): onProtocol when the
// protocol is known, onHttpRequest / onHttpResponse per HTTP/1 head, onPayload for the first
// payloadBudget bytes of each body, in pieces.
import type { ConnectionFacts } from '../../../src/enforcement/types.js';
import type { HeaderList } from '../../../src/protocols/types.js';
import type { TunnelDetection, TunnelFinding, TunnelInspector } from '../../../src/tunnels/index.js';

export function facts(src = '10.0.0.1', dst = '10.0.0.2', port = 80): ConnectionFacts {
  return { direction: 'egress', src: { ip: src, port: 40000 }, dst: { ip: dst, port } };
}

/** Feeds a payload in pieces of `piece` bytes, up to the inspector's budget, like the enforcer. */
export function feed(inspector: TunnelInspector, side: 'client' | 'server', body: Buffer, piece = 1460): TunnelFinding[] {
  const found: TunnelFinding[] = [];
  let left = inspector.payloadBudget;
  for (let at = 0; at < body.length && left > 0; at += piece) {
    const chunk = body.subarray(at, Math.min(body.length, at + piece, at + left));
    left -= chunk.length;
    const f = inspector.onPayload(side, chunk);
    if (f !== null) found.push(f);
  }
  return found;
}

export interface Exchange {
  method?: string;
  path?: string;
  host?: string;
  requestHeaders?: Array<[string, string]>;
  requestBody?: Buffer;
  status?: number;
  responseHeaders?: Array<[string, string]>;
  responseBody?: Buffer;
  piece?: number;
}

/** One HTTP/1.1 request and its response on `inspector`; returns every finding. */
export function exchange(inspector: TunnelInspector, e: Exchange): TunnelFinding[] {
  const found: TunnelFinding[] = [];
  const headers: HeaderList = [['host', e.host ?? 'api.internal'], ...(e.requestHeaders ?? [])];
  const upgrade = headers.find(([n]) => n === 'upgrade')?.[1]?.toLowerCase() ?? null;
  const push = (f: TunnelFinding | null) => f !== null && found.push(f);
  push(inspector.onHttpRequest({ method: e.method ?? 'GET', path: e.path ?? '/', host: e.host ?? 'api.internal', headers, upgrade }));
  if (e.requestBody !== undefined) found.push(...feed(inspector, 'client', e.requestBody, e.piece));
  push(inspector.onHttpResponse({ status: e.status ?? 200, headers: e.responseHeaders ?? [] }));
  if (e.responseBody !== undefined) found.push(...feed(inspector, 'server', e.responseBody, e.piece));
  return found;
}

/** A new HTTP connection: onProtocol('http') with a request line as first bytes. */
export function httpConnection(detection: TunnelDetection, f = facts(), declared: string | undefined = 'http'): { inspector: TunnelInspector; found: TunnelFinding[] } {
  const inspector = detection.forConnection(f, declared);
  const first = inspector.onProtocol('http', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n'), 'client');
  return { inspector, found: first === null ? [] : [first] };
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing corpus case can be replayed. */
export function randomBytes(seed: number, length: number): Buffer {
  let x = seed | 0 || 1;
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** WebSocket frame (RFC 6455 §5.2), masked when `mask` is given (client to server). */
export function wsFrame(payload: Buffer, opcode = 0x2, mask?: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | len]) : Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  if (mask === undefined) return Buffer.concat([head, payload]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i & 3]!;
  return Buffer.concat([head, mask, body]);
}
