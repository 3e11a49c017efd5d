// DNS over TCP (RFC 7766) enforcement: a verdict per query message (dns-decisions.ts, shared
// with the UDP listener). An allowed query goes to the server unchanged; a denied one is dropped
// and answered REFUSED (RFC 1035 RCODE 5) between the server's own messages. An answer whose
// CNAME/DNAME target the rules deny is replaced by REFUSED.
import { answerFinding, checkAnswer, decideQuery } from './dns-decisions.js';
import type { Decision } from '../../policy/index.js';
import { buildRefused } from './dns-message.js';
import type { ProtocolEvent, Side } from '../types.js';
import { NO_OPS, type EnforcerDeps, type EnforcerOp, type RoutingEnforcer } from '../../enforcement/types.js';
import { UnitRouter } from '../../enforcement/unit-router.js';

interface PendingQuery {
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
}

export class DnsStreamEnforcer implements RoutingEnforcer {
  readonly kind = 'route';
  private readonly toServer: UnitRouter;
  private readonly toClient: UnitRouter;
  private readonly pending = new Map<number, PendingQuery>();
  /** The operations of the call in progress (the routers write into it). */
  private ops: EnforcerOp[] = [];

  constructor(private readonly deps: EnforcerDeps) {
    this.toServer = new UnitRouter((bytes) => this.ops.push({ op: 'send', to: 'server', bytes }));
    this.toClient = new UnitRouter((bytes) => this.ops.push({ op: 'send', to: 'client', bytes }));
  }

  /** Hands over the operations collected so far. */
  private take(): readonly EnforcerOp[] {
    if (this.ops.length === 0) return NO_OPS; // most calls: no new array
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    this.routeUnits(side, chunk, events, forwarded);
    return this.take();
  }

  private routeUnits(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded: boolean): void {
    const router = side === 'client' ? this.toServer : this.toClient;
    if (!forwarded) router.push(chunk);
    for (const ev of events) {
      if (ev.type !== 'dns.message') continue;
      const m = ev.message;
      const { ctx } = this.deps;
      const dnsCtx = { policy: ctx.policy, monitor: ctx.dnsMonitor, tunnelMode: ctx.tunnelMode };
      if (ev.side === 'server') {
        const finding = answerFinding(dnsCtx, ctx.facts, m);
        if (finding !== null) this.ops.push({ op: 'tunnel', finding });
        const q = this.pending.get(m.id);
        // An answer whose CNAME/DNAME leads to a name the rules deny is not delivered.
        const alias = checkAnswer(dnsCtx, ctx.facts, m, m.qtype);
        if (alias !== null && alias.decision.action === 'deny') {
          this.toClient.add(ev.start, ev.end, 'drop');
          const refused = buildRefused(this.toClient.peek(ev.start + 2, ev.end));
          this.toClient.inject(Buffer.concat([lengthPrefix(refused.length), refused]), ev.start);
        } else {
          this.toClient.add(ev.start, ev.end, 'forward');
        }
        if (q !== undefined) {
          this.pending.delete(m.id);
          q.l7.rcode = alias !== null && alias.decision.action === 'deny' ? 'REFUSED' : m.rcodeName;
          q.l7.answers = m.answerCount;
          if (alias !== null) q.l7.deniedAlias = alias.alias;
          this.ops.push({ op: 'request', outcome: { protocol: 'dns', l7: q.l7, decision: alias?.decision ?? q.decision, durationMs: performance.now() - q.startedAt } });
        }
        continue;
      }
      const verdict = decideQuery(dnsCtx, ctx.facts, m);
      if (verdict.finding !== null) {
        this.ops.push({ op: 'tunnel', finding: verdict.finding });
        if (this.deps.tunnelBlocks(verdict.finding)) return;
      }
      const decision = verdict.decision;
      const l7: Record<string, unknown> = { name: m.qname, type: m.qtype };
      if (decision.action === 'allow') {
        this.toServer.add(ev.start, ev.end, 'forward');
        this.pending.set(m.id, { l7, decision, startedAt: performance.now() });
        continue;
      }
      this.toServer.add(ev.start, ev.end, 'drop');
      const refused = buildRefused(this.toServer.peek(ev.start + 2, ev.end));
      this.toClient.inject(Buffer.concat([lengthPrefix(refused.length), refused]));
      l7.rcode = 'REFUSED';
      this.ops.push({ op: 'request', outcome: { protocol: 'dns', l7, decision, durationMs: 0 } });
    }
    if (forwarded) router.skip(chunk.length);
    this.toServer.pump();
    this.toClient.pump();
  }

  flush(): readonly EnforcerOp[] {
    this.toServer.flushAll();
    this.toClient.flushAll();
    return this.take();
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const q of this.pending.values()) {
      this.ops.push({ op: 'request', outcome: { protocol: 'dns', l7: q.l7, decision: q.decision, durationMs: performance.now() - q.startedAt, reason: reason === 'fin' ? 'no-response' : reason } });
    }
    this.pending.clear();
    return this.take();
  }
}

function lengthPrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}
