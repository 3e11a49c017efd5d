// The enforcer a protocol gets without writing one: a verdict per message. The protocol's parser
// emits one event per client message covering all its bytes (a `message` event, or its own
// type); `read` turns it into the facts a rule block matches and the fields of its request
// record. An allowed message goes to the server unchanged; a denied one never does, and the
// client gets the protocol's `deny` answer (if any) at once. Server bytes pass as they come.
// Protocols whose denials must fall in order among the server's replies (Redis) write their own
// enforcer (see protocols/redis/redis-enforcer.ts, ordered-replies.ts).
import type { Decision, L7Facts } from '../policy/index.js';
import type { ProtocolEvent, Side } from '../protocols/types.js';
import { requestFacts } from './request-facts.js';
import { NO_OPS, type EnforcerDeps, type EnforcerOp, type L7Record, type RoutingEnforcer } from './types.js';
import { UnitRouter } from './unit-router.js';

export interface MessageReading {
  /** What the rules see, under the protocol's rule block key (`{toy: {verb: 'GET'}}`). */
  facts: L7Facts;
  /** The request record's `l7` fields. */
  record: L7Record;
}

export interface MessageProtocol {
  /** A client message's facts and record fields, or null for events that are not messages. */
  read(ev: ProtocolEvent): MessageReading | null;
  /** What the client gets instead of the server's answer to a denied message. */
  deny?(decision: Decision): Buffer;
}

export function messageEnforcer(protocol: MessageProtocol): (deps: EnforcerDeps) => RoutingEnforcer {
  return (deps) => new MessageEnforcer(deps, protocol);
}

class MessageEnforcer implements RoutingEnforcer {
  readonly kind = 'route';
  private ops: EnforcerOp[] = [];
  private readonly toServer: UnitRouter;

  constructor(
    private readonly deps: EnforcerDeps,
    private readonly protocol: MessageProtocol,
  ) {
    this.toServer = new UnitRouter((bytes) => this.ops.push({ op: 'send', to: 'server', bytes }));
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    if (side === 'server') {
      if (!forwarded) this.ops.push({ op: 'send', to: 'client', bytes: chunk });
    } else {
      this.toServer.push(chunk);
    }
    for (const ev of events) {
      if (ev.side !== 'client') continue;
      const reading = this.protocol.read(ev);
      if (reading === null) continue;
      const { ctx } = this.deps;
      const decision = ctx.policy().decide(requestFacts(ctx.facts, this.deps.protocol, reading.facts));
      const allowed = decision.action === 'allow';
      this.toServer.add(ev.start, ev.end, allowed ? 'forward' : 'drop');
      if (!allowed && this.protocol.deny !== undefined) this.ops.push({ op: 'send', to: 'client', bytes: this.protocol.deny(decision) });
      this.ops.push({ op: 'request', outcome: { protocol: this.deps.protocol, l7: reading.record, decision, durationMs: 0 } });
    }
    this.toServer.pump();
    return this.take();
  }

  flush(): readonly EnforcerOp[] {
    this.toServer.flushAll();
    return this.take();
  }

  finish(): readonly EnforcerOp[] {
    return this.take();
  }

  private take(): readonly EnforcerOp[] {
    if (this.ops.length === 0) return NO_OPS; // most calls: no new array
    const ops = this.ops;
    this.ops = [];
    return ops;
  }
}
