// What the enforcement layer needs from the connection that carries it, and what it reports.
// It knows nothing of sockets: the relay implements FilterSink.
import type { CompiledPolicy, Decision, Direction, Endpoint } from '../policy/index.js';
import type { DnsTunnelMonitor, TunnelFinding, TunnelInspector } from '../tunnels/types.js';
import type { ProtocolEvent, Side } from '../protocols/types.js';
import type { TargetOptions } from '../protocols/http1/request-target.js';
import type { DlpEngine, DlpHit } from '../content/dlp/index.js';

/** A DLP hit on a request or response (becomes an `alert` record with a `dlp` object). */
export interface DlpAlert {
  protocol: string;
  /** The request's record fields (method, path, ...). */
  l7: Record<string, unknown>;
  hit: DlpHit;
  /** What the hit led to: `dlp:<sensor>` or the rule with a `dlp` matcher that decided. */
  decision: Decision;
  /** The exchange was cut (403 or reset). */
  blocked: boolean;
}

export interface FilterSink {
  /** Bytes for the server (released client bytes, or bytes we inject). */
  toServer(bytes: Buffer): void;
  /** Bytes for the client (server bytes, or an answer we give in the server's place). */
  toClient(bytes: Buffer): void;
  /**
   * Ends the connection: 'fin' after what was written is flushed, 'reset' at once (both sides),
   * 'reset-server': the server side is reset at once (it must never see the rest of a request,
   * nor its end), the client's after what was written to it (a 403) is flushed.
   */
  close(how: 'fin' | 'reset' | 'reset-server', reason: string): void;
  /** A DLP hit; becomes an `alert` record with a `dlp` object. */
  dlpAlert?(alert: DlpAlert): void;
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
  /** DLP sensors (config `dlp`, rules' `dlp`); null/absent: no scanning at all. */
  dlp?: DlpEngine | null;
}

export type ParseErrorAction = 'pass' | 'reset';

/** Fields an enforcer gives the connection record (`l7` of the flow record). */
export type L7Record = Record<string, unknown>;

/**
 * What an enforcer asks the connection filter to do, in order — proxylib's OnData verdicts
 * (MORE/PASS/DROP/INJECT/ERROR) for a filter that also keeps the records. Enforcers own only
 * their protocol's bookkeeping; the filter owns the connection's state (held bytes, phase,
 * decision, record fields) and applies these. Not passing yet is MORE: held bytes wait.
 */
export type EnforcerOp =
  /** Streaming: held client bytes before absolute offset `upTo` may go to the server (PASS). The last one of a batch counts. */
  | { readonly op: 'pass'; readonly upTo: number }
  /** Streaming: nothing more needs inspecting: every held byte may go, then the connection passes through. */
  | { readonly op: 'done' }
  /** Bytes for one side: units a routing enforcer forwards, or an answer given in the peer's place (INJECT). */
  | { readonly op: 'send'; readonly to: 'client' | 'server'; readonly bytes: Buffer }
  /** The decision that covers the connection (and, optionally, what identified it, for its record). */
  | { readonly op: 'decide'; readonly decision: Decision; readonly l7?: L7Record }
  /** One request's outcome: a `request` flow record. */
  | { readonly op: 'request'; readonly outcome: RequestOutcome }
  /** A tunnel finding: an alert, and the end of the connection in block mode (see EnforcerDeps.tunnelBlocks). */
  | { readonly op: 'tunnel'; readonly finding: TunnelFinding }
  /** An alert that is not a tunnel finding (an HTTP desync the parser refuses). */
  | { readonly op: 'alert'; readonly finding: TunnelFinding; readonly blocked: boolean }
  /** A DLP hit: an `alert` record with a `dlp` object (the cut, if any, comes as its own ops). */
  | { readonly op: 'dlp'; readonly alert: DlpAlert }
  /**
   * Held client bytes are dropped and the connection ends (DROP + ERROR): 'fin' after what was
   * sent, 'reset' at once, 'reset-server': the server reset at once (it never sees the rest of
   * a request), the client ended after what was sent to it (a 403).
   */
  | { readonly op: 'close'; readonly how: 'fin' | 'reset' | 'reset-server'; readonly reason: string }
  /**
   * The protocol changed under the same parser (HTTP/1 Upgrade: h2c): this enforcer, already
   * given the events and bytes so far, takes over from here.
   */
  | { readonly op: 'handover'; readonly to: RoutingEnforcer };

/** The answer of a call that asks nothing (shared: most calls on a busy connection). */
export const NO_OPS: readonly EnforcerOp[] = Object.freeze([]);

/** What every enforcer is given: the connection's context, nothing of the filter. */
export interface EnforcerDeps {
  ctx: FilterContext;
  /** The protocol the connection was detected as (for tunnel modes and records). */
  protocol: string;
  /** Would reporting this finding end the connection (`tunnels: block` under protect)? Pure: the filter decides the same way. */
  tunnelBlocks(finding: TunnelFinding): boolean;
}

/**
 * A streaming enforcer (HTTP/1, session protocols): the filter holds the client's bytes and the
 * enforcer says how far they may go (`pass`); server bytes go to the client as they come.
 */
export interface StreamingEnforcer {
  readonly kind: 'stream';
  /**
   * The events of one parser feed and that feed's bytes (`start`: their absolute offset in
   * `side`'s stream). Server bytes were already sent to the client.
   */
  onData(side: Side, chunk: Buffer, start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[];
  /** Between messages with nothing outstanding (a draining sidecar may close the connection now); absent: never known. */
  readonly idle?: boolean;
  /** Nothing the client sends from here on will reach the server (a denial is pending): no need to read it. */
  readonly clientDone?: boolean;
  /** The connection is closing: the outcomes of requests still open (absent: nothing is ever open). */
  finish?(reason: string): readonly EnforcerOp[];
  /**
   * Server bytes before they go to the client (with the events they produced): DLP scans
   * response bodies here, so a hit that blocks cuts them. Ops that end the connection mean none
   * of `chunk` may go.
   */
  screenServer?(chunk: Buffer, start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[];
  /**
   * DLP: server bytes from this absolute offset on must wait (a response body may end inside a
   * value); the filter holds them until it moves past them. Absent or +Infinity: nothing held.
   */
  readonly serverHold?: number;
  /** DLP holds some client bytes back (the filter arms its hold timer). */
  readonly dlpHolding?: boolean;
  /**
   * The hold timer fired (the peer paused with a value possibly unfinished): decide what waits,
   * as if the message ended there, and release the rest (ops: a cut, or `pass`).
   */
  releaseHold?(): readonly EnforcerOp[];
}

/**
 * A routing enforcer (HTTP/2, DNS): takes every byte of both sides with the events they produced
 * and routes them unit by unit itself (`send`), so it can drop and inject between frames.
 */
export interface RoutingEnforcer {
  readonly kind: 'route';
  /** `forwarded`: the bytes already went out (a server greeting forwarded while detecting). */
  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded?: boolean): readonly EnforcerOp[];
  readonly idle?: boolean;
  /** Parsing stops (a parse error that monitor/learn lets pass): every held byte goes as it is. */
  flush(): readonly EnforcerOp[];
  finish(reason: string): readonly EnforcerOp[];
  /**
   * Budgets (optional; without them every read gets a fresh buffer and nothing is accounted):
   * bytes of a side the enforcer holds, whether some are views of that side's read buffer,
   * copying the small ones out after a read, and the memory its state keeps (estimate).
   */
  heldOf?(side: Side): number;
  holdsViewsOf?(side: Side): boolean;
  compact?(side: Side): void;
  readonly stateBytes?: number;
  /** DLP holds a frame whose end may be inside a value (the filter arms its hold timer). */
  readonly dlpHolding?: boolean;
  /** The hold timer fired: decide the held frames as if their streams paused there (see StreamingEnforcer.releaseHold). */
  releaseHold?(): readonly EnforcerOp[];
}

export type ProtocolEnforcer = StreamingEnforcer | RoutingEnforcer;
