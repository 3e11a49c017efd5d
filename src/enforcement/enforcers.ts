// The one per-protocol switch of the enforcement layer: which enforcer turns a protocol's parser
// events into verdicts. A protocol without an entry is decided once, as a whole connection.
import type { ProtocolEvent } from '../protocols/types.js';
import type { ConnectionFilter } from './connection-filter.js';
import { DnsStreamEnforcer } from './dns-enforcer.js';
import { HandshakeEnforcer } from './handshake-enforcer.js';
import { Http1Enforcer } from './http1-enforcer.js';
import { Http2Enforcer } from './http2-enforcer.js';
import { RedisEnforcer } from './redis-enforcer.js';
import type { FilterContext, FilterSink } from './types.js';

export interface EnforcerDeps {
  ctx: FilterContext;
  sink: FilterSink;
  filter: ConnectionFilter;
}

/**
 * Two shapes: a *streaming* enforcer (HTTP/1) lets the filter hold the client's bytes and says
 * how far they may go (`clientFrontier`), while server bytes pass as they come; a *routing*
 * enforcer (HTTP/2, DNS) takes every byte of both sides with the events they produced and
 * routes them unit by unit itself (`routesBytes`), so it can drop and inject between frames.
 */
export interface ProtocolEnforcer {
  readonly routesBytes: boolean;
  /** Streaming: handles the events of one parser feed, in order. */
  onEvents(events: readonly ProtocolEvent[]): void;
  /** Streaming: the bytes of that feed, after its events (`start`: their absolute offset). */
  onBytes(side: 'client' | 'server', chunk: Buffer, start: number): void;
  /**
   * Routing: the bytes of one side and the events the parser produced from them. `forwarded`:
   * the bytes already went out (the server's greeting, forwarded while detecting).
   */
  route(side: 'client' | 'server', chunk: Buffer, events: readonly ProtocolEvent[], forwarded?: boolean): void;
  /** Streaming: absolute client offset up to which the held client bytes may go to the server. */
  readonly clientFrontier: number;
  /** True when nothing more needs inspecting: the filter may stop parsing. */
  readonly done: boolean;
  /** Between messages with nothing outstanding (a draining sidecar may close the connection now); absent: never known. */
  readonly idle?: boolean;
  /** Streaming: nothing the client sends from here on will reach the server (a denial is pending): no need to read it. */
  readonly clientDone?: boolean;
  /** The connection is closing: report requests still open. */
  finish(reason: string): void;
  /** Routing: parsing stops (a parse error that monitor/learn lets pass): release every held byte as it is. */
  flush?(): void;
}

const ENFORCERS: Record<string, (deps: EnforcerDeps) => ProtocolEnforcer> = {
  http: (deps) => new Http1Enforcer(deps),
  http2: (deps) => new Http2Enforcer(deps),
  dns: (deps) => new DnsStreamEnforcer(deps),
  tls: (deps) => new HandshakeEnforcer(deps, 'tls'),
  ssh: (deps) => new HandshakeEnforcer(deps, 'ssh'),
  postgres: (deps) => new HandshakeEnforcer(deps, 'postgres'),
  redis: (deps) => new RedisEnforcer(deps),
};

export function enforcerFor(protocol: string, deps: EnforcerDeps): ProtocolEnforcer | null {
  const make = ENFORCERS[protocol];
  return make === undefined ? null : make(deps);
}
