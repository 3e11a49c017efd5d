// Protocols decided once, on the message that identifies the session — TLS on its ClientHello
// (SNI, ALPN; never decrypted), SSH on its banner, PostgreSQL on its startup message, Redis on
// its first command — after which the connection passes through unparsed.
import { requestFacts } from './http-facts.js';
import type { L7Facts } from '../policy/index.js';
import type { ProtocolEvent, Side } from '../protocols/types.js';
import type { EnforcerDeps, EnforcerOp, StreamingEnforcer } from './types.js';

const TLS_VERSIONS: Record<number, string> = { 0x0301: 'TLS1.0', 0x0302: 'TLS1.1', 0x0303: 'TLS1.2', 0x0304: 'TLS1.3' };

/** The identifying event of a session, as L7 facts for the rules and fields for the record. */
function identify(ev: ProtocolEvent): { facts: L7Facts; record: Record<string, unknown> } | null {
  switch (ev.type) {
    case 'tls.client-hello': {
      const version = Math.max(ev.legacyVersion, ...ev.supportedVersions.filter((v) => v in TLS_VERSIONS));
      const record: Record<string, unknown> = { alpn: [...ev.alpn], version: TLS_VERSIONS[version] ?? `0x${version.toString(16)}` };
      if (ev.sni !== null) record.sni = ev.sni;
      const tls: NonNullable<L7Facts['tls']> = { alpn: [...ev.alpn] };
      if (ev.sni !== null) tls.sni = ev.sni;
      return { facts: { tls }, record };
    }
    case 'ssh.banner':
      return ev.side === 'client' ? { facts: {}, record: { banner: `SSH-${ev.protoVersion}-${ev.softwareVersion}` } } : null;
    case 'postgres.startup':
      return { facts: {}, record: { kind: ev.kind, ...(ev.user !== null ? { user: ev.user } : {}), ...(ev.database !== null ? { database: ev.database } : {}) } };
    case 'redis.command':
      return { facts: {}, record: { command: ev.command } };
    default:
      return null;
  }
}

export class HandshakeEnforcer implements StreamingEnforcer {
  readonly kind = 'stream';
  private decided = false;
  /**
   * TLS with tunnel detection on: the encrypted records after the hellos go to the inspector
   * (SSH inside TLS, tunnels/tls-shape.ts) for a few records, each client chunk held until it has
   * looked; `opaqueAt` is where each side's encrypted part starts (the parser's `opaque` event).
   */
  private watching = false;
  private readonly opaqueAt = { client: Number.POSITIVE_INFINITY, server: Number.POSITIVE_INFINITY };

  constructor(private readonly deps: EnforcerDeps) {}

  onData(side: Side, chunk: Buffer, start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[] {
    const tunnels = this.deps.ctx.tunnels;
    for (const ev of events) {
      if (tunnels === null) break;
      if (ev.type === 'tls.client-hello') {
        tunnels.onTlsHello(ev);
        this.watching = true;
      } else if (ev.type === 'tls.server-hello' && !ev.helloRetryRequest) tunnels.onTlsServerHello(ev.version, ev.cipherSuite);
      else if (ev.type === 'opaque') this.opaqueAt[ev.side] = ev.start;
    }
    if (this.decided) return this.watch(side, chunk, start);
    for (const ev of events) {
      const identity = identify(ev);
      if (identity === null && !(ev.type === 'opaque' && ev.side === 'client')) continue;
      const { ctx, protocol } = this.deps;
      const decision = ctx.policy().decide(requestFacts(ctx.facts, protocol, identity?.facts ?? {}));
      this.decided = true;
      const decide: EnforcerOp = identity === null ? { op: 'decide', decision } : { op: 'decide', decision, l7: identity.record };
      if (decision.action === 'deny') return [decide, { op: 'close', how: 'reset', reason: 'denied' }];
      if (!this.watching) return [decide, { op: 'done' }];
      return [decide, ...this.watch(side, chunk, start)];
    }
    return NONE;
  }

  private watch(side: Side, chunk: Buffer, start: number): readonly EnforcerOp[] {
    const tunnels = this.deps.ctx.tunnels;
    if (!this.watching || tunnels === null) return DONE;
    const from = this.opaqueAt[side] - start;
    const finding = from < chunk.length ? tunnels.onTlsBytes(side, from <= 0 ? chunk : chunk.subarray(from)) : null;
    const ops: EnforcerOp[] = [];
    if (finding !== null) ops.push({ op: 'tunnel', finding });
    if (!tunnels.tlsWatching) {
      this.watching = false;
      ops.push({ op: 'done' });
    } else if (side === 'client') ops.push({ op: 'pass', upTo: start + chunk.length });
    return ops;
  }
}

const DONE: readonly EnforcerOp[] = Object.freeze([{ op: 'done' }]);

const NONE: readonly EnforcerOp[] = Object.freeze([]);
