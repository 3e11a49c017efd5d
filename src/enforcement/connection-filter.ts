// The L7 firewall of one connection: detection, then the protocol's parser, then a verdict per
// request, enforced by releasing, dropping or answering the client's bytes. Data flows one way:
// bytes → detect → parser → events → policy → verdict → sink (relay) and outcome (flow record).
//
// The client's bytes are held from the moment they arrive until a verdict covers them; the
// destination was dialled at accept, so a server that speaks first (MySQL, SMTP, SSH) is heard
// at once — its greeting is read as evidence of the protocol, and reaches the client only once
// the connection is allowed (at accept, or by the decision the protocol leads to): a connection
// that will be denied never shows the client what the server said.
import { declaredParser, detectClientProtocol, detectOnTimeout, detectServerGreeting } from '../protocols/detect.js';
import { createParser, pluginOf, type ProtocolName } from '../protocols/registry.js';
import type { StreamParser } from '../protocols/types.js';
import type { Decision, FlowFacts } from '../policy/index.js';
import type { TunnelFinding } from '../tunnels/types.js';
import { HeldBytes } from './held-bytes.js';
import { DEFAULT_DLP } from '../content/dlp/index.js';
import { tunnelDenial } from './tunnel-verdict.js';
import type { EnforcerDeps, EnforcerOp, FilterContext, FilterSink, L7Record, ProtocolEnforcer } from './types.js';

type Phase = 'detect' | 'inspect' | 'pass' | 'blocked';

/** Client bytes held while detecting or awaiting a verdict, past which the client is paused (the relay may set a lower cap). */
export const MAX_HELD_BYTES = 256 * 1024;

/**
 * Client bytes go to the parser in slices, and no further once the client is refused (HTTP/1
 * after a denied request): one read of pipelined requests behind a denial (a 16 KiB read is ~470
 * minimal requests) would otherwise all be parsed, each an event, for nothing; with 300 such
 * connections that was ~2 s of one event-loop turn before another client's request was read.
 * Slices start small and double, so a large read (a body) still costs a handful of parser calls.
 */
const FIRST_PARSE_SLICE_BYTES = 256;

/** DLP's hold timer when the config does not set `dlp.holdMs`. */
const DEFAULT_HOLD_MS = DEFAULT_DLP.holdMs;

export class ConnectionFilter {
  private phase: Phase = 'detect';
  private readonly held = new HeldBytes();
  private readonly greeting = new HeldBytes();
  /** Server bytes DLP holds from the client (a response read that may end inside a value). */
  private serverTail = new HeldBytes();
  private parser: StreamParser | null = null;
  private enforcer: ProtocolEnforcer | null = null;
  /** Streaming enforcers: absolute client offset before which held bytes may go to the server. */
  private frontier = 0;
  /** Streaming enforcers: nothing more needs inspecting. */
  private enforcerDone = false;
  private protocolName = 'tcp';
  private decisionValue: Decision | null = null;
  private closeReasonValue: string | null = null;
  private l7Value: L7Record | null = null;
  private tunnelValue: (TunnelFinding & { blocked: boolean }) | null = null;

  /** The protocol the connection speaks ('tcp' when none is recognised). */
  get protocol(): string {
    return this.protocolName;
  }
  /** The decision that covers the whole connection, once there is one. */
  get decision(): Decision | null {
    return this.decisionValue;
  }
  /** Set when the filter ended the connection, for the connection record. */
  get closeReason(): string | null {
    return this.closeReasonValue;
  }
  /** What identified the session (TLS SNI, SSH banner, ...), for the connection record. */
  get l7(): L7Record | null {
    return this.l7Value;
  }
  /** The first tunnel finding of the connection, for its record. */
  get tunnel(): (TunnelFinding & { blocked: boolean }) | null {
    return this.tunnelValue;
  }
  /** Payload bytes per side still shown to tunnel detection after the stream stopped being parsed. */
  private opaqueBudget = { client: 0, server: 0 };
  /** The server's first bytes went to the client as they came (the connection was allowed at accept). */
  private greetingForwarded = false;
  /** Hold a server's greeting until the verdict: only when the connection could still be denied. */
  private readonly greetingHeld: boolean;

  constructor(
    private readonly ctx: FilterContext,
    private readonly sink: FilterSink,
    /** The accept-time decision; `needs-l7` when the protocol or its requests decide. */
    l4: Decision | 'needs-l7',
  ) {
    if (l4 !== 'needs-l7') this.decisionValue = l4;
    this.greetingHeld = (this.decisionValue === null || this.decisionValue.action !== 'allow') && ctx.policy().mode === 'protect';
  }

  /** Bytes the filter holds for the client: the relay pauses reading the client past its cap. */
  get heldBytes(): number {
    return this.held.size;
  }

  /** Server bytes held (a greeting awaiting the connection's verdict): the relay pauses the server past its cap. */
  get heldServerBytes(): number {
    return this.greeting.size + this.serverTail.size;
  }

  /**
   * DLP holds bytes that may be the beginning of a value (either side): the relay arms the hold
   * timer (`tailHoldMs`), and calls releaseTail() when it fires.
   */
  get tailHeld(): boolean {
    const e = this.enforcer;
    return this.phase === 'inspect' && (this.serverTail.size > 0 || (e !== null && e.dlpHolding === true));
  }

  /** How long DLP may hold bytes for the peer's next read (config `dlp.holdMs`). */
  get tailHoldMs(): number {
    return this.ctx.dlp?.settings.holdMs ?? DEFAULT_HOLD_MS;
  }

  /**
   * The hold timer fired, or the server ended its stream: what the next bytes could still have
   * changed is decided now (a hit cuts), the rest goes on.
   */
  releaseTail(): void {
    const e = this.enforcer;
    if (this.phase !== 'inspect' || e === null) return;
    if (e.releaseHold !== undefined) this.apply(e.releaseHold());
    if (this.phase !== 'inspect') return;
    if (this.serverTail.size > 0) this.serverTail.release(this.serverTail.end, this.sinkToClient);
    this.releaseClient();
  }

  /**
   * Bytes a routing enforcer holds (HTTP/2: a header block awaiting its verdict, DATA held for
   * DLP, a partial frame), both sides: accounted in the held-bytes budget (shed oldest first, head
   * timeout) but not paused on the per-connection cap, as one frame may be what the endpoints
   * allowed (SETTINGS_MAX_FRAME_SIZE) and it must arrive whole.
   */
  get routedHeldBytes(): number {
    const e = this.enforcer;
    if (this.phase !== 'inspect' || e === null || e.kind !== 'route' || e.heldOf === undefined) return 0;
    return e.heldOf('client') + e.heldOf('server');
  }

  /** Memory the parser and enforcer keep for this connection (estimate), for the state budget. */
  get stateBytes(): number {
    if (this.phase !== 'inspect') return 0;
    return (this.parser?.stateBytes ?? 0) + (this.enforcer !== null && this.enforcer.kind === 'route' ? (this.enforcer.stateBytes ?? 0) : 0);
  }

  /** Bytes are waiting for detection to decide: the relay arms the bounded detect timer. */
  get detecting(): boolean {
    return this.phase === 'detect' && (this.held.size > 0 || this.greeting.size > 0);
  }

  /**
   * Nothing is in flight: no bytes held, and the protocol is between requests (HTTP/1 keep-alive
   * with every response complete). A draining sidecar closes such connections at once. Opaque
   * streams are never at rest: nothing tells their messages apart.
   */
  get atRest(): boolean {
    if (this.held.size > 0 || this.greeting.size > 0 || this.serverTail.size > 0) return false;
    if (this.phase === 'detect') return true; // the client has said nothing yet
    return this.phase === 'inspect' && this.enforcer !== null && this.enforcer.idle === true;
  }

  /**
   * Nothing more the client sends can reach the server (HTTP/1 after a denied request, while the
   * responses before it finish): the relay stops reading the client instead of parsing and
   * holding bytes that will be dropped.
   */
  get clientRefused(): boolean {
    // Not once blocked: the relay must go on reading to see the client's FIN or RST.
    return this.phase === 'inspect' && this.enforcer !== null && this.enforcer.kind === 'stream' && this.enforcer.clientDone === true;
  }

  /** After a read returned: copy small held views out of the read buffer so it can be reused. */
  compact(side: 'client' | 'server'): void {
    (side === 'client' ? this.held : this.greeting).compact();
    if (side === 'server') this.serverTail.compact();
    const e = this.enforcer;
    if (this.phase === 'inspect' && e !== null && e.kind === 'route') e.compact?.(side);
  }

  /**
   * The filter keeps views of chunks it was given by that side (client bytes awaiting detection or
   * a verdict, a server greeting read during detection, frames a routing enforcer holds): the
   * relay must not reuse their memory for the next read.
   */
  holdsBytesOf(side: 'client' | 'server'): boolean {
    if ((side === 'client' ? this.held : this.greeting).holdsViews) return true;
    if (side === 'server' && this.serverTail.holdsViews) return true;
    const e = this.enforcer;
    return this.phase === 'inspect' && e !== null && e.kind === 'route' && (e.holdsViewsOf === undefined || e.holdsViewsOf(side));
  }

  /** Nothing left to look at: the relay may stop calling the filter. */
  get passThrough(): boolean {
    return this.phase === 'pass' && this.opaqueBudget.client === 0 && this.opaqueBudget.server === 0;
  }

  clientData(chunk: Buffer): void {
    switch (this.phase) {
      case 'pass':
        this.sink.toServer(chunk);
        if (this.opaqueBudget.client > 0) this.inspectOpaque('client', chunk);
        return;
      case 'blocked':
        return;
      case 'detect': {
        this.held.push(chunk);
        const detection = detectClientProtocol(this.held.peek(24));
        if (detection.kind === 'more') return;
        if (detection.kind === 'match') this.begin(detection.protocol, 'client');
        else this.undetected('unknown');
        return;
      }
      case 'inspect': {
        // Nothing the client sends now can reach the server: dropped unread (the relay pauses it).
        if (this.clientRefused) return;
        if ((this.enforcer as ProtocolEnforcer).kind === 'route') {
          this.feed(chunk);
          return;
        }
        this.held.push(chunk);
        this.feedSliced(chunk, true);
        return;
      }
    }
  }

  serverData(chunk: Buffer): void {
    if (this.phase === 'inspect' && this.parser !== null && this.enforcer !== null) {
      const result = this.parser.feed('server', chunk);
      if (this.enforcer.kind === 'route') {
        this.apply(this.enforcer.route('server', chunk, result.events));
      } else {
        const start = this.parser.offset('server') - chunk.length;
        // DLP sees response bytes before the client does (a hit that blocks cuts them).
        if (this.enforcer.screenServer !== undefined) {
          const ops = this.enforcer.screenServer(chunk, start, result.events);
          if (ops.length > 0) this.apply(ops);
          if (this.phase !== 'inspect') return;
        }
        // Not a byte past where the server's stream stopped making sense (a response nobody
        // asked for, a malformed head): the connection resets there.
        const out = result.error === null ? chunk : chunk.subarray(0, result.consumed);
        // Nor the end of a response read that may be the beginning of a value (DLP's hold).
        const hold = this.enforcer.serverHold;
        if (this.serverTail.size === 0 && (hold === undefined || hold >= start + out.length)) this.sink.toClient(out);
        else this.holdServer(out, start, hold ?? Number.POSITIVE_INFINITY);
        this.apply(this.enforcer.onData('server', chunk, start, result.events));
      }
      if (result.error !== null) this.onParserError(result.error.code, result.error.message);
      this.releaseClient();
      return;
    }
    if (this.phase === 'blocked') return;
    if (this.phase === 'pass') {
      this.sink.toClient(chunk);
      if (this.opaqueBudget.server > 0) this.inspectOpaque('server', chunk);
      return;
    }
    if (this.phase === 'detect') {
      // Allowed at accept (or nothing is enforced): the greeting goes on at once, and is still
      // read as evidence. Otherwise it waits for the verdict in `greeting`, bounded by the relay.
      if (!this.greetingHeld) {
        this.sink.toClient(chunk);
        this.greetingForwarded = true;
      }
      // A server that speaks first names its protocol before the client has said anything.
      this.greeting.push(chunk);
      // Only a recognised greeting decides: an HTTP/2 server's SETTINGS, say, also arrives
      // before the client's preface, and then the client's bytes must still decide.
      if (this.held.size === 0) {
        const detection = detectServerGreeting(this.greeting.peek(512));
        if (detection.kind === 'match') this.begin(detection.protocol, 'server');
      }
    }
  }

  /** Server bytes at absolute offset `start`: those before `hold` go to the client (with any held before them), the rest wait. */
  private holdServer(bytes: Buffer, start: number, hold: number): void {
    if (this.serverTail.size === 0) this.serverTail = new HeldBytes(start);
    this.serverTail.push(bytes);
    this.serverTail.release(hold, this.sinkToClient);
  }

  /** Payload after the protocol stopped being parsed (CONNECT, Upgrade, unparsed protocols). */
  private inspectOpaque(side: 'client' | 'server', chunk: Buffer): void {
    const budget = this.opaqueBudget[side];
    this.opaqueBudget[side] = Math.max(0, budget - chunk.length);
    const finding = this.ctx.tunnels?.onPayload(side, chunk.length > budget ? chunk.subarray(0, budget) : chunk) ?? null;
    if (finding !== null) this.reportTunnel(finding);
  }

  /** Shows the stream from here on to tunnel detection, up to its payload budget per side. */
  private watchOpaque(): void {
    const budget = this.ctx.tunnels?.payloadBudget ?? 0;
    this.opaqueBudget = { client: budget, server: budget };
  }

  /**
   * A tunnel finding: always an alert record (unless `tunnels: off` for it); in `block` mode
   * under `protect` it also ends the connection. Returns true when the connection was cut.
   */
  private reportTunnel(finding: TunnelFinding): boolean {
    const mode = this.ctx.tunnelMode(finding.kind, this.protocolName, this.ctx.facts.dst.port);
    if (mode === 'off') return false;
    const denial = tunnelDenial(mode, finding.kind, this.ctx.policy());
    const blocked = denial !== null;
    this.tunnelValue ??= { ...finding, blocked };
    this.sink.alert(finding, blocked);
    if (denial === null) return false;
    this.block(denial, denial.ruleId);
    return true;
  }

  /**
   * The client stopped sending (FIN). Returns true when the server may get the FIN now. Client
   * bytes still held by a streaming enforcer can never get a verdict (an unfinished request
   * head, or requests after a denied one): they are dropped, so the server sees the FIN at once
   * instead of the connection waiting for the server's own timeout.
   */
  clientEnd(): boolean {
    if (this.phase === 'detect') this.detectionCut('client-fin');
    if (this.phase === 'inspect' && this.enforcer !== null && this.enforcer.kind === 'stream' && this.held.size > 0) {
      this.releaseClient();
      if (this.held.size > 0) this.held.drop(this.held.end);
    }
    return this.held.size === 0;
  }

  /**
   * Detection did not finish within the bounded wait: bytes that can only be the start of one
   * protocol are read by its parser (a request split as `G`, pause, `ET /admin` is HTTP);
   * otherwise the flow is undetected.
   */
  detectTimeout(): void {
    if (this.phase === 'detect') this.detectionCut('timeout');
  }

  private detectionCut(why: 'timeout' | 'client-fin'): void {
    const protocol = detectOnTimeout(this.held.peek(24));
    if (protocol !== null) this.begin(protocol, 'client');
    else this.undetected(why);
  }

  /**
   * Nothing recognised the client's bytes. On a port declared in `ports:` they are read by the
   * declared protocol's parser (which refuses what it cannot read) — detection still runs first
   * there, so protocol verification sees what is really spoken. Elsewhere, fail closed: where a
   * deny rule with protocol or L7 matchers could apply (CompiledPolicy.decideUndetected), the
   * connection is denied — its bytes might be exactly what that rule forbids, in a form we do
   * not read — and the record says why (`l7.detection`). Otherwise it passes as TCP, opaque.
   */
  private undetected(why: 'unknown' | 'timeout' | 'client-fin'): void {
    const declared = this.ctx.declaredProtocol;
    const parser = declared === undefined ? null : declaredParser(declared);
    if (parser !== null) {
      this.begin(parser, 'client');
      return;
    }
    if (this.decisionValue === null) {
      const decision = this.ctx.policy().decideUndetected(this.facts('tcp'));
      if (decision.verdict !== 'allowed') {
        this.decisionValue = decision;
        this.l7Value = { detection: why };
      }
    }
    this.begin('tcp', 'client');
  }

  /** The connection is closing: report requests that never got an answer. */
  finish(reason: string): void {
    const enforcer = this.enforcer;
    if (enforcer !== null && enforcer.finish !== undefined) this.apply(enforcer.finish(reason));
    // The connection is closed: nothing more is parsed (llhttp's state goes now, not at a full GC).
    this.parser?.dispose?.();
  }

  private facts(protocol: string): Omit<FlowFacts, 'l7'> {
    const facts = this.ctx.facts;
    return { direction: facts.direction, src: facts.src, dst: facts.dst, protocol };
  }

  private begin(protocol: string, from: 'client' | 'server'): void {
    this.protocolName = protocol;
    const tunnels = this.ctx.tunnels;
    if (tunnels !== null) {
      const first = from === 'client' ? this.held.peek(64) : this.greeting.peek(64);
      const finding = tunnels.onProtocol(protocol, first, from);
      if (finding !== null && this.reportTunnel(finding)) return;
    }
    const policy = this.ctx.policy();
    const decision = this.decisionValue ?? policy.decideProtocol(this.facts(protocol));
    const enforcer = pluginOf(protocol)?.enforcer?.(this.enforcerDeps(protocol)) ?? null;
    if (decision !== 'needs-l7') {
      this.decisionValue = decision;
      if (decision.action === 'deny') return this.block(decision, 'denied');
    }
    if (enforcer === null) {
      if (decision === 'needs-l7') {
        // An L7 rule for a protocol we cannot parse never matches: decide with what we know.
        const d = policy.decide(this.facts(protocol));
        this.decisionValue = d;
        if (d.action === 'deny') return this.block(d, 'denied');
      }
      // Unparsed protocols are opaque to us: tunnel detection still sees how they begin.
      this.watchOpaque();
      this.toPass();
      return;
    }
    this.enforcer = enforcer;
    this.parser = createParser(protocol as ProtocolName);
    this.phase = 'inspect';
    // Replay what the server already said (already forwarded) and what the client sent (held)
    // into the parser; a routing enforcer takes over the held bytes.
    const parser = this.parser;
    const forwarded = this.greetingForwarded;
    this.greeting.forEach((b) => {
      const start = parser.offset('server');
      const events = parser.feed('server', b).events;
      if (this.phase !== 'inspect' || this.enforcer === null) return; // an operation ended the connection
      if (this.enforcer.kind === 'route') this.apply(this.enforcer.route('server', b, events, forwarded));
      else {
        if (!forwarded) this.sink.toClient(b);
        this.apply(this.enforcer.onData('server', b, start, events));
      }
    });
    this.greeting.drop(this.greeting.end);
    this.greetingForwarded = true;
    this.held.forEach((b) => this.feedSliced(b, false));
    if (enforcer.kind === 'route') this.held.drop(this.held.end);
    this.releaseClient();
  }

  private enforcerDeps(protocol: string): EnforcerDeps {
    return {
      ctx: this.ctx,
      protocol,
      tunnelBlocks: (finding) => {
        const mode = this.ctx.tunnelMode(finding.kind, protocol, this.ctx.facts.dst.port);
        return mode !== 'off' && tunnelDenial(mode, finding.kind, this.ctx.policy()) !== null;
      },
    };
  }

  /**
   * Feeds held client bytes in doubling slices, stopping once the connection is no longer
   * inspected or the client is refused: what is left of the chunk stays held, unparsed, and is
   * dropped with the rest when the denial is answered. What the verdicts allow is released once,
   * after the whole chunk (one write to the server per read, as without slices).
   */
  private feedSliced(chunk: Buffer, release: boolean): void {
    let slice = FIRST_PARSE_SLICE_BYTES;
    for (let at = 0; at < chunk.length; at += slice, slice *= 2) {
      if (this.phase !== 'inspect' || this.clientRefused) break;
      this.feed(at === 0 && chunk.length <= slice ? chunk : chunk.subarray(at, at + slice), false);
    }
    if (release) this.releaseClient();
  }

  private feed(chunk: Buffer, release = true): void {
    if (this.phase !== 'inspect') return; // an operation ended the connection (or parsing stopped)
    const parser = this.parser as StreamParser;
    const enforcer = this.enforcer as ProtocolEnforcer;
    const result = parser.feed('client', chunk);
    if (enforcer.kind === 'route') this.apply(enforcer.route('client', chunk, result.events));
    else this.apply(enforcer.onData('client', chunk, parser.offset('client') - chunk.length, result.events));
    if (result.error !== null) this.onParserError(result.error.code, result.error.message);
    if (release) this.releaseClient();
  }

  /**
   * Carries out what an enforcer asked, in order. Once the connection is ended only records
   * still count: nothing more is sent.
   */
  private apply(ops: readonly EnforcerOp[]): void {
    for (const op of ops) {
      switch (op.op) {
        case 'request':
          this.sink.request(op.outcome);
          break;
        case 'decide':
          this.decisionValue = op.decision;
          if (op.l7 !== undefined) this.l7Value = op.l7;
          break;
        case 'alert':
          this.sink.alert(op.finding, op.blocked);
          break;
        case 'dlp':
          this.sink.dlpAlert?.(op.alert);
          break;
        default:
          if (this.phase !== 'inspect') break;
          switch (op.op) {
            case 'pass':
              this.frontier = op.upTo;
              break;
            case 'done':
              this.enforcerDone = true;
              this.frontier = Number.POSITIVE_INFINITY;
              break;
            case 'send':
              if (op.to === 'server') this.sink.toServer(op.bytes);
              else this.sink.toClient(op.bytes);
              break;
            case 'tunnel':
              this.reportTunnel(op.finding);
              break;
            case 'close':
              if (op.how === 'reset') this.block(this.decisionValue as Decision, op.reason);
              else {
                this.ended(op.reason);
                this.sink.close(op.how, op.reason);
              }
              break;
            case 'handover':
              this.enforcer = op.to;
              break;
          }
      }
    }
  }

  /** Forwards the held client bytes the verdicts so far allow; switches to pass-through when it can. */
  private releaseClient(): void {
    if (this.phase !== 'inspect' || this.enforcer === null) return;
    if (this.enforcer.kind === 'route') {
      // The enforcer took over routing mid-stream (h2c): it gets what we still hold.
      if (this.held.size > 0) {
        const enforcer = this.enforcer;
        this.held.release(this.held.end, (b) => this.apply(enforcer.route('client', b, [])));
      }
      return;
    }
    if (this.frontier > this.held.start) this.held.release(this.frontier, this.sinkToServer);
    if (this.enforcerDone && this.held.size === 0) {
      this.watchOpaque();
      this.toPass();
    }
  }

  private readonly sinkToServer = (bytes: Buffer): void => this.sink.toServer(bytes);
  private readonly sinkToClient = (bytes: Buffer): void => this.sink.toClient(bytes);

  private toPass(): void {
    this.phase = 'pass';
    // Server bytes DLP held go first: nothing inspects the rest.
    if (this.serverTail.size > 0) this.serverTail.release(this.serverTail.end, this.sinkToClient);
    this.parser = null;
    // A held greeting goes out now that the connection is allowed.
    if (!this.greetingForwarded) this.greeting.forEach(this.sinkToClient);
    this.greeting.drop(this.greeting.end);
    this.greetingForwarded = true;
    // What was held is payload too: tunnel detection sees it before it leaves.
    if (this.opaqueBudget.client > 0) {
      this.held.forEach((b) => {
        if (this.phase === 'pass' && this.opaqueBudget.client > 0) this.inspectOpaque('client', b);
      });
      if (this.phase !== 'pass') return; // a finding blocked the connection
    }
    this.held.release(this.held.end, this.sinkToServer);
  }

  /** The connection is denied as a whole: nothing more reaches the server. */
  private block(decision: Decision, reason: string): void {
    this.decisionValue = decision;
    this.phase = 'blocked';
    this.closeReasonValue = reason;
    this.held.drop(this.held.end);
    this.greeting.drop(this.greeting.end); // a held greeting never reaches the client
    this.serverTail.drop(this.serverTail.end);
    this.sink.close('reset', reason);
  }

  /**
   * The parser met bytes it cannot read. Under protect the connection is reset (fail closed: the
   * server might read them as a request we did not see). In monitor and learn it is recorded
   * (`l7.parseError`) and, unless `onParseError: reset`, what follows passes unparsed: those
   * modes must not break traffic.
   */
  private onParserError(code: string, _message: string): void {
    if (this.phase !== 'inspect') return;
    this.ctx.countParserError?.(this.protocol, code);
    if (this.ctx.policy().mode !== 'protect' && (this.ctx.onParseError ?? 'pass') === 'pass') {
      this.l7Value = { ...this.l7Value, parseError: code };
      // A routing enforcer holds undecided units and the bytes past the error: they go as they are.
      const enforcer = this.enforcer;
      if (enforcer?.kind === 'route') this.apply(enforcer.flush());
      if (enforcer?.finish !== undefined) this.apply(enforcer.finish('parse-error'));
      this.enforcer = null;
      this.toPass();
      return;
    }
    this.phase = 'blocked';
    const reason = `parser-error:${code}`;
    this.closeReasonValue = reason;
    this.held.drop(this.held.end);
    this.serverTail.drop(this.serverTail.end);
    this.sink.close('reset', reason);
  }

  /** An enforcer ended the connection itself (after answering 403): nothing more reaches the server. */
  private ended(reason: string): void {
    this.phase = 'blocked';
    this.closeReasonValue = reason;
    this.held.drop(this.held.end);
    this.serverTail.drop(this.serverTail.end);
  }
}
