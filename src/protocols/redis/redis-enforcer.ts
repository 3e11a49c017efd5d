// Redis enforcement: a verdict per command (rule block `redis: {commands, keys}`). An allowed
// command goes to the server; a denied one never does, and the client gets
// `-ERR denied by sidewall (rule <id>)` in its place among the pipelined replies, and the
// connection goes on. Inside MULTI a denied command poisons the transaction as a refused command
// does in redis-server: its EXEC is replaced by DISCARD and answered -EXECABORT, so the commands
// queued with it never run.
import type { Decision } from '../../policy/index.js';
import type { ProtocolEvent, RedisCommandEvent, Side } from '../types.js';
import type { EnforcerDeps, EnforcerOp, RoutingEnforcer } from '../../enforcement/types.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { ClientGate, OpCollector, ReplyOrder } from '../../enforcement/ordered-replies.js';

interface Pending {
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
}

const DISCARD = Buffer.from('*1\r\n$7\r\nDISCARD\r\n');
const EXECABORT = Buffer.from('-EXECABORT Transaction discarded because of previous errors.\r\n');
/** After these (allowed) the server's replies no longer pair one to one with commands. */
const UNPAIRED = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'MONITOR']);

export function redisDenial(ruleId: string): Buffer {
  // A simple error may not contain CR or LF; rule ids cannot (schema ID_PATTERN).
  return Buffer.from(`-ERR denied by sidewall (rule ${ruleId})\r\n`);
}

export class RedisEnforcer implements RoutingEnforcer {
  readonly kind = 'route';
  private readonly out = new OpCollector();
  private readonly gate: ClientGate;
  private readonly order: ReplyOrder<Pending>;
  private inMulti = false;
  /** A command queued in this MULTI was denied. */
  private poisoned = false;

  constructor(private readonly deps: EnforcerDeps) {
    this.gate = new ClientGate(this.out.toServer);
    this.order = new ReplyOrder(this.out.toClient);
  }

  get idle(): boolean {
    return this.gate.idle && this.order.outstanding === 0;
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    this.routeUnits(side, chunk, events, forwarded);
    return this.out.take();
  }

  private routeUnits(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded: boolean): void {
    if (side === 'server') {
      const replies: Array<{ end: number; push: boolean; error: string | null; kind: string }> = [];
      for (const ev of events) if (ev.type === 'redis.reply') replies.push(ev);
      if (forwarded) return; // nothing was asked yet: a server that spoke first is not Redis anyway
      let i = 0;
      this.order.route(chunk, replies, (p) => {
        const r = replies[i++]!;
        if (p === null) return;
        p.l7.reply = r.kind;
        if (r.error !== null) p.l7.error = r.error;
        this.out.request({ protocol: 'redis', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt });
      });
      return;
    }
    this.gate.push(chunk);
    for (const ev of events) {
      if (ev.type === 'redis.command') this.onCommand(ev);
      else if (ev.type === 'redis.command-end') this.gate.close(ev.start, ev.end);
    }
    this.gate.pump();
  }

  private onCommand(ev: RedisCommandEvent): void {
    const { ctx } = this.deps;
    const decision = ctx.policy().decide(requestFacts(ctx.facts, 'redis', { redis: { command: ev.command, keys: ev.keys } }));
    const l7: Record<string, unknown> = { command: ev.command };
    if (ev.subcommand !== null) l7.subcommand = ev.subcommand;
    if (ev.keys !== null && ev.keys.length > 0) l7.keys = ev.keys.slice(0, 16);
    if (ev.inline) l7.inline = true;
    const isExec = ev.command === 'EXEC';
    if (this.inMulti && (isExec || ev.command === 'DISCARD')) {
      // Whatever the verdict, the transaction ends: a denied or poisoned EXEC becomes DISCARD.
      this.inMulti = false;
      const poisoned = this.poisoned;
      this.poisoned = false;
      if (isExec && (poisoned || decision.action === 'deny')) {
        this.gate.decide(ev.start, 'drop', DISCARD);
        l7.aborted = true;
        this.order.expect({ l7, decision, startedAt: performance.now() }, decision.action === 'deny' ? redisDenial(decision.ruleId) : EXECABORT);
        if (this.order.unordered) this.out.request({ protocol: 'redis', l7, decision, durationMs: 0 });
        return;
      }
    }
    if (decision.action === 'deny') {
      this.gate.decide(ev.start, 'drop');
      if (this.inMulti) this.poisoned = true;
      this.order.answer(redisDenial(decision.ruleId));
      this.out.request({ protocol: 'redis', l7, decision, durationMs: 0 });
      return;
    }
    this.gate.decide(ev.start, 'forward');
    if (ev.command === 'MULTI') this.inMulti = true;
    if (UNPAIRED.has(ev.command) || (ev.command === 'CLIENT' && ev.subcommand === 'REPLY')) {
      this.order.goUnordered();
    }
    if (this.order.unordered) {
      this.out.request({ protocol: 'redis', l7, decision, durationMs: 0 });
      return;
    }
    this.order.expect({ l7, decision, startedAt: performance.now() });
  }

  flush(): readonly EnforcerOp[] {
    this.gate.flushAll();
    this.order.flushAll();
    return this.out.take();
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const p of this.order.drain()) {
      this.out.request({ protocol: 'redis', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt, reason: reason === 'fin' ? 'no-response' : reason });
    }
    return this.out.take();
  }
}
