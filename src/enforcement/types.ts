// What the enforcement layer needs from the connection that carries it, and what it reports.
// It knows nothing of sockets: the relay implements FilterSink.
import type { CompiledPolicy, Decision, Direction, Endpoint } from '../policy/index.js';
import type { DnsTunnelMonitor, TunnelFinding, TunnelInspector } from '../tunnels/types.js';
import type { TargetOptions } from './request-target.js';

export interface FilterSink {
  /** Bytes for the server (released client bytes, or bytes we inject). */
  toServer(bytes: Buffer): void;
  /** Bytes for the client (server bytes, or an answer we give in the server's place). */
  toClient(bytes: Buffer): void;
  /** Ends the connection: 'fin' after what was written is flushed, 'reset' at once. */
  close(how: 'fin' | 'reset', reason: string): void;
  /** One L7 request (or query, or stream) and its outcome; becomes a `request` flow record. */
  request(outcome: RequestOutcome): void;
  /** A tunnel detection; becomes an `alert` record (the connection record carries it too). */
  alert(finding: TunnelFinding, blocked: boolean): void;
}

export type TunnelMode = 'block' | 'alert' | 'off';

export interface RequestOutcome {
  protocol: string;
  l7: Record<string, unknown>;
  decision: Decision;
  /** Time from the request's head to the outcome being known (response head, denial). */
  durationMs: number;
  reason?: string;
}

export interface ConnectionFacts {
  direction: Direction;
  src: Endpoint;
  dst: Endpoint;
  /** The identity map was not current (controller unreachable) when these facts were taken. */
  identityStale?: true;
}

export interface FilterContext {
  facts: ConnectionFacts;
  /** The policy snapshot in force now: each decision reads it afresh (hot reload applies to the next request). */
  policy: () => CompiledPolicy;
  /** The protocol the destination port is declared to carry (`ports:` in the config), if any. */
  declaredProtocol: string | undefined;
  /** Tunnel detection for this connection, or null when `tunnels: off`. */
  tunnels: TunnelInspector | null;
  /** The pod-wide DNS tunnelling monitor, or null when `tunnels: off`. */
  dnsMonitor: DnsTunnelMonitor | null;
  /** What to do with a finding of that kind, protocol and destination port (`tunnels:` in the config). */
  tunnelMode: (kind: string, protocol: string, port: number) => TunnelMode;
  /**
   * What a parse error does in monitor and learn modes (`onParseError` in the config): 'pass'
   * records it and lets the rest of the connection through unparsed, 'reset' ends it. Under
   * protect it always resets. Default 'pass'.
   */
  onParseError?: ParseErrorAction;
  /** Counts a parser error by protocol and code (the metrics). */
  countParserError?: (protocol: string, code: string) => void;
  /** How HTTP request targets are normalised for the rules (`http:` in the config); default: reject escaped slashes. */
  http?: TargetOptions;
}

export type ParseErrorAction = 'pass' | 'reset';
