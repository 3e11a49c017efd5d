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
import { createParser } from '../protocols/registry.js';
import type { ProtocolName, StreamParser } from '../protocols/types.js';
import type { Decision, FlowFacts } from '../policy/index.js';
import type { TunnelFinding } from '../tunnels/types.js';
import { HeldBytes } from './held-bytes.js';
import { enforcerFor, type ProtocolEnforcer } from './enforcers.js';
import { tunnelDenial } from './tunnel-verdict.js';
import type { FilterContext, FilterSink } from './types.js';

type Phase = 'detect' | 'inspect' | 'pass' | 'blocked';

/** Client bytes held while detecting or awaiting a verdict, past which the client is paused (the relay may set a lower cap). */
export const MAX_HELD_BYTES = 256 * 1024;

export class ConnectionFilter {
  private phase: Phase = 'detect';
  private readonly held = new HeldBytes();
  private readonly greeting = new HeldBytes();
  private parser: StreamParser | null = null;
  private enforcer: ProtocolEnforcer | null = null;
  /** The protocol the connection speaks ('tcp' when none is recognised). */
  protocol = 'tcp';
  /** The decision that covers the whole connection, once there is one. */
  decision: Decision | null = null;
  /** Set when the filter ended the connection, for the connection record. */
  closeReason: string | null = null;
  /** What identified the session (TLS SNI, SSH banner, ...), for the connection record. */
  l7: Record<string, unknown> | null = null;
  /** The first tunnel finding of the connection, for its record. */
  tunnel: (TunnelFinding & { blocked: boolean }) | null = null;
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
    if (l4 !== 'needs-l7') this.decision = l4;
    this.greetingHeld = (this.decision === null || this.decision.action !== 'allow') && ctx.policy().mode === 'protect';
  }

  /** Bytes the filter holds for the client: the relay pauses reading the client past its cap. */
  get heldBytes(): number {
    return this.held.size;
  }

  /** Server bytes held (a greeting awaiting the connection's verdict): the relay pauses the server past its cap. */
  get heldServerBytes(): number {
    return this.greeting.size;
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
    if (this.held.size > 0 || this.greeting.size > 0) return false;
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
    return this.phase === 'inspect' && this.enforcer !== null && this.enforcer.clientDone === true;
  }

  /** After a read returned: copy small held views out of the read buffer so it can be reused. */
  compact(side: 'client' | 'server'): void {
    (side === 'client' ? this.held : this.greeting).compact();
  }

  /**
   * The filter keeps views of chunks it was given by that side (client bytes awaiting detection or
   * a verdict, a server greeting read during detection, frames a routing enforcer holds): the
   * relay must not reuse their memory for the next read.
   */
  holdsBytesOf(side: 'client' | 'server'): boolean {
    if ((side === 'client' ? this.held : this.greeting).holdsViews) return true;
    return this.phase === 'inspect' && this.enforcer !== null && this.enforcer.routesBytes;
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
        if (!(this.enforcer as ProtocolEnforcer).routesBytes) this.held.push(chunk);
        this.feed(chunk);
        return;
      }
    }
  }

  serverData(chunk: Buffer): void {
    if (this.phase === 'inspect' && this.parser !== null && this.enforcer !== null) {
      const result = this.parser.feed('server', chunk);
      if (this.enforcer.routesBytes) {
        this.enforcer.route('server', chunk, result.events);
      } else {
        const start = this.parser.offset('server') - chunk.length;
        // Not a byte past where the server's stream stopped making sense (a response nobody
        // asked for, a malformed head): the connection resets there.
        this.sink.toClient(result.error === null ? chunk : chunk.subarray(0, result.consumed));
        this.enforcer.onEvents(result.events);
        this.enforcer.onBytes('server', chunk, start);
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

  /** Payload after the protocol stopped being parsed (CONNECT, Upgrade, unparsed protocols). */
  private inspectOpaque(side: 'client' | 'server', chunk: Buffer): void {
    const budget = this.opaqueBudget[side];
    this.opaqueBudget[side] = Math.max(0, budget - chunk.length);
    const finding = this.ctx.tunnels?.onPayload(side, chunk.length > budget ? chunk.subarray(0, budget) : chunk) ?? null;
    if (finding !== null) this.reportTunnel(finding);
  }

  /** Shows the stream from here on to tunnel detection, up to its payload budget per side. */
  watchOpaque(): void {
    const budget = this.ctx.tunnels?.payloadBudget ?? 0;
    this.opaqueBudget = { client: budget, server: budget };
  }

  /**
   * A tunnel finding: always an alert record (unless `tunnels: off` for it); in `block` mode
   * under `protect` it also ends the connection. Returns true when the connection was cut.
   */
  reportTunnel(finding: TunnelFinding): boolean {
    const mode = this.ctx.tunnelMode(finding.kind, this.protocol, this.ctx.facts.dst.port);
    if (mode === 'off') return false;
    const denial = tunnelDenial(mode, finding.kind, this.ctx.policy());
    const blocked = denial !== null;
    this.tunnel ??= { ...finding, blocked };
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
    if (this.phase === 'inspect' && this.enforcer !== null && !this.enforcer.routesBytes && this.held.size > 0) {
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
    if (this.decision === null) {
      const decision = this.ctx.policy().decideUndetected(this.facts('tcp'));
      if (decision.verdict !== 'allowed') {
        this.decision = decision;
        this.l7 = { detection: why };
      }
    }
    this.begin('tcp', 'client');
  }

  /** The connection is closing: report requests that never got an answer. */
  finish(reason: string): void {
    this.enforcer?.finish(reason);
  }

  private facts(protocol: string): Omit<FlowFacts, 'l7'> {
    const facts = this.ctx.facts;
    return { direction: facts.direction, src: facts.src, dst: facts.dst, protocol };
  }

  private begin(protocol: string, from: 'client' | 'server'): void {
    this.protocol = protocol;
    const tunnels = this.ctx.tunnels;
    if (tunnels !== null) {
      const first = from === 'client' ? this.held.peek(64) : this.greeting.peek(64);
      const finding = tunnels.onProtocol(protocol, first, from);
      if (finding !== null && this.reportTunnel(finding)) return;
    }
    const policy = this.ctx.policy();
    const decision = this.decision ?? policy.decideProtocol(this.facts(protocol));
    const enforcer = enforcerFor(protocol, { ctx: this.ctx, sink: this.sink, filter: this });
    if (decision !== 'needs-l7') {
      this.decision = decision;
      if (decision.action === 'deny') return this.block(decision, 'denied');
    }
    if (enforcer === null) {
      if (decision === 'needs-l7') {
        // An L7 rule for a protocol we cannot parse never matches: decide with what we know.
        const d = policy.decide(this.facts(protocol));
        this.decision = d;
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
      const events = parser.feed('server', b).events;
      if (enforcer.routesBytes) enforcer.route('server', b, events, forwarded);
      else {
        if (!forwarded) this.sink.toClient(b);
        enforcer.onEvents(events);
      }
    });
    this.greeting.drop(this.greeting.end);
    this.greetingForwarded = true;
    this.held.forEach((b) => this.feed(b, false));
    if (enforcer.routesBytes) this.held.drop(this.held.end);
    this.releaseClient();
  }

  private feed(chunk: Buffer, release = true): void {
    const parser = this.parser as StreamParser;
    const enforcer = this.enforcer as ProtocolEnforcer;
    const result = parser.feed('client', chunk);
    if (enforcer.routesBytes) enforcer.route('client', chunk, result.events);
    else {
      enforcer.onEvents(result.events);
      enforcer.onBytes('client', chunk, parser.offset('client') - chunk.length);
    }
    if (result.error !== null) this.onParserError(result.error.code, result.error.message);
    if (release) this.releaseClient();
  }

  /** Forwards the held client bytes the verdicts so far allow; switches to pass-through when it can. */
  releaseClient(): void {
    if (this.phase !== 'inspect' || this.enforcer === null) return;
    if (this.enforcer.routesBytes) {
      // The enforcer took over routing mid-stream (h2c): it gets what we still hold.
      if (this.held.size > 0) {
        const enforcer = this.enforcer;
        this.held.release(this.held.end, (b) => enforcer.route('client', b, []));
      }
      return;
    }
    const frontier = this.enforcer.clientFrontier;
    if (frontier > this.held.start) this.held.release(frontier, this.sinkToServer);
    if (this.enforcer.done && this.held.size === 0) {
      this.watchOpaque();
      this.toPass();
    }
  }

  private readonly sinkToServer = (bytes: Buffer): void => this.sink.toServer(bytes);
  private readonly sinkToClient = (bytes: Buffer): void => this.sink.toClient(bytes);

  private toPass(): void {
    this.phase = 'pass';
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
  block(decision: Decision, reason: string): void {
    this.decision = decision;
    this.phase = 'blocked';
    this.closeReason = reason;
    this.held.drop(this.held.end);
    this.greeting.drop(this.greeting.end); // a held greeting never reaches the client
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
      this.l7 = { ...this.l7, parseError: code };
      // A routing enforcer holds undecided units and the bytes past the error: they go as they are.
      this.enforcer?.flush?.();
      this.enforcer?.finish('parse-error');
      this.enforcer = null;
      this.toPass();
      return;
    }
    this.phase = 'blocked';
    this.closeReason = `parser-error:${code}`;
    this.held.drop(this.held.end);
    this.sink.close('reset', this.closeReason);
  }

  /** Called by an enforcer that ended the connection itself (e.g. after answering 403). */
  ended(reason: string): void {
    this.phase = 'blocked';
    this.closeReason = reason;
    this.held.drop(this.held.end);
  }
}
