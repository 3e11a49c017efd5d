// HTTP/1.1 (RFC 9112) enforcement: a verdict per request. The client's bytes are held from the
// first byte of each request head until its verdict; an allowed request (body included) streams
// through unchanged; a denied one never reaches the server: once the responses to the requests
// before it are complete, the client gets 403 and the connection closes (pipelined requests
// after a denied one are not answered, as with any `connection: close`).
import type { Decision } from '../../policy/index.js';
import type { TunnelFinding } from '../../tunnels/types.js';
import type { HeaderList, Http1RequestEvent, Http1SwitchEvent, ProtocolEvent, Side } from '../types.js';
import { HttpRequestFacts, invalidTargetDecision } from './http-facts.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { http1BadRequest, http1Forbidden } from './deny-responses.js';
import { normalizeRequestTarget } from './request-target.js';
import { NO_OPS, type EnforcerDeps, type EnforcerOp, type StreamingEnforcer } from '../../enforcement/types.js';
import { Http2Enforcer } from '../http2/http2-enforcer.js';
import type { DlpHit, MessageScanner } from '../../content/dlp/index.js';
import { RequestDlp } from './request-dlp.js';
import { WebSocketScanner } from '../../content/dlp/websocket-scanner.js';
import { negotiatedExtensions } from '../websocket/extensions.js';

interface OpenRequest {
  id: number;
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
  answered: boolean;
  /** Refused before any rule (a target or host read two ways): answered 400, not 403. */
  badRequest?: true;
  /** DLP for this exchange, when a sensor applies to it. */
  dlp?: RequestDlp;
}

/** A body being scanned: raw message bytes [pos, end) of one side (end -1 until the message ends). */
interface BodyScan {
  req: OpenRequest;
  dlp: RequestDlp;
  scanner: MessageScanner;
  /** Absolute offset of the body's first byte (the scanner's holdRaw counts from it). */
  bodyStart: number;
  /** Absolute offset of the next body byte to scan. */
  pos: number;
  end: number;
}

/**
 * DLP on a WebSocket (after the server accepted the Upgrade of a request DLP applies to): each
 * direction's messages are scanned (request-body: the client's, response-body: the server's);
 * a hit that blocks cuts the connection.
 */
interface WsScan {
  req: OpenRequest;
  dlp: RequestDlp;
  client: WebSocketScanner | null;
  server: WebSocketScanner | null;
  /** Stream offsets where each side's WebSocket bytes begin. */
  clientFrom: number;
  serverFrom: number;
  /** Payload bytes per side still shown to tunnel detection (as the filter shows a switched stream's). */
  tunnelBudget: { client: number; server: number };
  /** The connection's decision already says would-deny (monitor). */
  wouldDeny: boolean;
  /** A truncated message was recorded. */
  truncated: boolean;
}

/**
 * The allowed requests awaiting their responses, oldest first (ids increase). An array, not a
 * Map: a Map that empties reallocates its table on every delete (≈ 150 B per request), and
 * responses come in request order, so the one looked up is nearly always the first.
 */
class OpenRequests {
  private readonly list: OpenRequest[] = [];

  get size(): number {
    return this.list.length;
  }

  get(id: number): OpenRequest | undefined {
    const list = this.list;
    for (let i = 0; i < list.length; i++) if (list[i]!.id === id) return list[i];
    return undefined;
  }

  /** Adds a request newer than all the others. */
  add(req: OpenRequest): void {
    this.list.push(req);
  }

  delete(id: number): void {
    const list = this.list;
    if (list.length > 0 && list[0]!.id === id) {
      list.shift();
      return;
    }
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.id === id) {
        list.splice(i, 1);
        return;
      }
    }
  }

  first(): OpenRequest | undefined {
    return this.list[0];
  }

  values(): readonly OpenRequest[] {
    return this.list;
  }

  clear(): void {
    this.list.length = 0;
  }
}

/** Where a side's scans say its bytes must wait from (absolute; +Infinity: nothing held). */
function holdOf(scans: readonly BodyScan[]): number {
  const scan = scans[0];
  if (scan === undefined || scan.scanner.idle || !scan.dlp.mayCut) return Number.POSITIVE_INFINITY;
  const at = scan.bodyStart + scan.scanner.holdRaw;
  return at < scan.pos ? at : Number.POSITIVE_INFINITY;
}

export class Http1Enforcer implements StreamingEnforcer {
  readonly kind = 'stream';
  /** An Upgrade or CONNECT was accepted: the bytes are no longer HTTP/1. */
  private done = false;
  /** After an accepted `Upgrade: h2c`, HTTP/2 enforcement took over (per-stream verdicts). */
  private handedOver = false;
  /** The operations of the call in progress. */
  private ops: EnforcerOp[] = [];
  /** A request was denied: nothing after it reaches the server, so the relay stops reading the client. */
  get clientDone(): boolean {
    return this.denial !== null;
  }

  /** Keep-alive between requests: every request answered in full, no denial pending (drain closes it). */
  get idle(): boolean {
    return !this.handedOver && !this.done && this.denial === null && this.open.size === 0;
  }
  private readonly open = new OpenRequests();
  private denial: OpenRequest | null = null;
  /** The response being read is a 1xx: its end does not end the exchange. */
  private interimResponse = false;
  /**
   * The body of each side being shown to tunnel detection: the next byte to show (-1: none), and
   * where it ends (-1 until its message-end event says).
   */
  private readonly body = { client: { from: -1, end: -1 }, server: { from: -1, end: -1 } };
  /** Bodies being scanned by DLP, in stream order (pipelined requests queue up). */
  private readonly scans: { client: BodyScan[]; server: BodyScan[] } = { client: [], server: [] };
  /** How far held client bytes may go by the verdicts (the last `pass`). */
  private frontier = 0;
  /**
   * DLP holds back the end of a read that may be the beginning of a value (the first digits of a
   * card, or a card the next byte could still make a 17-digit number): it goes once the next
   * read has decided it, at the body's end, or when the hold timer settles it (releaseHold).
   */
  private dlpHold = Number.POSITIVE_INFINITY;
  /** DLP on the WebSocket the connection switched to (null: none, or not scanned). */
  private ws: WsScan | null = null;
  /** Stream offset just past the last client byte seen. */
  private clientSeen = 0;

  /**
   * Server bytes from this absolute offset on must not reach the client yet: the response body
   * read so far may end inside a value (the filter holds them, counted as held server bytes).
   */
  get serverHold(): number {
    const ws = this.ws;
    if (ws !== null) return ws.server !== null && ws.dlp.mayCut ? ws.server.holdAt : Number.POSITIVE_INFINITY;
    return this.scans.server.length === 0 ? Number.POSITIVE_INFINITY : holdOf(this.scans.server);
  }

  /** Client bytes are held for DLP (the filter's hold timer is armed). */
  get dlpHolding(): boolean {
    return this.dlpHold !== Number.POSITIVE_INFINITY;
  }

  /**
   * The hold timer: the peer paused with a possible value unfinished. Matches the next byte
   * could still have changed are decided now (a hit cuts, as at the body's end); what is only the
   * beginning of a value is released (its end, when it comes, still hits).
   */
  releaseHold(): readonly EnforcerOp[] {
    const ws = this.ws;
    if (ws !== null && ws.server !== null) {
      const hits: DlpHit[] = [];
      ws.server.settle(hits);
      const cut = hits.length > 0 ? ws.dlp.onHits(hits) : null;
      if (cut !== null) return this.cutResponse(ws.req, cut);
    }
    if (ws !== null && ws.client !== null && this.dlpHold !== Number.POSITIVE_INFINITY) {
      const hits: DlpHit[] = [];
      ws.client.settle(hits);
      const cut = hits.length > 0 ? ws.dlp.onHits(hits) : null;
      if (cut !== null) this.cutWs(ws, cut, this.dlpHold);
    }
    const server = this.scans.server[0];
    if (server !== undefined) {
      const hits: DlpHit[] = [];
      server.scanner.settle(hits);
      const cut = hits.length > 0 ? server.dlp.onHits(hits) : null;
      if (cut !== null) return this.cutResponse(server.req, cut);
    }
    const client = this.scans.client[0];
    if (client !== undefined && this.dlpHold !== Number.POSITIVE_INFINITY) {
      const hits: DlpHit[] = [];
      client.scanner.settle(hits);
      const cut = hits.length > 0 ? client.dlp.onHits(hits) : null;
      if (cut !== null) this.cutRequest(client.req, cut, this.dlpHold);
    }
    if (!this.blocked && this.dlpHold !== Number.POSITIVE_INFINITY) {
      this.dlpHold = Number.POSITIVE_INFINITY;
      this.ops.push({ op: 'pass', upTo: this.frontier });
    }
    this.blocked = false;
    if (this.ops.length === 0) return NO_OPS;
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  constructor(private readonly deps: EnforcerDeps) {}

  onData(side: Side, chunk: Buffer, start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[] {
    const hold = this.dlpHold;
    if (side === 'client' && start + chunk.length > this.clientSeen) this.clientSeen = start + chunk.length;
    if (this.ws !== null && this.done) this.onWsData(side, chunk, start);
    else {
      if (!this.handedOver) this.onEvents(side, chunk, start, events);
      if (!this.handedOver && !this.blocked && side === 'client') this.scanClient(chunk, start);
      if (!this.handedOver && !this.blocked) this.onBytes(side, chunk, start);
    }
    // The last `pass` counts: the verdicts' frontier, short of what DLP holds back.
    if (!this.blocked && (hold !== this.dlpHold || this.dlpHold !== Number.POSITIVE_INFINITY)) this.ops.push({ op: 'pass', upTo: Math.min(this.frontier, this.dlpHold) });
    this.blocked = false;
    if (this.ops.length === 0) return NO_OPS;
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  /** A tunnel finding ended the connection: nothing more of this feed is looked at. */
  private blocked = false;

  /** Reports a finding; true when it ends the connection. */
  private tunnel(finding: TunnelFinding): boolean {
    this.ops.push({ op: 'tunnel', finding });
    this.blocked = this.deps.tunnelBlocks(finding);
    return this.blocked;
  }

  /** Held client bytes before `upTo` may go to the server. */
  private pass(upTo: number): void {
    this.frontier = upTo;
    this.ops.push({ op: 'pass', upTo: Math.min(upTo, this.dlpHold) });
  }

  private onEvents(side: Side, chunk: Buffer, start: number, events: readonly ProtocolEvent[]): void {
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      switch (ev.type) {
        case 'http.request':
          this.onRequest(ev);
          if (this.blocked) return;
          break;
        case 'http.request-end':
          // SSH or a carrier in the body stops it before it is released.
          if (this.body.client.from >= 0 && this.showBody('client', chunk, start, ev.end)) return;
          // The next request's head waits for its own verdict.
          if (this.denial === null && !this.done) this.pass(ev.end);
          for (const scan of this.scans.client) {
            if (scan.end < 0) {
              scan.end = ev.end;
              break;
            }
          }
          break;
        case 'http.response': {
          const tunnels = this.deps.ctx.tunnels;
          if (tunnels !== null) {
            const finding = tunnels.onHttpResponse({ status: ev.status, headers: ev.headers, chunked: ev.body.kind === 'chunked' });
            if (finding !== null && this.tunnel(finding)) return;
            if (ev.body.kind !== 'none') this.body.server = { from: ev.end, end: ev.body.kind === 'length' ? ev.end + ev.body.length : -1 };
          }
          if (ev.requestId === null) {
            // A response nobody asked for: the server ran bytes we passed as a body (a GET body
            // it ignored, say) as a request we never decided. The parser refuses the stream (the
            // response does not reach the client); this says why.
            this.ops.push({ op: 'alert', finding: { kind: 'http-desync', evidence: `HTTP ${ev.status} response with no request outstanding`, confidence: 1 }, blocked: true });
            return;
          }
          const req = this.open.get(ev.requestId);
          this.interimResponse = ev.interim;
          if (req !== undefined && ev.interim) {
            // 100 Continue, 103 Early Hints: part of the exchange, listed in its record.
            ((req.l7.informational ??= []) as number[]).push(ev.status);
          }
          if (req !== undefined && !ev.interim && !req.answered) {
            req.answered = true;
            req.l7.status = ev.status;
            this.report(req);
          }
          break;
        }
        case 'http.response-end':
          if (this.body.server.from >= 0 && this.showBody('server', chunk, start, ev.end)) return;
          if (ev.requestId !== null && !this.interimResponse) this.open.delete(ev.requestId);
          this.interimResponse = false;
          if (this.denial !== null && this.open.size === 0) this.answerDenial();
          break;
        case 'http.switch':
          if (ev.kind === 'upgrade' && ev.protocol === 'h2c') {
            // The parser goes on with HTTP/2: so do the verdicts, stream by stream. It gets the
            // rest of these events, and skips the server bytes after the 101 that went out with it.
            const h2 = new Http2Enforcer(this.deps, { client: ev.clientOffset, server: ev.end });
            const serverForwarded = side === 'server' ? Math.max(0, start + chunk.length - ev.end) : 0;
            this.ops.push(...h2.takeOver(events.slice(i + 1), serverForwarded), { op: 'handover', to: h2 });
            this.handedOver = true;
            return;
          }
          // Upgrade (101) or CONNECT (2xx) accepted: from here on the bytes are not HTTP/1.
          // The request that asked for it was decided like any other.
          this.done = true;
          if (this.ws !== null) {
            // A WebSocket DLP scans (screenServer began it): the bytes go on as its holds allow.
            this.frontier = Number.POSITIVE_INFINITY;
            this.ops.push({ op: 'pass', upTo: this.dlpHold });
            if (side === 'server' && start + chunk.length > ev.end) this.wsTunnel('server', chunk, start);
            return;
          }
          this.ops.push({ op: 'done' });
          break;
        default:
          break;
      }
    }
  }

  private onRequest(ev: Http1RequestEvent): void {
    if (this.denial !== null) return; // nothing after a denied request reaches the server
    const { ctx } = this.deps;
    if (ctx.tunnels !== null) {
      const finding = ctx.tunnels.onHttpRequest({ method: ev.method, path: ev.path, host: ev.host, headers: ev.headers, upgrade: ev.upgrade, chunked: ev.body.kind === 'chunked' });
      if (finding !== null && this.tunnel(finding)) return;
      if (ev.body.kind !== 'none') this.body.client = { from: ev.end, end: ev.body.kind === 'length' ? ev.end + ev.body.length : -1 };
    }
    const l7: Record<string, unknown> = { method: ev.method, path: ev.path };
    if (ev.host !== null) l7.host = ev.host;
    if (ev.upgrade !== null) l7.upgrade = ev.upgrade;
    // The Host field, or absent: an absolute-form target's authority is checked against it there.
    const hostField = ev.headers.find(([name]) => name === 'host')?.[1];
    const target = normalizeRequestTarget(ev.method, ev.path, hostField, ctx.http);
    let decision: Decision;
    let badRequest = false;
    if (target.ok) {
      if (target.path !== ev.path) l7.normalizedPath = target.path;
      if (target.host !== undefined) l7.host = target.host;
      const http = new HttpRequestFacts(ev.method, target.path, target.host, ev.headers);
      decision = ctx.policy().decide(requestFacts(ctx.facts, 'http', { http }));
    } else {
      l7.refused = target.reason;
      decision = invalidTargetDecision(ctx.policy());
      badRequest = decision.action === 'deny';
    }
    const req: OpenRequest = { id: ev.id, l7, decision, startedAt: performance.now(), answered: false };
    if (badRequest) req.badRequest = true;
    if (decision.action === 'allow' && target.ok) {
      const cut = this.startDlp(req, ev, target.path, target.host);
      if (cut !== null) req.decision = cut;
    }
    if (req.decision.action === 'allow') {
      this.open.add(req);
      this.pass(Number.POSITIVE_INFINITY); // until its request-end
      return;
    }
    this.pass(ev.start);
    this.denial = req;
    if (this.open.size === 0) this.answerDenial();
  }

  /**
   * DLP for an allowed request, when a sensor applies (else nothing, at no cost): its query
   * string and header values are scanned now; its body as it streams (scanClient). Returns the
   * decision that denies it when the head already hit and must be cut.
   */
  private startDlp(req: OpenRequest, ev: Http1RequestEvent, path: string, host: string | undefined): Decision | null {
    const { ctx } = this.deps;
    const engine = ctx.dlp;
    if (engine === undefined || engine === null) return null;
    const policy = ctx.policy();
    const scope = engine.scope(ctx.facts.direction, policy.dlpSensors, req.decision.dlp !== undefined && req.decision.dlp.length === 0);
    if (scope === null) return null;
    const facts = requestFacts(ctx.facts, 'http', { http: new HttpRequestFacts(ev.method, path, host, ev.headers) });
    const dlp = new RequestDlp(engine, scope, policy, facts, 'http', req.l7, (alert) => this.ops.push({ op: 'dlp', alert }));
    req.dlp = dlp;
    const hits: DlpHit[] = [];
    engine.scanHead(scope, ev.path, ev.headers, hits);
    const cut = hits.length > 0 ? dlp.onHits(hits) : null;
    if (cut !== null) return cut;
    if (dlp.cut !== null) req.decision = dlp.cut; // would-deny (monitor): the record says so
    if (ev.body.kind === 'none') return null;
    const scanner = engine.body(scope, 'request-body', ev.headers, ev.body.kind === 'chunked');
    if (scanner !== null) this.scans.client.push({ req, dlp, scanner, bodyStart: ev.end, pos: ev.end, end: ev.body.kind === 'length' ? ev.end + ev.body.length : -1 });
    return null;
  }

  /** Request bodies: scanned before the read is released; a hit that blocks cuts the request. */
  private scanClient(chunk: Buffer, start: number): void {
    if (this.scans.client.length === 0 && this.dlpHold === Number.POSITIVE_INFINITY) return;
    const held = this.dlpHold;
    this.dlpHold = Number.POSITIVE_INFINITY;
    const found = this.scanBodies('client', chunk, start);
    if (found !== null) return this.cutRequest(found.scan.req, found.cut, Math.min(held, start));
    // The read may end inside a value: hold from where it may begin until it is decided.
    this.dlpHold = holdOf(this.scans.client);
  }

  /**
   * Feeds the body bytes of `chunk` (absolute offset `start`) to the scans of that side; returns
   * the decision that cuts the exchange when a hit must block, and the scan it came from.
   */
  private scanBodies(side: Side, chunk: Buffer, start: number): { cut: Decision; scan: BodyScan } | null {
    const scans = this.scans[side];
    const stop = start + chunk.length;
    while (scans.length > 0) {
      const scan = scans[0]!;
      if (scan.pos >= stop) return null;
      const to = scan.end < 0 ? stop : Math.min(stop, scan.end);
      const hits: DlpHit[] = [];
      if (to > scan.pos) {
        scan.scanner.push(chunk.subarray(Math.max(0, scan.pos - start), to - start), hits);
        scan.pos = to;
      }
      const ended = scan.end >= 0 && scan.pos >= scan.end;
      if (ended) scan.scanner.end(hits);
      const cut = hits.length > 0 ? scan.dlp.onHits(hits) : null;
      if (cut !== null) return { cut, scan };
      if (scan.dlp.cut !== null) scan.req.decision = scan.dlp.cut;
      if (scan.scanner.truncated) scan.dlp.truncated(side === 'client' ? 'request-body' : 'response-body', scan.scanner.scanned);
      if (!ended && !scan.scanner.idle) return null;
      scans.shift(); // done: the budget is spent, it was refused, or the message ended
      if (!ended) return null;
    }
    return null;
  }

  /**
   * A request body hit a sensor that blocks: nothing more of it reaches the server. The bytes
   * of this read are held back (the frontier stays at `chunkStart`); the server's side is reset
   * before the body ends, so it never completes the request. The client gets 403 naming the
   * sensor (or rule) — unless its response has begun, or earlier requests still await theirs:
   * then both sides are reset.
   */
  private cutRequest(req: OpenRequest, decision: Decision, chunkStart: number): void {
    this.ops.push({ op: 'pass', upTo: Math.min(this.frontier, chunkStart) });
    this.frontier = Math.min(this.frontier, chunkStart);
    req.decision = decision;
    this.scans.client.length = 0;
    this.scans.server.length = 0;
    this.blocked = true;
    this.ops.push({ op: 'decide', decision });
    const first = this.open.first();
    if (req.answered || first !== req) {
      if (!req.answered) {
        req.answered = true;
        this.report(req, 'dlp');
      }
      this.ops.push({ op: 'close', how: 'reset', reason: 'dlp' });
      return;
    }
    this.open.delete(req.id);
    req.answered = true;
    req.l7.status = 403;
    this.ops.push({ op: 'send', to: 'client', bytes: http1Forbidden(decision.ruleId) });
    this.report(req);
    this.ops.push({ op: 'close', how: 'reset-server', reason: 'denied' });
  }

  /**
   * Server bytes are screened before they go to the client: a response body that hits a
   * blocking sensor is cut where it stands — nothing of this read reaches the client and both
   * sides are reset (the response has begun; a 403 can no longer replace it).
   */
  screenServer(chunk: Buffer, start: number, events: readonly ProtocolEvent[]): readonly EnforcerOp[] {
    if (this.handedOver) return [];
    if (this.ws !== null) return this.screenWs(this.ws, chunk, start);
    let responseHeaders: HeaderList = [];
    for (const ev of events) {
      if (ev.type === 'http.response') responseHeaders = ev.headers;
      if (ev.type === 'http.switch' && ev.kind === 'upgrade' && ev.protocol === 'websocket') {
        const ws = this.startWs(ev, responseHeaders);
        if (ws !== null) return this.screenWs(ws, chunk, start);
        if (this.blocked) return this.takeOps();
      } else if (ev.type === 'http.response' && !ev.interim && ev.requestId !== null && ev.body.kind !== 'none') {
        const req = this.open.get(ev.requestId);
        if (req?.dlp === undefined) continue;
        const hits: DlpHit[] = [];
        req.dlp.engine.scanHead(req.dlp.scope, null, ev.headers, hits);
        const cut = hits.length > 0 ? req.dlp.onHits(hits) : null;
        if (cut !== null) return this.cutResponse(req, cut);
        const scanner = req.dlp.engine.body(req.dlp.scope, 'response-body', ev.headers, ev.body.kind === 'chunked');
        if (scanner !== null) this.scans.server.push({ req, dlp: req.dlp, scanner, bodyStart: ev.end, pos: ev.end, end: ev.body.kind === 'length' ? ev.end + ev.body.length : -1 });
      } else if (ev.type === 'http.response-end') {
        for (const scan of this.scans.server) {
          if (scan.end < 0) {
            scan.end = ev.end;
            break;
          }
        }
      }
    }
    if (this.scans.server.length > 0) {
      const found = this.scanBodies('server', chunk, start);
      if (found !== null) return this.cutResponse(found.scan.req, found.cut);
    }
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  /**
   * The server accepted a WebSocket Upgrade: when DLP applies to the request that asked for it,
   * its messages are scanned from here on, each direction as the scope's request-body /
   * response-body say. Returns the scan, or null (nothing to scan, or cut at once: `blocked`).
   * What cannot be read fails closed where a hit would block: an extension other than
   * permessage-deflate, or client bytes sent before the 101 (RFC 6455 §4.1: a client waits for
   * it; those bytes are not known to be frames).
   */
  private startWs(ev: Http1SwitchEvent, headers: HeaderList): WsScan | null {
    const req = ev.requestId === null ? undefined : this.open.get(ev.requestId);
    const dlp = req?.dlp;
    if (req === undefined || dlp === undefined) return null;
    const scanClient = dlp.scope.scan.has('request-body');
    const scanServer = dlp.scope.scan.has('response-body');
    if (!scanClient && !scanServer) return null;
    const { maxBytes, maxRatio } = dlp.engine.settings;
    const negotiated = negotiatedExtensions(headers);
    const ext = negotiated.ok ? negotiated.extensions : { client: null, server: null };
    const budget = this.deps.ctx.tunnels?.payloadBudget ?? 0;
    const ws: WsScan = {
      req,
      dlp,
      client: scanClient ? new WebSocketScanner(dlp.scope.sensors, 'request-body', { client: true, deflate: ext.client, maxBytes, maxRatio }, ev.clientOffset) : null,
      server: scanServer ? new WebSocketScanner(dlp.scope.sensors, 'response-body', { client: false, deflate: ext.server, maxBytes, maxRatio }, ev.end) : null,
      clientFrom: ev.clientOffset,
      serverFrom: ev.end,
      tunnelBudget: { client: budget, server: budget },
      wouldDeny: false,
      truncated: false,
    };
    const hits: DlpHit[] = [];
    if (!negotiated.ok) {
      (ws.client ?? ws.server)!.refuse(negotiated.error, hits);
      ws.client?.refuse(negotiated.error, []);
      ws.server?.refuse(negotiated.error, []);
    }
    if (this.clientSeen > ev.clientOffset) ws.client?.refuse(`the client sent ${this.clientSeen - ev.clientOffset} bytes before the server accepted the WebSocket upgrade`, hits);
    const cut = hits.length > 0 ? dlp.onHits(hits) : null;
    if (cut !== null) {
      const ops = this.cutResponse(req, cut); // takes this.ops: evaluated before they are put back
      this.ops.push(...ops);
      this.blocked = true;
      return null;
    }
    this.ws = ws;
    this.afterWsHits(ws, null);
    return ws;
  }

  /** Server bytes of the WebSocket, before they go to the client: a hit that blocks cuts both sides. */
  private screenWs(ws: WsScan, chunk: Buffer, start: number): readonly EnforcerOp[] {
    const scanner = ws.server;
    if (scanner !== null) {
      const hits: DlpHit[] = [];
      scanner.push(chunk, start, hits);
      const cut = hits.length > 0 ? ws.dlp.onHits(hits) : null;
      if (cut !== null) return this.cutResponse(ws.req, cut);
      this.afterWsHits(ws, scanner);
    }
    return this.takeOps();
  }

  /** WebSocket bytes (after the switch): shown to tunnel detection; the client's scanned before they go. */
  private onWsData(side: Side, chunk: Buffer, start: number): void {
    const ws = this.ws!;
    if (this.wsTunnel(side, chunk, start) || side === 'server') return; // the server's were screened
    const scanner = ws.client;
    if (scanner === null) return;
    const held = this.dlpHold;
    this.dlpHold = Number.POSITIVE_INFINITY;
    const hits: DlpHit[] = [];
    scanner.push(chunk, start, hits);
    const cut = hits.length > 0 ? ws.dlp.onHits(hits) : null;
    if (cut !== null) return this.cutWs(ws, cut, Math.min(held, start));
    this.afterWsHits(ws, scanner);
    // The read may end inside a value: hold from where it may begin until it is decided.
    if (ws.dlp.mayCut) this.dlpHold = scanner.holdAt;
  }

  /** What a scan step left for the records: would-deny (monitor) on the connection, a truncated message. */
  private afterWsHits(ws: WsScan, scanner: WebSocketScanner | null): void {
    if (ws.dlp.cut !== null && !ws.wouldDeny) {
      ws.wouldDeny = true;
      this.ops.push({ op: 'decide', decision: ws.dlp.cut });
    }
    if (scanner !== null && scanner.truncatedAt !== null && !ws.truncated) {
      ws.truncated = true;
      ws.dlp.truncated(scanner === ws.client ? 'request-body' : 'response-body', scanner.truncatedAt);
    }
  }

  /**
   * A client WebSocket message hit a sensor that blocks: the bytes from `upTo` on (this read, and
   * what was held for the value's beginning) never reach the server, and both sides are reset
   * (the server never gets the message whole).
   */
  private cutWs(ws: WsScan, decision: Decision, upTo: number): void {
    this.ops.push({ op: 'pass', upTo });
    this.frontier = upTo;
    ws.req.decision = decision;
    this.blocked = true;
    this.ops.push({ op: 'decide', decision }, { op: 'close', how: 'reset', reason: 'dlp' });
  }

  /** Shows a switched side's first payload bytes to tunnel detection (SSH inside the WebSocket); true when that ended the connection. */
  private wsTunnel(side: Side, chunk: Buffer, start: number): boolean {
    const ws = this.ws!;
    const tunnels = this.deps.ctx.tunnels;
    const budget = ws.tunnelBudget[side];
    if (tunnels === null || budget <= 0) return false;
    const from = Math.max(0, (side === 'client' ? ws.clientFrom : ws.serverFrom) - start);
    if (from >= chunk.length) return false;
    const piece = chunk.subarray(from, from + budget);
    ws.tunnelBudget[side] = budget - piece.length;
    const finding = tunnels.onPayload(side, piece);
    return finding !== null && this.tunnel(finding);
  }

  private takeOps(): readonly EnforcerOp[] {
    if (this.ops.length === 0) return NO_OPS;
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  private cutResponse(req: OpenRequest, decision: Decision): readonly EnforcerOp[] {
    req.decision = decision;
    this.scans.client.length = 0;
    this.scans.server.length = 0;
    this.ops.push({ op: 'decide', decision });
    // Already reported at its head (as allowed): then the alert and the connection record say it was cut.
    if (!req.answered) {
      req.answered = true;
      this.report(req, 'dlp');
    }
    this.ops.push({ op: 'close', how: 'reset', reason: 'dlp' });
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  private answerDenial(): void {
    const req = this.denial;
    if (req === null || req.answered) return;
    req.answered = true;
    req.l7.status = req.badRequest === true ? 400 : 403;
    // The connection ends because of this request's rule.
    this.ops.push(
      { op: 'decide', decision: req.decision },
      { op: 'send', to: 'client', bytes: req.badRequest === true ? http1BadRequest(String(req.l7.refused)) : http1Forbidden(req.decision.ruleId) },
    );
    this.report(req);
    this.ops.push({ op: 'close', how: 'fin', reason: 'denied' });
  }

  private report(req: OpenRequest, reason?: string): void {
    const outcome = { protocol: 'http', l7: req.l7, decision: req.decision, durationMs: performance.now() - req.startedAt };
    this.ops.push({ op: 'request', outcome: reason === undefined ? outcome : { ...outcome, reason } });
  }

  /** Shows the body being read on that side to tunnel detection (SSH in a POST, opaque carriers). */
  private onBytes(side: Side, chunk: Buffer, start: number): void {
    if (this.body[side].from >= 0) this.showBody(side, chunk, start, -1);
  }

  /**
   * Shows the body bytes of `chunk` (stream offset `start`) up to `end` (-1: as far as the body
   * goes in this chunk; an end ends the body). Every byte of every body, and nothing past it:
   * SSH can begin anywhere in a body, and the next message's head is no body. True when a
   * finding ended the connection.
   */
  private showBody(side: Side, chunk: Buffer, start: number, end: number): boolean {
    const body = this.body[side];
    const stop = end >= 0 ? end : body.end >= 0 ? Math.min(body.end, start + chunk.length) : start + chunk.length;
    const from = Math.max(body.from, start);
    if (end >= 0) body.from = -1;
    else body.from = Math.max(body.from, stop);
    if (stop <= from) return false;
    const finding = this.deps.ctx.tunnels?.onPayload(side, chunk.subarray(from - start, stop - start)) ?? null;
    return finding !== null && this.tunnel(finding);
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const req of this.open.values()) if (!req.answered) this.report(req, reason === 'fin' ? 'no-response' : reason);
    this.open.clear();
    if (this.denial !== null && !this.denial.answered) {
      this.denial.answered = true;
      this.report(this.denial, reason);
    }
    if (this.ops.length === 0) return NO_OPS;
    const ops = this.ops;
    this.ops = [];
    return ops;
  }
}
