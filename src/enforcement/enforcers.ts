// The one per-protocol switch of the enforcement layer: which enforcer turns a protocol's parser
// events into operations (types.ts EnforcerOp). A protocol without an entry is decided once, as a
// whole connection.
import { DnsStreamEnforcer } from './dns-enforcer.js';
import { HandshakeEnforcer } from './handshake-enforcer.js';
import { Http1Enforcer } from './http1-enforcer.js';
import { Http2Enforcer } from './http2-enforcer.js';
import { MysqlEnforcer } from './mysql-enforcer.js';
import { PostgresEnforcer } from './postgres-enforcer.js';
import { RedisEnforcer } from './redis-enforcer.js';
import type { EnforcerDeps, ProtocolEnforcer } from './types.js';

const ENFORCERS: Record<string, (deps: EnforcerDeps) => ProtocolEnforcer> = {
  http: (deps) => new Http1Enforcer(deps),
  http2: (deps) => new Http2Enforcer(deps),
  dns: (deps) => new DnsStreamEnforcer(deps),
  tls: (deps) => new HandshakeEnforcer(deps),
  ssh: (deps) => new HandshakeEnforcer(deps),
  postgres: (deps) => new PostgresEnforcer(deps),
  redis: (deps) => new RedisEnforcer(deps),
  mysql: (deps) => new MysqlEnforcer(deps),
};

export function enforcerFor(protocol: string, deps: EnforcerDeps): ProtocolEnforcer | null {
  const make = ENFORCERS[protocol];
  return make === undefined ? null : make(deps);
}
