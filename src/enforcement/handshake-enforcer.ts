// Protocols decided once, on the message that identifies the session — TLS on its ClientHello
// (SNI, ALPN; never decrypted), SSH on its banner, PostgreSQL on its startup message, Redis on
// its first command — after which the connection passes through unparsed.
import { requestFacts } from './http-facts.js';
import type { L7Facts } from '../policy/index.js';
import type { ProtocolEvent } from '../protocols/types.js';
import type { EnforcerDeps, ProtocolEnforcer } from './enforcers.js';

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

export class HandshakeEnforcer implements ProtocolEnforcer {
  readonly routesBytes = false;
  clientFrontier = 0;
  done = false;

  constructor(
    private readonly deps: EnforcerDeps,
    private readonly protocol: string,
  ) {}

  onEvents(events: readonly ProtocolEvent[]): void {
    if (this.done) return;
    for (const ev of events) {
      const identity = identify(ev);
      if (identity === null && !(ev.type === 'opaque' && ev.side === 'client')) continue;
      const { ctx, filter } = this.deps;
      const decision = ctx.policy().decide(requestFacts(ctx.facts, this.protocol, identity?.facts ?? {}));
      filter.decision = decision;
      filter.l7 = identity?.record ?? null;
      if (decision.action === 'deny') {
        filter.block(decision, 'denied');
        return;
      }
      this.done = true;
      this.clientFrontier = Number.POSITIVE_INFINITY;
      return;
    }
  }

  onBytes(): void {}

  route(): void {}

  finish(): void {}
}
