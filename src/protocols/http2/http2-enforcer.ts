// HTTP/2 (RFC 9113) and gRPC enforcement: a verdict per stream. Every frame is routed on its
// own: frames of allowed streams and of the connection pass unchanged; a request's header block
// is held until its verdict; a denied stream never reaches the server — its frames are dropped,
// the client gets 403 (gRPC: grpc-status 7) on that stream, and the other streams go on.
//
// HPACK (RFC 7541) makes dropping a header block delicate: the server's decoder must see every
// dynamic-table change the client's encoder made, or later blocks decode to other fields. The
// choice here, as HAProxy and Envoy do it but only once needed: while no dropped block changed
// the table, allowed blocks pass byte for byte (the tables are in step, nothing is re-encoded).
// From the first dropped block that changed the table on, every client header block toward the
// server is re-encoded from the decoded fields as literals without indexing (never-indexed kept)
// — they reference no table entry, so the server's stale table is never read, and the denied
// request itself is simply not sent. (An earlier design sent the table-changing fields plus a
// `connection` field to make the request malformed; nginx 1.22 ignores that field and executed
// the denied request.) Closing the connection instead would fail every concurrent gRPC call on
// the channel for each denied one. Cost: re-encoded blocks are larger (no compression) on such
// connections only.
//
// A request with a single-valued field twice (`:path`, `:method`, `:authority`, `:scheme`,
// `content-type`, `host`) or `host` differing from `:authority` is refused as ambiguous
// (rule `ambiguous-request`): receivers disagree on which copy counts — grpc-js takes the first
// content-type, so `application/grpc` then `text/plain` is a gRPC call that the gRPC rules must see.
import type { Decision, FlowFacts } from '../../policy/index.js';
import { buildForbiddenResponse, buildGoawayFrame, buildGrpcTrailersOnly, buildHeadersFrames, buildRstStreamFrame, buildWindowUpdateFrame, FrameFlag, FrameType, Http2ErrorCode } from './frames.js';
import type { DlpHit, MessageScanner } from '../../content/dlp/index.js';
import { RequestDlp } from '../http1/request-dlp.js';
import { reencodeHeaderBlock } from './hpack-encoder.js';
import type { Http2HeadersEvent, ProtocolEvent, Side } from '../types.js';
import { NO_OPS, type EnforcerDeps, type EnforcerOp, type RoutingEnforcer } from '../../enforcement/types.js';
import { HttpRequestFacts, invalidTargetDecision } from '../http1/http-facts.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { normalizeRequestTarget } from '../http1/request-target.js';
import { UnitRouter } from '../../enforcement/unit-router.js';

interface StreamState {
  decision: Decision;
  allowed: boolean;
  grpc: boolean;
  l7: Record<string, unknown>;
  startedAt: number;
  reported: boolean;
  /** END_STREAM seen from each side (RFC 9113 §5.1): an allowed stream closed on both sides and reported is forgotten. */
  clientEnded: boolean;
  serverEnded: boolean;
  /** DLP for this stream, when a sensor applies; its body scanners per side (null: not scanned). */
  dlp?: RequestDlp;
  scan?: { client: MessageScanner | null; server: MessageScanner | null };
  /** The response's headers went to the client (a DLP cut then resets instead of answering 403). */
  responseStarted?: boolean;
}

/** A DATA frame held until DLP has scanned it (its bytes may still be arriving). */
interface HeldData {
  side: 'client' | 'server';
  streamId: number;
  start: number;
  end: number;
  flags: number;
  /**
   * Scanned, and a value may end exactly at its end (a card the next byte could still make a
   * 17-digit number): held until the stream's next DATA, its end, or the hold timer decides.
   */
  awaiting?: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * Flood protection (RFC 9113 §10.5: "an endpoint MAY treat activity that is suspicious as a
 * connection error of type ENHANCE_YOUR_CALM"): frames that cost us and the receiver work but
 * carry no request — PING and SETTINGS that must be answered (CVE-2019-9512, -9515), PRIORITY
 * (-9513), RST_STREAM (rapid reset, CVE-2023-44487), empty DATA/HEADERS/CONTINUATION
 * (-9518) — and streams we deny (each is a decision, a 403 and a record) draw on a budget per
 * side: FLOOD_BURST at once, refilled at FLOOD_PER_SECOND. Past it the connection is closed
 * with GOAWAY(ENHANCE_YOUR_CALM) and recorded as `overload`. Ordinary clients stay far below:
 * gRPC keepalive PINGs every 10 s or more, a SETTINGS or two, cancellations in the tens per
 * second; HAProxy (glitches), Envoy (flood limits) and nghttp2 (outbound ACK queue) bound the same.
 */
export const FLOOD_BURST = 1000;
export const FLOOD_PER_SECOND = 500;
/** Memory one stream's state costs (the object, its l7 fields and decision; estimate), for the state budget. */
const STREAM_STATE_BYTES = 320;
const HELD_DATA_BYTES = 64;
const UNIT_BYTES = 48;

/** Tokens spent per suspicious frame; the clock is read only when they run out. */
class FloodMeter {
  private tokens = FLOOD_BURST;
  private refilledAt = performance.now();

  /** Spends one token; false when the budget is spent (a flood). */
  spend(): boolean {
    if (--this.tokens >= 0) return true;
    const now = performance.now();
    this.tokens = Math.min(FLOOD_BURST, this.tokens + Math.floor(((now - this.refilledAt) * FLOOD_PER_SECOND) / 1000));
    this.refilledAt = now;
    return this.tokens >= 0;
  }
}

/**
 * What is kept of a denied stream once its outcome is reported: that its late frames are
 * dropped, nothing else (its l7 fields, decision and timestamps would otherwise live as long as
 * the connection).
 */
const REPORTED_DENIED: StreamState = Object.freeze({ decision: Object.freeze({}) as Decision, allowed: false, grpc: false, l7: Object.freeze({}), startedAt: 0, reported: true, clientEnded: true, serverEnded: true });

/** The refusal of an ambiguous request: denied under protect, would-deny otherwise. */
function ambiguousDecision(mode: string, hash: string): Decision {
  const enforce = mode === 'protect';
  return { action: enforce ? 'deny' : 'allow', verdict: enforce ? 'denied' : 'would-deny', ruleId: 'ambiguous-request', policy: hash, log: true, tier: 'default' };
}

export class Http2Enforcer implements RoutingEnforcer {
  readonly kind = 'route';
  /** The operations of the call in progress (the routers write into it). */
  private ops: EnforcerOp[] = [];
  private readonly toServer: UnitRouter;
  private readonly toClient: UnitRouter;
  private readonly streams = new Map<number, StreamState>();
  /** Client frames of the header block being assembled (HEADERS + CONTINUATION). */
  private blockStart = -1;
  /** A dropped block changed the server-bound HPACK table: client blocks are re-encoded from now on. */
  private reencode = false;
  /** DATA frames held for DLP, in stream order per side. */
  private readonly heldData: HeldData[] = [];
  /**
   * The DATA frame of each side whose payload tunnel detection is being shown (SSH inside a
   * stream): the next stream offset to show (-1: none) and where the frame ends.
   */
  private readonly shown = { client: { streamId: 0, from: -1, end: -1, endStream: false }, server: { streamId: 0, from: -1, end: -1, endStream: false } };
  /** A tunnel finding ended the connection. */
  private cut = false;
  private readonly clientFlood = new FloodMeter();
  private readonly serverFlood = new FloodMeter();
  /**
   * DATA or HEADERS went toward that side since its last PING: its next PING is free. gRPC's BDP
   * estimator pings once per round trip while it receives data (grpc-go: until the window reaches
   * 16 MiB), which in a cluster can be thousands a second; a PING that follows data is that, a
   * PING after PING with nothing in between is a flood (grpc-go's own "ping strikes" rule).
   */
  private readonly dataToward = { client: false, server: false };
  /** Highest client stream id seen (the GOAWAY's last stream). */
  private lastStreamId = 0;
  /** The connection was closed for a flood: nothing more is routed. */
  private flooded = false;

  /**
   * @param start where HTTP/2 begins in each side's stream: 0 for prior knowledge; after the
   *   Upgrade request and the 101 response for h2c (RFC 7540 §3.2).
   */
  constructor(
    private readonly deps: EnforcerDeps,
    start: { client: number; server: number } = { client: 0, server: 0 },
  ) {
    this.toServer = new UnitRouter((bytes) => this.ops.push({ op: 'send', to: 'server', bytes }), { startOffset: start.client });
    // RFC 9113 §3.4: the server's connection preface (SETTINGS) must be the first frame the
    // client sees, so nothing of ours goes before it.
    this.toClient = new UnitRouter((bytes) => this.ops.push({ op: 'send', to: 'client', bytes }), { startOffset: start.server, injectAfterFirstUnit: true });
  }

  /** Hands over the operations collected so far. */
  private take(): readonly EnforcerOp[] {
    if (this.ops.length === 0) return NO_OPS; // most calls: no new array
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  /**
   * h2c: takes over after the 101 — the events the HTTP/1 parser produced after the switch
   * (their bytes arrive through `route`), then the server bytes after the 101 that already went
   * out with it (`serverForwarded`).
   */
  takeOver(events: readonly ProtocolEvent[], serverForwarded: number): readonly EnforcerOp[] {
    this.routeUnits('client', EMPTY, events, false);
    this.toClient.skip(serverForwarded);
    this.toClient.pump();
    return this.take();
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    this.routeUnits(side, chunk, events, forwarded);
    return this.take();
  }

  private routeUnits(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded: boolean): void {
    if (this.flooded) return; // the connection is closing: nothing more goes either way
    const router = side === 'client' ? this.toServer : this.toClient;
    const chunkStart = router.available;
    if (!forwarded) router.push(chunk);
    // Not the bytes that went out before routing began (a server's SETTINGS): no DATA there.
    const inspect = this.deps.ctx.tunnels !== null && !forwarded && !this.cut;
    for (const ev of events) {
      if (ev.side === 'client') this.onClientEvent(ev);
      else this.onServerEvent(ev);
      if (inspect && ev.side === side && ev.type === 'http2.frame' && ev.frameType === FrameType.DATA && !this.cut) this.startShowing(side, chunk, chunkStart, ev.streamId, ev.start + 9, ev.end, ev.endStream);
      if (this.flooded) return;
    }
    if (inspect && !this.cut && this.shown[side].from >= 0) this.showData(side, chunk, chunkStart);
    if (forwarded) router.skip(chunk.length);
    if (this.heldData.length > 0) this.scanHeldData();
    this.toServer.pump();
    this.toClient.pump();
  }

  /**
   * Scans the held DATA frames whose bytes have all arrived, in order; each is forwarded when
   * clean, or dropped with its stream cut when a hit blocks (see cutStream).
   */
  private scanHeldData(): void {
    for (let i = 0; i < this.heldData.length; ) {
      const d = this.heldData[i]!;
      const router = d.side === 'client' ? this.toServer : this.toClient;
      if (d.awaiting === true || router.available < d.end) {
        i++;
        continue;
      }
      this.heldData.splice(i, 1);
      const stream = this.streams.get(d.streamId);
      const scanner = stream?.scan?.[d.side] ?? null;
      if (stream === undefined || !stream.allowed || scanner === null || stream.dlp === undefined) {
        router.decide(d.start, d.end, stream === undefined || stream.allowed ? 'forward' : 'drop');
        continue;
      }
      let payload = router.peek(d.start + 9, d.end);
      if ((d.flags & FrameFlag.PADDED) !== 0 && payload.length > 0) payload = payload.subarray(1, Math.max(1, payload.length - payload[0]!));
      const hits: DlpHit[] = [];
      scanner.push(payload, hits);
      if ((d.flags & FrameFlag.END_STREAM) !== 0) scanner.end(hits);
      const cut = hits.length > 0 ? stream.dlp.onHits(hits) : null;
      if (cut === null) {
        if (stream.dlp.cut !== null) stream.decision = stream.dlp.cut;
        if (scanner.truncated) stream.dlp.truncated(d.side === 'client' ? 'request-body' : 'response-body', scanner.scanned);
        // This frame decided the one before it (if that one waited).
        this.releaseAwaiting(d.side, d.streamId);
        if (scanner.pending && stream.dlp.mayCut) {
          // A value ends at this frame's end, or one byte before: the peer must not get it
          // before the next byte says whether it is one (README: the frame-end window).
          d.awaiting = true;
          this.heldData.splice(i++, 0, d);
          continue;
        }
        router.decide(d.start, d.end, 'forward');
        continue;
      }
      router.decide(d.start, d.end, 'drop');
      this.creditDropped(d.side, d.end - d.start - 9);
      let at = d.start;
      for (const h of this.heldData) if (h.streamId === d.streamId && h.side === d.side && h.start < at) at = h.start;
      this.cutStream(d.streamId, stream, cut, d.side, at);
    }
    // A frame that awaits more of a body that has already ended (its trailers came in the same
    // read, before it was scanned): decided now.
    if (this.heldData.length > 0) this.settleAwaiting((d) => this.bodyEnded(d));
  }

  /** The side's body of that frame's stream ended, and no DATA of it is still to be scanned. */
  private bodyEnded(d: HeldData): boolean {
    const s = this.streams.get(d.streamId);
    if (s === undefined || !(d.side === 'client' ? s.clientEnded : s.serverEnded)) return false;
    return !this.heldData.some((h) => h !== d && h.awaiting !== true && h.streamId === d.streamId && h.side === d.side);
  }

  /** The held frame of that stream and side that awaited its next DATA goes on. */
  private releaseAwaiting(side: 'client' | 'server', streamId: number): void {
    for (let i = 0; i < this.heldData.length; i++) {
      const h = this.heldData[i]!;
      if (h.awaiting !== true || h.side !== side || h.streamId !== streamId) continue;
      this.heldData.splice(i, 1);
      (side === 'client' ? this.toServer : this.toClient).decide(h.start, h.end, 'forward');
      return;
    }
  }

  /** DLP holds a frame that awaits its stream's next bytes (the filter arms the hold timer). */
  get dlpHolding(): boolean {
    for (const d of this.heldData) if (d.awaiting === true) return true;
    return false;
  }

  /**
   * The hold timer fired, the stream ended without more DATA (trailers), or its sender reset it:
   * each frame that awaited its stream's next bytes is decided as if the body ended there (a
   * value at its end is a hit: fail closed), and goes on or is cut.
   */
  releaseHold(): readonly EnforcerOp[] {
    this.settleAwaiting(() => true);
    this.toServer.pump();
    this.toClient.pump();
    return this.take();
  }

  private settleAwaiting(which: (d: HeldData) => boolean): void {
    for (let i = 0; i < this.heldData.length; ) {
      const d = this.heldData[i]!;
      if (d.awaiting !== true || !which(d)) {
        i++;
        continue;
      }
      this.heldData.splice(i, 1);
      const stream = this.streams.get(d.streamId);
      const scanner = stream?.scan?.[d.side] ?? null;
      const router = d.side === 'client' ? this.toServer : this.toClient;
      const hits: DlpHit[] = [];
      scanner?.settle(hits);
      const cut = hits.length > 0 && stream?.dlp !== undefined ? stream.dlp.onHits(hits) : null;
      if (cut === null || stream === undefined) {
        router.decide(d.start, d.end, stream === undefined || stream.allowed ? 'forward' : 'drop');
        continue;
      }
      router.decide(d.start, d.end, 'drop');
      this.creditDropped(d.side, d.end - d.start - 9);
      this.cutStream(d.streamId, stream, cut, d.side, d.start);
    }
  }

  /**
   * A DATA frame begins on `side`: what is left of the previous one in this chunk is shown
   * first (frames of a side come in order), then this one's payload from here on.
   */
  private startShowing(side: Side, chunk: Buffer, chunkStart: number, streamId: number, from: number, end: number, endStream: boolean): void {
    if (this.shown[side].from >= 0) this.showData(side, chunk, chunkStart);
    if (this.cut) return;
    const stream = this.streams.get(streamId);
    // A denied stream's DATA is dropped: nothing of it reaches the other side.
    if (stream !== undefined && !stream.allowed) return;
    const shown = this.shown[side];
    shown.streamId = streamId;
    shown.from = from;
    shown.end = end;
    shown.endStream = endStream;
    this.showData(side, chunk, chunkStart);
  }

  /** Shows the current DATA frame's payload bytes that are in `chunk` to tunnel detection. */
  private showData(side: Side, chunk: Buffer, chunkStart: number): void {
    const shown = this.shown[side];
    const stop = Math.min(shown.end, chunkStart + chunk.length);
    const from = Math.max(shown.from, chunkStart);
    const ends = stop >= shown.end;
    shown.from = ends ? -1 : Math.max(from, stop);
    if (stop <= from && !(ends && shown.endStream)) return;
    const finding = this.deps.ctx.tunnels?.onStreamData(side, shown.streamId, chunk.subarray(from - chunkStart, Math.max(from, stop) - chunkStart), ends && shown.endStream) ?? null;
    if (finding === null) return;
    this.ops.push({ op: 'tunnel', finding });
    if (this.deps.tunnelBlocks(finding)) this.cut = true;
  }

  /** The peer spent connection-level flow-control window on DATA its counterpart never sees: give it back. */
  private creditDropped(side: 'client' | 'server', length: number): void {
    if (length <= 0) return;
    (side === 'client' ? this.toClient : this.toServer).inject(buildWindowUpdateFrame(0, length));
  }

  /**
   * A DLP hit that blocks, on an allowed stream: the server's stream is reset (RST_STREAM CANCEL)
   * before its body ends, so the server never completes the request; the client gets 403 (gRPC:
   * grpc-status 7) naming the sensor when no response has begun, else its stream is reset. The
   * stream's frames still held or still to come are dropped; the connection's other streams go on.
   */
  private cutStream(streamId: number, stream: StreamState, cut: Decision, side: 'client' | 'server', at = 0): void {
    stream.allowed = false;
    stream.decision = cut;
    for (let i = this.heldData.length - 1; i >= 0; i--) {
      const d = this.heldData[i]!;
      if (d.streamId !== streamId) continue;
      this.heldData.splice(i, 1);
      (d.side === 'client' ? this.toServer : this.toClient).decide(d.start, d.end, 'drop');
      this.creditDropped(d.side, d.end - d.start - 9);
    }
    // In place of the dropped frame (not before units of this read still to be routed: the preface).
    this.toServer.inject(buildRstStreamFrame(streamId, Http2ErrorCode.CANCEL), side === 'client' ? at : 0);
    if (side === 'client' && stream.responseStarted !== true) {
      this.toClient.inject(
        stream.grpc
          ? buildGrpcTrailersOnly(streamId, 7, `denied by sidewall rule ${cut.ruleId}`)
          : buildForbiddenResponse(streamId, `denied by sidewall (rule ${cut.ruleId})\n`, [['x-sidewall-rule', cut.ruleId]]),
      );
      // RFC 9113 §8.1: a complete response while the request is still being sent; the client stops sending.
      this.toClient.inject(buildRstStreamFrame(streamId, Http2ErrorCode.NO_ERROR));
      stream.l7.status = stream.grpc ? 200 : 403;
      if (stream.grpc) stream.l7.grpcStatus = 7;
    } else {
      this.toClient.inject(buildRstStreamFrame(streamId, Http2ErrorCode.CANCEL));
    }
    this.report(streamId, stream.reported ? undefined : 'dlp');
  }

  /** DLP of a trailer block (RFC 9113 §8.1): scanned as header fields; true when a hit cuts the stream (its decision is the cut). */
  private trailersHit(stream: StreamState, ev: Http2HeadersEvent): boolean {
    const dlp = stream.dlp!;
    const hits: DlpHit[] = [];
    dlp.engine.scanHead(dlp.scope, null, ev.headers, hits);
    const cut = hits.length > 0 ? dlp.onHits(hits) : null;
    if (cut === null) return false;
    stream.decision = cut;
    return true;
  }

  private onClientEvent(ev: ProtocolEvent): void {
    switch (ev.type) {
      case 'http2.preface':
        this.toServer.add(ev.start, ev.end, 'forward');
        break;
      case 'http2.frame': {
        this.suspicious('client', ev);
        if (ev.streamId > this.lastStreamId && (ev.frameType === FrameType.HEADERS)) this.lastStreamId = ev.streamId;
        const stream = ev.streamId === 0 ? undefined : this.streams.get(ev.streamId);
        // The body ended without more DATA (trailers): what awaited the next bytes is decided.
        if (ev.endStream && ev.frameType !== FrameType.DATA && this.heldData.length > 0) this.settleAwaiting((d) => d.side === 'client' && d.streamId === ev.streamId);
        if (stream !== undefined && ev.endStream && stream.allowed) {
          stream.clientEnded = true;
          // A trailer block (HEADERS) is forgotten after its headers event: DLP scans it with the stream's state.
          if (ev.frameType === FrameType.DATA) this.forgetIfClosed(ev.streamId, stream);
        }
        if (ev.frameType === FrameType.HEADERS || ev.frameType === FrameType.CONTINUATION) {
          if (ev.frameType === FrameType.HEADERS) this.blockStart = ev.start;
          // Trailers of a decided stream follow that stream's verdict (held to be re-encoded once
          // re-encoding started); a new request waits for its own.
          // Trailers of a stream DLP scans are held for their scan too.
          this.toServer.add(ev.start, ev.end, stream === undefined || (stream.allowed && (this.reencode || stream.dlp !== undefined)) ? 'hold' : stream.allowed ? 'forward' : 'drop');
        } else if (stream !== undefined && !stream.allowed) {
          this.toServer.add(ev.start, ev.end, 'drop');
          // The client spent connection-level flow-control window on DATA the server never sees.
          if (ev.frameType === FrameType.DATA && ev.length > 0) this.toClient.inject(buildWindowUpdateFrame(0, ev.length));
        } else if (ev.frameType === FrameType.DATA && stream?.scan?.client != null && !stream.scan.client.idle) {
          this.toServer.add(ev.start, ev.end, 'hold');
          this.heldData.push({ side: 'client', streamId: ev.streamId, start: ev.start, end: ev.end, flags: ev.flags });
        } else {
          this.toServer.add(ev.start, ev.end, 'forward');
        }
        break;
      }
      case 'http2.headers': {
        if (ev.role === 'request' && !this.streams.has(ev.streamId)) {
          this.onRequest(ev);
          break;
        }
        // Trailers (or a block on a stream we do not hold): what the frame routing decided.
        const stream = this.streams.get(ev.streamId);
        const blockStart = this.blockStart >= 0 ? this.blockStart : ev.start;
        if (stream === undefined || !stream.allowed) {
          // No request of ours on that stream (a client PUSH_PROMISE, a block on a stream long
          // forgotten): held by the frame routing, dropped here rather than held forever.
          if (stream === undefined) this.toServer.decide(blockStart, ev.end, 'drop');
          if (ev.mutatesTable) this.reencode = true;
        } else {
          if (stream.dlp !== undefined && this.trailersHit(stream, ev)) {
            this.toServer.decide(blockStart, ev.end, 'drop');
            if (ev.mutatesTable) this.reencode = true;
            this.cutStream(ev.streamId, stream, stream.decision, 'client', blockStart);
          } else if (this.reencode) {
            this.toServer.decide(blockStart, ev.end, 'drop');
            this.toServer.inject(buildHeadersFrames(ev.streamId, reencodeHeaderBlock(ev.fields), { endStream: ev.endStream }), blockStart);
          } else this.toServer.decide(blockStart, ev.end, 'forward');
          if (stream.allowed) this.forgetIfClosed(ev.streamId, stream);
        }
        break;
      }
      case 'http2.rst-stream':
        if (this.heldData.length > 0) this.settleAwaiting((d) => d.side === 'client' && d.streamId === ev.streamId);
        this.report(ev.streamId, 'client-reset');
        break;
      default:
        break;
    }
  }

  private onRequest(ev: Http2HeadersEvent): void {
    const { ctx } = this.deps;
    // The same target normalisation as HTTP/1 (request-target.ts): rules see the path servers resolve.
    const method = ev.method ?? '';
    const hostField = ev.authority ?? ev.headers.find(([name]) => name === 'host')?.[1];
    const target = normalizeRequestTarget(method, method === 'CONNECT' ? (ev.authority ?? '') : (ev.path ?? ''), hostField, ctx.http);
    const http = new HttpRequestFacts(method, target.ok ? target.path : (ev.path ?? ''), target.ok ? target.host : undefined, ev.headers);
    const protocol = ev.grpc !== null ? 'grpc' : 'http2';
    const l7: Record<string, unknown> = { method: http.method, path: ev.path ?? '' };
    if (ev.authority !== null) l7.authority = ev.authority;
    if (target.ok && target.path !== ev.path && method !== 'CONNECT') l7.normalizedPath = target.path;
    if (!target.ok) l7.refused = target.reason;
    if (ev.grpc !== null) {
      l7.service = ev.grpc.service;
      l7.grpcMethod = ev.grpc.method;
    }
    const facts = ev.grpc !== null ? { http, grpc: { service: ev.grpc.service, method: ev.grpc.method } } : { http };
    const policy = ctx.policy();
    const decision = ev.ambiguous !== null ? ambiguousDecision(policy.mode, policy.hash) : !target.ok ? invalidTargetDecision(policy) : policy.decide(requestFacts(ctx.facts, protocol, facts));
    if (ev.ambiguous !== null) l7.ambiguous = ev.ambiguous;
    const state: StreamState = { decision, allowed: decision.action === 'allow', grpc: ev.grpc !== null, l7, startedAt: performance.now(), reported: false, clientEnded: ev.endStream, serverEnded: false };
    if (state.allowed && ev.ambiguous === null && target.ok) this.startDlp(state, ev, requestFacts(ctx.facts, protocol, facts), protocol);
    const allowed = state.allowed;
    this.streams.set(ev.streamId, state);
    const blockStart = this.blockStart >= 0 ? this.blockStart : ev.start;
    if (allowed) {
      if (!this.reencode) {
        this.toServer.decide(blockStart, ev.end, 'forward');
        return;
      }
      this.toServer.decide(blockStart, ev.end, 'drop');
      this.toServer.inject(buildHeadersFrames(ev.streamId, reencodeHeaderBlock(ev.fields), { endStream: ev.endStream }), blockStart);
      return;
    }
    this.toServer.decide(blockStart, ev.end, 'drop');
    // The server's table now lacks what this block added: it must never be read again.
    if (ev.mutatesTable) this.reencode = true;
    // A denied stream costs a decision, a 403 and a record: the flood budget (rapid denied streams).
    if (!this.clientFlood.spend()) this.flood('client', 'denied-streams');
    this.toClient.inject(
      state.grpc
        ? buildGrpcTrailersOnly(ev.streamId, 7, `denied by sidewall rule ${decision.ruleId}`)
        : buildForbiddenResponse(ev.streamId, `denied by sidewall (rule ${decision.ruleId})\n`, [['x-sidewall-rule', decision.ruleId]]),
    );
    l7.status = state.grpc ? 200 : 403;
    if (state.grpc) l7.grpcStatus = 7;
    this.report(ev.streamId);
  }

  /**
   * DLP for an allowed stream when a sensor applies: the request's path (query) and header values
   * now — a hit that blocks denies the stream as a rule would — and its DATA as it streams.
   */
  private startDlp(state: StreamState, ev: Http2HeadersEvent, facts: FlowFacts, protocol: string): void {
    const { ctx } = this.deps;
    const engine = ctx.dlp;
    if (engine === undefined || engine === null) return;
    const policy = ctx.policy();
    const scope = engine.scope(ctx.facts.direction, policy.dlpSensors, state.decision.dlp !== undefined && state.decision.dlp.length === 0);
    if (scope === null) return;
    const dlp = new RequestDlp(engine, scope, policy, facts, protocol, state.l7, (alert) => this.ops.push({ op: 'dlp', alert }));
    state.dlp = dlp;
    const hits: DlpHit[] = [];
    engine.scanHead(scope, ev.path, ev.headers, hits);
    const cut = hits.length > 0 ? dlp.onHits(hits) : null;
    if (cut !== null) {
      state.decision = cut;
      state.allowed = false;
      return;
    }
    if (dlp.cut !== null) state.decision = dlp.cut;
    state.scan = { client: ev.endStream ? null : engine.body(scope, 'request-body', ev.headers, false), server: null };
  }

  private onServerEvent(ev: ProtocolEvent): void {
    switch (ev.type) {
      case 'http2.frame': {
        this.suspicious('server', ev);
        const stream = ev.streamId === 0 ? undefined : this.streams.get(ev.streamId);
        if (ev.endStream && ev.frameType !== FrameType.DATA && this.heldData.length > 0) this.settleAwaiting((d) => d.side === 'server' && d.streamId === ev.streamId);
        if (ev.frameType === FrameType.DATA && stream !== undefined && stream.allowed && stream.scan?.server != null && !stream.scan.server.idle) {
          this.toClient.add(ev.start, ev.end, 'hold');
          this.heldData.push({ side: 'server', streamId: ev.streamId, start: ev.start, end: ev.end, flags: ev.flags });
          if (ev.endStream) stream.serverEnded = true;
          break;
        }
        // The server's answers on a denied stream (its reset of the malformed request) are ours to swallow.
        this.toClient.add(ev.start, ev.end, stream !== undefined && !stream.allowed ? 'drop' : 'forward');
        if (stream !== undefined && !stream.allowed && stream.dlp !== undefined && ev.frameType === FrameType.DATA) this.creditDropped('server', ev.length);
        if (stream !== undefined && ev.endStream && stream.allowed) {
          // Its trailers (gRPC) or last DATA: reported by the headers event that follows, or already.
          // A trailer block (HEADERS) is forgotten after its headers event: DLP scans it with the stream's state.
          stream.serverEnded = true;
          if (ev.frameType === FrameType.DATA) this.forgetIfClosed(ev.streamId, stream);
        }
        break;
      }
      case 'http2.headers': {
        const stream = this.streams.get(ev.streamId);
        if (stream === undefined || !stream.allowed) break;
        if (ev.role === 'response' && stream.dlp !== undefined) {
          const hits: DlpHit[] = [];
          stream.dlp.engine.scanHead(stream.dlp.scope, null, ev.headers, hits);
          const cut = hits.length > 0 ? stream.dlp.onHits(hits) : null;
          if (cut !== null) {
            // The header block is routed as the frames' units decided ('forward'): too late to
            // hold it; the stream is reset on both sides right behind it.
            stream.responseStarted = true;
            this.cutStream(ev.streamId, stream, cut, 'server');
            break;
          }
          stream.responseStarted = true;
          if (!ev.endStream && stream.scan !== undefined) stream.scan.server = stream.dlp.engine.body(stream.dlp.scope, 'response-body', ev.headers, false);
        }
        if (ev.role === 'response') {
          stream.l7.status = ev.status;
          if (ev.grpcStatus !== null) stream.l7.grpcStatus = ev.grpcStatus;
          if (!stream.grpc || ev.endStream) this.report(ev.streamId);
        } else if (ev.role === 'trailers') {
          if (ev.grpcStatus !== null) stream.l7.grpcStatus = ev.grpcStatus;
          // As for the response's header block, routed already: the stream is reset right behind it.
          if (stream.dlp !== undefined && this.trailersHit(stream, ev)) {
            this.cutStream(ev.streamId, stream, stream.decision, 'server');
            break;
          }
          this.report(ev.streamId);
        }
        if (ev.endStream && stream.allowed) this.forgetIfClosed(ev.streamId, stream);
        break;
      }
      case 'http2.rst-stream':
        if (this.heldData.length > 0) this.settleAwaiting((d) => d.side === 'server' && d.streamId === ev.streamId);
        this.report(ev.streamId, 'server-reset');
        break;
      default:
        break;
    }
  }

  private report(streamId: number, reason?: string): void {
    const s = this.streams.get(streamId);
    if (s === undefined || s.reported) return;
    s.reported = true;
    const outcome = { protocol: s.grpc ? 'grpc' : 'http2', l7: s.l7, decision: s.decision, durationMs: performance.now() - s.startedAt };
    this.ops.push({ op: 'request', outcome: reason === undefined ? outcome : { ...outcome, reason } });
    // Keep denied streams (their late frames are dropped), as a shared marker; forget allowed
    // ones that were reset or ended on both sides.
    if (!s.allowed) this.streams.set(streamId, REPORTED_DENIED);
    else if (reason !== undefined) this.streams.delete(streamId);
    else this.forgetIfClosed(streamId, s);
  }

  /**
   * An allowed stream that is reported and closed on both sides can send nothing more that
   * needs its state: frames on an unknown stream are forwarded as an allowed stream's would be,
   * and a HEADERS on it would be a new request, decided afresh.
   */
  private forgetIfClosed(streamId: number, s: StreamState): void {
    // Not while DLP still holds some of its DATA: that must be scanned with the stream's state.
    if (s.reported && s.clientEnded && s.serverEnded && (s.dlp === undefined || !this.heldData.some((d) => d.streamId === streamId))) this.streams.delete(streamId);
  }

  /** Bytes of `side` the routers hold: a header block awaiting its verdict, DATA held for DLP, a partial frame. */
  heldOf(side: Side): number {
    return (side === 'client' ? this.toServer : this.toClient).heldSize;
  }

  /** Whether held bytes of `side` are views of its read buffer (the relay must not reuse it). */
  holdsViewsOf(side: Side): boolean {
    return (side === 'client' ? this.toServer : this.toClient).holdsViews;
  }

  /** After a read of `side`: small held views are copied out so the relay can reuse its buffer. */
  compact(side: Side): void {
    (side === 'client' ? this.toServer : this.toClient).compact();
  }

  /** Memory the enforcer keeps for the connection (estimate): streams, DLP-held frames, pending units. */
  get stateBytes(): number {
    return this.streams.size * STREAM_STATE_BYTES + this.heldData.length * HELD_DATA_BYTES + (this.toServer.pendingUnits + this.toClient.pendingUnits) * UNIT_BYTES;
  }

  /**
   * A side spent its flood budget: GOAWAY(ENHANCE_YOUR_CALM) to a flooding client, and the
   * connection is reset (the server never sees the rest). Recorded as `overload`.
   */
  private flood(side: Side, what: string): void {
    if (this.flooded) return;
    this.flooded = true;
    // The record's reason, in the form of `parser-error:CODE`: overload:http2-flood:client-ping.
    const detail = `overload:http2-flood:${side}-${what}`;
    // Both sides are reset, not ended: a flooding client that got our FIN could go on sending and
    // have us read and discard at wire speed. The GOAWAY goes just before (best effort: a reset
    // discards what the client has not yet taken).
    if (side === 'client') {
      this.toClient.inject(buildGoawayFrame(this.lastStreamId, Http2ErrorCode.ENHANCE_YOUR_CALM, 'flood'));
      this.toClient.pump();
    }
    this.ops.push({ op: 'close', how: 'reset', reason: detail });
  }

  /** Counts a frame that costs work and carries no request (see FLOOD_BURST). */
  private suspicious(side: Side, ev: { frameType: number; flags: number; length: number; endStream: boolean }): void {
    const t = ev.frameType;
    let what: string | null = null;
    if (t === FrameType.DATA || t === FrameType.HEADERS) this.dataToward[side === 'client' ? 'server' : 'client'] = true;
    if (t === FrameType.PING || t === FrameType.SETTINGS) {
      if ((ev.flags & FrameFlag.ACK) !== 0) return;
      if (t === FrameType.PING && this.dataToward[side]) {
        this.dataToward[side] = false;
        return;
      }
      what = t === FrameType.PING ? 'ping' : 'settings';
    } else if (t === FrameType.PRIORITY) what = 'priority';
    else if (t === FrameType.RST_STREAM) what = 'rst-stream';
    else if (ev.length === 0 && !ev.endStream && (t === FrameType.DATA || t === FrameType.HEADERS || t === FrameType.CONTINUATION)) what = 'empty-frames';
    if (what !== null && !(side === 'client' ? this.clientFlood : this.serverFlood).spend()) this.flood(side, what);
  }

  flush(): readonly EnforcerOp[] {
    this.toServer.flushAll();
    this.toClient.flushAll();
    return this.take();
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const id of this.streams.keys()) this.report(id, reason === 'fin' ? 'no-response' : reason);
    return this.take();
  }
}
