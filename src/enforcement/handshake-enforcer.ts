// Protocols decided once, on the message that identifies the session — TLS on its ClientHello
// (SNI, ALPN; never decrypted), SSH on its banner, PostgreSQL on its startup message — after
// which the connection passes through unparsed. Each protocol says what identifies it
// (`identify`, in its folder); this enforcer knows none of them.
import { requestFacts } from './request-facts.js';
import type { L7Facts } from '../policy/index.js';
import type { ProtocolEvent, Side } from '../protocols/types.js';
import { NO_OPS, type EnforcerDeps, type EnforcerOp, type L7Record, type StreamingEnforcer } from './types.js';

/** The identifying event of a session, as L7 facts for the rules and fields for the record. */
export type SessionIdentity = { facts: L7Facts; record: L7Record };

/** A protocol's reading of its identifying event (its folder's index.ts), null for other events. */
export type IdentifySession = (ev: ProtocolEvent) => SessionIdentity | null;

/** The enforcer of a protocol decided once, on the event `identify` recognises. */
export function sessionEnforcer(identify: IdentifySession): (deps: EnforcerDeps) => StreamingEnforcer {
  return (deps) => new HandshakeEnforcer(deps, identify);
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
  /**
   * The answer to a watched client chunk without a finding (every chunk while the watcher looks):
   * one op and one array per connection, its `upTo` set per call, not two objects per chunk. Safe
   * to reuse: the filter applies a call's ops before it feeds the next chunk.
   */
  private readonly passOp: { op: 'pass'; upTo: number } = { op: 'pass', upTo: 0 };
  private readonly passOnly: readonly EnforcerOp[] = [this.passOp];

  constructor(
    private readonly deps: EnforcerDeps,
    private readonly identify: IdentifySession,
  ) {}

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
      const identity = this.identify(ev);
      if (identity === null && !(ev.type === 'opaque' && ev.side === 'client')) continue;
      const { ctx, protocol } = this.deps;
      const decision = ctx.policy().decide(requestFacts(ctx.facts, protocol, identity?.facts ?? {}));
      this.decided = true;
      const decide: EnforcerOp = identity === null ? { op: 'decide', decision } : { op: 'decide', decision, l7: identity.record };
      if (decision.action === 'deny') return [decide, { op: 'close', how: 'reset', reason: 'denied' }];
      if (!this.watching) return [decide, { op: 'done' }];
      return [decide, ...this.watch(side, chunk, start)];
    }
    return NO_OPS;
  }

  private watch(side: Side, chunk: Buffer, start: number): readonly EnforcerOp[] {
    const tunnels = this.deps.ctx.tunnels;
    if (!this.watching || tunnels === null) return DONE;
    const from = this.opaqueAt[side] - start;
    const finding = from < chunk.length ? tunnels.onTlsBytes(side, from <= 0 ? chunk : chunk.subarray(from)) : null;
    if (finding === null && tunnels.tlsWatching) {
      if (side !== 'client') return NO_OPS;
      this.passOp.upTo = start + chunk.length;
      return this.passOnly;
    }
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

