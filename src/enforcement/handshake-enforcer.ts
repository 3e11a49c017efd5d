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

  constructor(private readonly deps: EnforcerDeps) {}

  onData(_side: Side, _chunk: Buffer, _start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[] {
    if (this.decided) return NONE;
    for (const ev of events) {
      const identity = identify(ev);
      if (identity === null && !(ev.type === 'opaque' && ev.side === 'client')) continue;
      const { ctx, protocol } = this.deps;
      const decision = ctx.policy().decide(requestFacts(ctx.facts, protocol, identity?.facts ?? {}));
      this.decided = true;
      const decide: EnforcerOp = identity === null ? { op: 'decide', decision } : { op: 'decide', decision, l7: identity.record };
      if (decision.action === 'deny') return [decide, { op: 'close', how: 'reset', reason: 'denied' }];
      return [decide, { op: 'done' }];
    }
    return NONE;
  }
}

const NONE: readonly EnforcerOp[] = Object.freeze([]);
