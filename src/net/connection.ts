// One proxied TCP connection: the accepted client socket and the socket we dial to its original
// destination. Bytes are relayed unchanged in both directions with backpressure; FIN is
// propagated as FIN (half-close) and RST as RST. Socket handlers are module-level functions,
// registered on every socket alike, that find their connection through a symbol property of the
// socket: a connection costs no closures. Idle connections are found by one sweep over all of
// them (ProxyServer), not by a timer per socket re-armed on every read and write.
//
// Each socket reads into a buffer of its own that is reused from one read to the next (`onread`),
// instead of a fresh 64 KiB allocation per read: bytes then cost no allocation, no page faults on
// new memory and no garbage. A buffer is reused only when nothing still refers to its last read:
// the write to the other socket completed at once, and the L7 filter keeps no view of it;
// otherwise the next read gets a new buffer.
//
// Once nothing needs to see a connection's bytes any more (the filter passes it through and no
// capture taps it), the relay moves to the kernel: splice(2) between the two sockets in the addon
// (relay-splice.ts), which reports FIN in both directions, or the first error, back here; the
// byte counts of records, the idle sweep and the write-queue budget include what it moved. A
// capture that joins takes the connection back to this relay, bytes in flight included.
import { connect, Socket } from 'node:net';
import type { CaptureGap, CaptureTap } from '../capture/tap.js';
import type { ConnectionFilter } from '../enforcement/connection-filter.js';
import type { Admission } from '../enforcement/gate.js';
import type { ConnectionFacts, DlpAlert, FilterSink, RequestOutcome } from '../enforcement/types.js';
import type { Decision } from '../policy/index.js';
import type { TunnelFinding } from '../tunnels/types.js';
import { useReadBuffers } from './accepted-socket-onread.js';
import { ReadBufferPool, releasePages } from './read-buffer-pool.js';
import { SpliceRelay, type SpliceEnd, type TakenBack } from './relay-splice.js';
import { connectMarked, endedByReset, resetSocket } from './socket-mark.js';
import type { Destination } from './original-dst.js';

export type Direction = 'ingress' | 'egress' | 'intra';

/** Why a connection ended; becomes the flow record's `reason`. */
export type CloseReason =
  | 'closed' // both sides finished normally
  | 'client-reset'
  | 'server-reset'
  | 'connect-refused'
  | 'connect-failed'
  | 'connect-timeout'
  | 'idle-timeout'
  | 'limit'
  | 'loop'
  | 'no-original-dst'
  | 'denied'
  | 'internal-error'
  | 'drain'
  | 'head-timeout' // bytes held for a verdict too long, or arriving too slowly (slowloris)
  | 'overload'; // refused or shed to stay within the memory limit (held bytes, write queues, resident memory)

export interface ConnectionSummary {
  flowId: string;
  direction: Direction;
  src: Destination;
  dst: Destination;
  startedAt: number; // performance.now() at accept
  durationMs: number;
  /** src → dst and dst → src byte counts. */
  bytesSent: number;
  bytesReceived: number;
  reason: CloseReason;
  error?: string;
  /** Addresses with workload identities, when the connection got as far as admission. */
  facts?: ConnectionFacts;
  /** The accept-time decision. */
  l4?: Decision | 'needs-l7';
  /** Ids of the packet captures this connection is in. */
  captures?: string[];
  /** The bytes of this connection a capture lacks, by capture id (those with a gap only). */
  captureGaps?: ReadonlyMap<string, CaptureGap>;
}

export interface ConnectionTimeouts {
  connectMs: number;
  idleMs: number;
  /** How long client bytes wait for protocol detection before the connection is treated as opaque TCP. */
  detectMs: number;
  /** SO_MARK for upstream dials (the proxy's identity in the pod's iptables); undefined: unmarked. */
  upstreamMark?: number;
}

/**
 * What all connections may hold together, and each alone (derived from the memory limit:
 * memory-limits.ts). `held` is the running total, kept exact by every connection as its filter's
 * held bytes change.
 */
export interface RelayBudget {
  held: number;
  /** Held bytes of one connection (each side) past which that side is paused. */
  readonly heldPerConnection: number;
  /** All connections' held bytes past which connections adding more are paused (and the oldest shed). */
  readonly heldTotal: number;
  /** Bytes held for a verdict may wait this long (a request head, a handshake, a greeting). */
  readonly headTimeoutMs: number;
  /** ...and, after the first second, must arrive at least this fast on average (slowloris). */
  readonly minHeadBytesPerSecond: number;
  /** Parser state (HTTP/2 HPACK tables, streams, header blocks) of all connections: the running total. */
  state: number;
  /** One connection's parser state past which it is closed (`overload`). */
  readonly statePerConnection: number;
  /** All connections' parser state past which those keeping the most are closed (ProxyServer). */
  readonly stateTotal: number;
}

/** Parser state every connection may keep without it counting in the state budget (see afterFilter). */
export const STATE_INCLUDED = 16 * 1024;

/** A closed peer gets this long to take our FIN and close its side too, then its socket goes. */
export const LINGER_MS = 5000;

export interface ConnectionObserver {
  onOpen?(conn: ProxiedConnection): void;
  onClose(summary: ConnectionSummary, filter: ConnectionFilter | null): void;
  onRequest?(conn: ProxiedConnection, outcome: RequestOutcome): void;
  onAlert?(conn: ProxiedConnection, finding: TunnelFinding, blocked: boolean): void;
  /** The L7 layer decided the whole connection (protocol-level verdict); reported only while a capture tap is on. */
  onDecision?(conn: ProxiedConnection, decision: Decision): void;
  /** A DLP hit (an `alert` record with a `dlp` object). */
  onDlp?(conn: ProxiedConnection, alert: DlpAlert): void;
  onInternalError?(conn: ProxiedConnection, err: unknown): void;
}

/** Ends a socket with RST, whatever its state (resetSocket: also after end(), bytes still queued). */
const reset = resetSocket;

/** The connection a socket belongs to, for the shared socket handlers. */
const CONNECTION = Symbol('sidewall.connection');

interface ConnectionSocket extends Socket {
  [CONNECTION]: ProxiedConnection;
}

/** Read buffers: Node's own read size unless the memory limit asks for less; 128 kept for new connections. */
let readBuffers = new ReadBufferPool(64 * 1024, 128);

/** The idle sweep's turn for the pool: pages of buffers parked while no connection took one go back. */
export function releaseIdleReadBuffers(): number {
  return readBuffers.releaseIdle();
}

/** Sets the read buffer size (once, at start, from the memory limit). */
export function setReadBufferBytes(bytes: number): void {
  if (bytes !== readBuffers.bufferBytes) readBuffers = new ReadBufferPool(bytes, 128);
}

/** Whether verdicted connections move to the kernel relay (SIDEWALL_SPLICE=0 keeps them here: A/B and debugging). */
let spliceEnabled = process.env.SIDEWALL_SPLICE !== '0';

/** Turns the kernel relay on or off for connections that become eligible from now on (tests). */
export function setSpliceEnabled(on: boolean): void {
  spliceEnabled = on;
}

/** Handed from a read callback to the buffer generator Node calls right after it, for the same socket. */
let nextReadBuffer: Buffer | undefined;

function isReset(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE';
}

/** A socket's EOF that was an error (endedByReset), handled as its 'error' event would be. */
class StreamCutError extends Error {
  readonly code: string;
  constructor(code: string) {
    super(`${code} at end of stream`);
    this.name = 'StreamCutError';
    this.code = code;
  }
}

export class ProxiedConnection implements FilterSink {
  private upstream: Socket | undefined;
  /** The L7 firewall of this connection; null once it passes bytes through untouched. */
  private filter: ConnectionFilter | null = null;
  private filterRef: ConnectionFilter | null = null;
  /** Facts and accept-time decision, set by the listener before start() or refuse(). */
  admission: Admission | undefined;
  private clientEnded = false;
  private detectTimer: NodeJS.Timeout | undefined;
  /** DLP holds bytes that may begin a value: at most `dlp.holdMs`, then they are decided (ConnectionFilter.releaseTail). */
  private tailTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private reason: CloseReason | undefined;
  private errorText: string | undefined;
  private closedSockets = 0;
  private finished = false;
  private connected = false;
  /** Idle sweep state: bytes read on both sockets at the last sweep, and since when they stood still. */
  private bytesAtLastCheck = 0;
  private idleSince = 0;
  /** The read buffers' pages went back to the kernel at a sweep that found nothing moved (until something does). */
  private pagesReleased = false;
  /** The buffer each socket reads into next (known once it has read): recycled at close. */
  private clientReadBuffer: Buffer | undefined;
  private upstreamReadBuffer: Buffer | undefined;
  /** This connection's share of budget.held, and since when (performance.now()) it has held any. */
  private heldAccounted = 0;
  /** This connection's share of budget.state. */
  private stateAccounted = 0;
  heldSince = 0;
  /** Bytes read on both sockets when holding began, less those held (for the minimum rate). */
  private readAtHoldStart = 0;
  /** A side paused because the held-bytes budget (not backpressure) said so. */
  private pausedForBudget = false;
  /** When we sent our FIN to the client after the server went (LINGER_MS). */
  private lingerSince = 0;
  private upstreamEnded = false;
  /** The kernel relay, once the connection moved there (kept after it ended: its byte counts). */
  private splice: SpliceRelay | null = null;
  /** Eligible for the kernel relay once both write queues are empty. */
  private spliceWanted = false;

  constructor(
    readonly flowId: string,
    readonly direction: Direction,
    private readonly client: Socket,
    readonly src: Destination,
    readonly dst: Destination,
    private readonly startedAt: number,
    private readonly timeouts: ConnectionTimeouts,
    private readonly observer: ConnectionObserver,
    private readonly budget: RelayBudget,
  ) {
    (client as ConnectionSocket)[CONNECTION] = this;
    client.on('error', ProxiedConnection.clientError);
    client.on('close', ProxiedConnection.socketClose);
  }

  /** Dials the original destination; the client's bytes wait in the kernel until it answers. */
  start(filter: ConnectionFilter | null): void {
    this.filter = filter;
    this.filterRef = filter;
    this.client.pause();
    const options = {
      host: this.dst.ip,
      port: this.dst.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: ProxiedConnection.nextReadBuffer, callback: ProxiedConnection.upstreamRead },
    };
    let upstream: Socket;
    if (this.timeouts.upstreamMark === undefined) upstream = connect(options);
    else {
      try {
        // Marked before connect(): the SYN must not be redirected back to us (src/iptables/rules.ts).
        upstream = connectMarked({ ...options, mark: this.timeouts.upstreamMark });
      } catch (err) {
        // No descriptor or no mark (EMFILE, EPERM): fail this dial the way a refused connect does.
        upstream = new Socket();
        process.nextTick(() => upstream.destroy(err as Error));
      }
    }
    this.upstream = upstream;
    (upstream as ConnectionSocket)[CONNECTION] = this;
    upstream.on('error', ProxiedConnection.upstreamError);
    upstream.on('close', ProxiedConnection.socketClose);
    upstream.once('connect', ProxiedConnection.upstreamConnected);
    this.connectTimer = setTimeout(ProxiedConnection.connectTimeoutFired, this.timeouts.connectMs, this);
  }

  /** Running totals of the connection (for periodic records, and the final one at close). */
  snapshot(): ConnectionSummary {
    const summary: ConnectionSummary = {
      flowId: this.flowId,
      direction: this.direction,
      src: this.src,
      dst: this.dst,
      startedAt: this.startedAt,
      durationMs: performance.now() - this.startedAt,
      bytesSent: this.client.bytesRead + (this.splice?.fromClient ?? 0),
      bytesReceived: (this.upstream?.bytesRead ?? 0) + (this.splice?.fromServer ?? 0),
      reason: 'closed',
    };
    if (this.admission !== undefined) {
      summary.facts = this.admission.facts;
      summary.l4 = this.admission.l4;
    }
    return summary;
  }

  /** Socket states, for operators asking why a connection is still open. */
  debugState(): Record<string, unknown> {
    const u = this.upstream;
    return {
      client: { readyState: this.client.readyState, destroyed: this.client.destroyed, writableEnded: this.client.writableEnded, readableEnded: this.client.readableEnded },
      upstream: u === undefined ? null : { readyState: u.readyState, destroyed: u.destroyed, writableEnded: u.writableEnded, readableEnded: u.readableEnded, connected: this.connected },
      closedSockets: this.closedSockets,
      reason: this.reason ?? null,
      filtering: this.filter !== null,
      spliced: this.splice?.active === true,
    };
  }

  /** The L7 filter, while the connection has one (for records). */
  get inspection(): ConnectionFilter | null {
    return this.filterRef;
  }

  /** Set by whoever tracks the open connection for periodic records; stopped at close. */
  tracking: { stop(): void } | undefined;

  /**
   * The packet-capture tap (src/capture), while some capture could want this connection: it sees
   * what the client sent and what it was sent, as the app saw it. Undefined costs one check per read.
   */
  get tap(): CaptureTap | undefined {
    return this.tapValue;
  }
  set tap(tap: CaptureTap | undefined) {
    this.tapValue = tap;
    // A capture joining a connection in the kernel relay takes it back: the tap needs its bytes.
    if (tap !== undefined && this.splice?.active === true) this.resumeFromSplice(this.splice.stop());
  }
  private tapValue: CaptureTap | undefined;
  private reportedDecision: Decision | null = null;

  /** Bytes read from the client so far (a capture joining an open connection starts its numbers here). */
  get bytesFromClient(): number {
    return this.client.bytesRead + (this.splice?.fromClient ?? 0);
  }

  /**
   * Bytes written to the client so far: in the kernel relay, those in flight toward it count as
   * written (a capture joining now sees the stream from after them, and they are written first).
   */
  get bytesToClient(): number {
    const splice = this.splice;
    return this.client.bytesWritten + (splice === null ? 0 : splice.toClient + splice.pendingToClient);
  }

  /** Our FIN to the client (the capture shows it as the server's). */
  private endClient(): void {
    this.tapValue?.fin('server');
    this.client.end();
  }

  /** Our reset of the client. */
  private resetClient(): void {
    if (this.tapValue !== undefined && !this.client.destroyed) this.tapValue.rst('server');
    reset(this.client);
  }

  /** Refuses the connection without dialling (loop, limit, denial at accept): the client sees a reset. */
  refuse(reason: CloseReason): void {
    this.reason = reason;
    this.closedSockets = 1; // there is no upstream socket to wait for
    this.resetClient();
  }

  /** Ends the connection now (drain deadline, shutdown, overload). */
  abort(reason: CloseReason, detail?: string): void {
    this.stopSplice();
    this.reason ??= reason;
    if (detail !== undefined) this.errorText ??= detail;
    this.resetClient();
    if (this.upstream !== undefined) reset(this.upstream);
  }

  /**
   * Draining: a connection with nothing in flight (HTTP/1 keep-alive between requests, or one
   * whose client has said nothing yet) is closed now, with FIN both ways. Returns whether it was.
   */
  closeIfAtRest(): boolean {
    if (this.finished || !this.connected) return false;
    const filter = this.filterRef;
    if (filter === null || !filter.atRest || this.client.writableLength > 0 || this.client.writableEnded) return false;
    this.reason ??= 'drain';
    this.endClient();
    this.upstream?.end();
    if (this.lingerSince === 0) this.lingerSince = performance.now();
    return true;
  }

  /** Bytes queued for writing on both sockets (the write-queue budget). */
  get queuedBytes(): number {
    return this.client.writableLength + (this.upstream?.writableLength ?? 0) + (this.splice?.pending ?? 0);
  }

  /** Parser state this connection keeps (its share of the state budget). */
  get stateBytes(): number {
    return this.stateAccounted;
  }

  private get bytesReadBoth(): number {
    return this.client.bytesRead + (this.upstream?.bytesRead ?? 0);
  }

  /** Bytes this connection holds for a verdict (its share of the held-bytes budget). */
  get heldBytes(): number {
    return this.heldAccounted;
  }

  /**
   * The 250 ms check (ProxyServer): a head held too long or arriving too slowly ends the
   * connection; a side paused by the global budget resumes once the budget allows; a client
   * that did not close after our FIN (the server went) is closed after LINGER_MS. Returns
   * the reason when the connection was ended.
   */
  checkHeld(now: number): CloseReason | undefined {
    if (this.finished) return undefined;
    if (this.lingerSince > 0 && now - this.lingerSince >= LINGER_MS) {
      this.stopSplice();
      this.reason ??= 'closed';
      // A client that has not taken all it was sent (our FIN still queued behind bytes) is reset:
      // closed, it would get a FIN after whatever part had reached the kernel.
      if (this.client.writableFinished) this.client.destroy();
      else this.resetClient();
      this.upstream?.destroy();
      return undefined;
    }
    // Not while DLP holds the beginning of a value for the sender's next bytes: a server pausing
    // mid-response is no slow client, and the hold timer (dlp.holdMs) bounds that wait itself.
    if (this.heldSince > 0 && this.filter?.tailHeld !== true) {
      const heldFor = now - this.heldSince;
      const budget = this.budget;
      // Both directions count: bytes a routing enforcer holds may be the server's (a DATA frame
      // held whole for DLP), and a frame arriving at the link's pace is not a slowloris.
      const arrived = this.bytesReadBoth - this.readAtHoldStart;
      if (heldFor >= budget.headTimeoutMs) {
        this.abort('head-timeout', `bytes held ${Math.round(heldFor)} ms awaiting a verdict`);
        return 'head-timeout';
      }
      if (heldFor >= 1000 && (arrived * 1000) / heldFor < budget.minHeadBytesPerSecond) {
        this.abort('head-timeout', `${arrived} bytes in ${Math.round(heldFor)} ms: below ${budget.minHeadBytesPerSecond} bytes/s while held`);
        return 'head-timeout';
      }
    }
    if (this.pausedForBudget && this.budget.held <= this.budget.heldTotal) {
      this.pausedForBudget = false;
      if (this.filter !== null) this.afterFilter(this.filter);
    }
    return undefined;
  }

  private onConnected(): void {
    clearTimeout(this.connectTimer);
    this.connected = true;
    const client = this.client;
    const upstream = this.upstream as Socket;
    // The listener set TCP_NODELAY on the client at accept (createServer noDelay), and paused it
    // (pauseOnConnect), so it has read nothing yet.
    if (!useReadBuffers(client, ProxiedConnection.clientRead, ProxiedConnection.nextReadBuffer)) client.on('data', ProxiedConnection.clientData);
    client.on('drain', ProxiedConnection.clientDrain);
    upstream.on('drain', ProxiedConnection.upstreamDrain);
    client.on('end', ProxiedConnection.clientEndHandler);
    upstream.on('end', ProxiedConnection.upstreamEnd);
    this.idleSince = performance.now();
    client.resume();
  }

  private onConnectTimeout(): void {
    this.reason ??= 'connect-timeout';
    this.upstream?.destroy();
    this.resetClient();
  }

  private onClientData(chunk: Buffer): void {
    const tap = this.tapValue;
    if (tap === undefined) return this.relayClientData(chunk);
    tap.fromClient(chunk);
    this.relayClientData(chunk);
    // The read buffer is reused after this: the tap lets go of the chunk (an alert raised while
    // the L7 layer read it has had it captured by now).
    this.tapValue?.settle();
  }

  private relayClientData(chunk: Buffer): void {
    const filter = this.filter;
    if (filter === null) {
      const upstream = this.upstream as Socket;
      if (!(this.spliceWanted ? upstream.write(chunk, this.afterSpliceWrite()) : upstream.write(chunk))) this.client.pause();
      return;
    }
    try {
      filter.clientData(chunk);
    } catch (err) {
      return this.onFilterFailure(err);
    }
    this.armDetect(filter);
    this.afterFilter(filter);
  }

  private armDetect(filter: ConnectionFilter): void {
    if (this.detectTimer === undefined && filter.detecting) this.detectTimer = setTimeout(ProxiedConnection.detectTimeoutFired, this.timeouts.detectMs, this);
  }

  /**
   * A bug in the L7 layer must cost one connection, never the sidecar: the connection is reset
   * and its record says why (parsers never throw; this guards everything around them).
   */
  private onFilterFailure(err: unknown): void {
    this.filter = null;
    this.reason ??= 'internal-error';
    this.errorText ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.observer.onInternalError?.(this, err);
    this.resetClient();
    if (this.upstream !== undefined) reset(this.upstream);
  }

  private onDetectTimeout(): void {
    const filter = this.filter;
    if (filter === null) return;
    // Detection is a bounded wait whose timeout is a result: opaque TCP, decided on L3/L4 facts.
    try {
      filter.detectTimeout();
    } catch (err) {
      return this.onFilterFailure(err);
    }
    this.afterFilter(filter);
  }

  private onUpstreamData(chunk: Buffer): void {
    const filter = this.filter;
    if (filter === null) {
      const tap = this.tapValue;
      if (tap !== undefined) tap.toClient(chunk);
      if (!(this.spliceWanted ? this.client.write(chunk, this.afterSpliceWrite()) : this.client.write(chunk))) (this.upstream as Socket).pause();
      return;
    }
    try {
      filter.serverData(chunk);
    } catch (err) {
      return this.onFilterFailure(err);
    }
    // A greeting held for the verdict waits for detection within the same bounded time.
    this.armDetect(filter);
    this.afterFilter(filter);
  }

  /**
   * The buffer a socket reads into next, after its last read went to `to`: the same one unless
   * something still refers to it. A write that did not complete at once keeps a view of it until
   * it does; so does a filter holding bytes of that side (awaiting detection or a verdict).
   */
  private readBufferAfter(buffer: Buffer, to: Socket, side: 'client' | 'server'): Buffer {
    const filter = this.filterRef;
    // Held bytes are copied out of the buffer when small (a no-op when nothing is held).
    if (filter !== null) filter.compact(side);
    const next = to.writableLength > 0 || (filter !== null && filter.holdsBytesOf(side)) ? readBuffers.take() : buffer;
    if (side === 'client') this.clientReadBuffer = next;
    else this.upstreamReadBuffer = next;
    return next;
  }

  /** A closed socket's current read buffer is referenced by nothing: the next connection gets it. */
  private recycleReadBuffers(): void {
    if (this.clientReadBuffer !== undefined && this.client.destroyed) readBuffers.give(this.clientReadBuffer);
    if (this.upstreamReadBuffer !== undefined && this.upstream?.destroyed === true) readBuffers.give(this.upstreamReadBuffer);
    this.clientReadBuffer = undefined;
    this.upstreamReadBuffer = undefined;
  }

  /**
   * Bookkeeping after the filter saw bytes: drop it once it passes through, account for and bound
   * what it holds. A side whose held bytes pass the per-connection cap is paused; so is any client
   * adding held bytes while all connections together hold more than the budget.
   */
  private afterFilter(filter: ConnectionFilter): void {
    const passing = filter.passThrough;
    if (passing) this.filter = null;
    else if (this.tailTimer === undefined && filter.tailHeld) this.tailTimer = setTimeout(ProxiedConnection.tailTimeoutFired, filter.tailHoldMs, this);
    if (this.tapValue !== undefined && filter.decision !== this.reportedDecision) {
      // A rule with `capture: true`, or an on-demand capture by rule, may want this connection now.
      this.reportedDecision = filter.decision;
      if (filter.decision !== null) this.observer.onDecision?.(this, filter.decision);
    }
    const clientHeld = filter.heldBytes;
    const serverHeld = filter.heldServerBytes;
    const held = clientHeld + serverHeld + filter.routedHeldBytes;
    const budget = this.budget;
    if (held !== this.heldAccounted) {
      budget.held += held - this.heldAccounted;
      if (this.heldAccounted === 0) {
        this.heldSince = performance.now();
        this.readAtHoldStart = this.bytesReadBoth - held;
      } else if (held === 0) this.heldSince = 0;
      this.heldAccounted = held;
    }
    // The first STATE_INCLUDED bytes are what any HTTP/2 connection keeps (default-sized HPACK
    // tables, a few dozen streams): part of what a connection costs, not a peer's doing.
    const kept = filter.stateBytes;
    if (kept > budget.statePerConnection) {
      this.abort('overload', `parser state of ${kept} bytes past the ${budget.statePerConnection} one connection may keep`);
      return;
    }
    const state = kept > STATE_INCLUDED ? kept - STATE_INCLUDED : 0;
    if (state !== this.stateAccounted) {
      budget.state += state - this.stateAccounted;
      this.stateAccounted = state;
    }
    if (filter.clientRefused) this.client.pause();
    else if (clientHeld > budget.heldPerConnection || (clientHeld > 0 && budget.held > budget.heldTotal)) {
      this.pausedForBudget ||= clientHeld <= budget.heldPerConnection;
      this.client.pause();
    } else if (this.client.isPaused() && (this.upstream as Socket).writableLength === 0) this.client.resume();
    const upstream = this.upstream;
    if (upstream !== undefined) {
      if (serverHeld > budget.heldPerConnection) upstream.pause();
      else if (upstream.isPaused() && this.client.writableLength === 0) upstream.resume();
    }
    if (this.clientEnded && clientHeld === 0 && upstream !== undefined && !upstream.writableEnded) upstream.end();
    if (passing) this.trySplice();
  }

  /**
   * Moves the relay to the kernel when nothing needs the bytes: no filter, no capture tap, and
   * nothing queued or buffered on either socket (libuv then watches neither descriptor, and no
   * byte is left behind in Node). With bytes queued, or a FIN we passed on still being sent, it
   * waits for the drain / finish. A direction already finished (a download after the client's
   * FIN) is one the kernel relay leaves alone. The addon may still refuse (it then says why, and
   * this relay carries on).
   */
  private trySplice(): void {
    const upstream = this.upstream;
    if (!spliceEnabled || !SpliceRelay.available || this.splice !== null || this.filter !== null || this.tapValue !== undefined || !this.connected || this.finished || upstream === undefined) return;
    const client = this.client;
    if (client.destroyed || upstream.destroyed) return;
    // A direction is either open both ends, or finished: its FIN read here and sent on (finish).
    const upDone = this.clientEnded && upstream.writableFinished;
    const downDone = this.upstreamEnded && client.writableFinished;
    if (upDone && downDone) return;
    const upOpen = !this.clientEnded && !upstream.writableEnded;
    const downOpen = !this.upstreamEnded && !client.writableEnded;
    if ((!upDone && !upOpen) || (!downDone && !downOpen) || client.writableLength > 0 || upstream.writableLength > 0 || client.readableLength > 0 || upstream.readableLength > 0) {
      // Retried at the next drain, or once a FIN we passed on has gone out.
      if (!this.spliceWanted) {
        if (this.clientEnded && !upstream.writableFinished) upstream.once('finish', ProxiedConnection.retrySplice);
        if (this.upstreamEnded && !client.writableFinished) client.once('finish', ProxiedConnection.retrySplice);
      }
      this.spliceWanted = true;
      return;
    }
    this.spliceWanted = false;
    client.pause();
    upstream.pause();
    const relay = SpliceRelay.start(client, upstream, (end) => this.onSpliceEnd(end), { clientToServer: upDone, serverToClient: downDone });
    if (relay === null) {
      // libuv still watching a descriptor (EEXIST): tried again after the next write.
      this.spliceWanted = true;
      client.resume();
      upstream.resume();
      return;
    }
    this.splice = relay;
  }

  /**
   * While the kernel relay waits for empty write queues, each write says when it completed: both
   * queues may then be empty (a write that completes at once emits no 'drain'). The attempt is
   * made from setImmediate, once libuv is done with the sockets for this turn (it stops watching
   * a descriptor for writability only after the write callbacks ran).
   */
  private afterSpliceWrite(): () => void {
    this.spliceWriteDone ??= () => {
      if (this.spliceScheduled || !this.spliceWanted || this.client.writableLength > 0 || (this.upstream as Socket).writableLength > 0) return;
      this.spliceScheduled = true;
      setImmediate(ProxiedConnection.spliceImmediate, this);
    };
    return this.spliceWriteDone;
  }
  private spliceWriteDone: (() => void) | undefined;
  private spliceScheduled = false;

  /** The kernel relay ended: as the JS relay does on the same events. */
  private onSpliceEnd(end: SpliceEnd): void {
    if (this.finished) return;
    const upstream = this.upstream as Socket;
    if (end.kind === 'done') {
      // FIN both ways, each passed on after the bytes before it: both sockets are done.
      this.clientEnded = true;
      this.upstreamEnded = true;
      this.client.destroy();
      upstream.destroy();
      return;
    }
    if (end.kind === 'fallback') {
      this.resumeFromSplice(end.taken);
      return;
    }
    // An error on one side (a reset, ETIMEDOUT, EHOSTUNREACH...): the other side is reset, as in
    // onClientError/onUpstreamError, never given a FIN that would make the stream look complete.
    this.errorText ??= end.code;
    if (end.side === 'client') {
      this.reason ??= 'client-reset';
      reset(upstream);
      this.client.destroy();
    } else {
      this.reason ??= 'server-reset';
      this.resetClient();
      upstream.destroy();
    }
  }

  /** The JS relay takes the connection back from the kernel: bytes in flight first, then reading. */
  private resumeFromSplice(taken: TakenBack): void {
    const upstream = this.upstream as Socket;
    let readClient = true;
    let readUpstream = true;
    if (taken.toServer !== null) readClient = upstream.write(taken.toServer);
    if (taken.toClient !== null) readUpstream = this.client.write(taken.toClient);
    // A FIN the kernel relay read is read again here (a socket at EOF keeps reading 0), and passed on.
    if (readClient) this.client.resume();
    if (readUpstream) upstream.resume();
  }

  /** Before the sockets are closed here: the kernel relay lets go of them (bytes in flight are dropped). */
  private stopSplice(): void {
    if (this.splice?.active === true) this.splice.stop();
  }

  // FilterSink: what the L7 firewall writes, closes and reports.
  toServer(bytes: Buffer): void {
    if (!(this.upstream as Socket).write(bytes)) this.client.pause();
  }

  toClient(bytes: Buffer): void {
    const tap = this.tapValue;
    if (tap !== undefined) tap.toClient(bytes);
    if (!this.client.write(bytes)) this.upstream?.pause();
  }

  close(how: 'fin' | 'reset' | 'reset-server', reason: string): void {
    // An enforcer that ends a connection to stay within its limits (an HTTP/2 flood) says `overload:…`.
    this.reason ??= reason === 'denied' ? 'denied' : reason.startsWith('overload') ? 'overload' : 'closed';
    if (this.errorText === undefined && reason !== 'denied') this.errorText = reason;
    if (how === 'reset') {
      this.resetClient();
      if (this.upstream !== undefined) reset(this.upstream);
      return;
    }
    if (how === 'reset-server') {
      // The server never sees the rest of the request, nor its end; the client gets what was
      // written to it (a 403), then FIN.
      if (this.upstream !== undefined) reset(this.upstream);
      this.endClient();
      return;
    }
    this.endClient();
    this.upstream?.destroy();
  }

  request(outcome: RequestOutcome): void {
    this.observer.onRequest?.(this, outcome);
  }

  alert(finding: TunnelFinding, blocked: boolean): void {
    this.observer.onAlert?.(this, finding, blocked);
  }

  dlpAlert(alert: DlpAlert): void {
    this.observer.onDlp?.(this, alert);
  }

  private onClientDrain(): void {
    this.upstream?.resume();
    if (this.spliceWanted) this.trySplice();
  }

  private onUpstreamDrain(): void {
    this.client.resume();
    if (this.spliceWanted) this.trySplice();
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    // An RST right behind the client's last bytes reaches us as EOF (endedByReset): the upload was
    // cut short, and the server must not be told it is complete.
    const cut = endedByReset(this.client);
    if (cut !== undefined) {
      this.onClientError(new StreamCutError(cut));
      this.client.destroy();
      return;
    }
    this.tapValue?.fin('client');
    const filter = this.filter;
    let drained = true;
    try {
      drained = filter === null || filter.clientEnd();
    } catch (err) {
      return this.onFilterFailure(err);
    }
    if (!drained) return; // held bytes still await a verdict
    if (filter !== null) this.afterFilter(filter);
    if (this.upstream !== undefined && !this.upstream.writableEnded) this.upstream.end();
  }

  private onUpstreamEnd(): void {
    this.upstreamEnded = true;
    // As onClientEnd: a response cut short by the server's reset is no complete answer (and what
    // DLP holds of it is not released).
    const cut = endedByReset(this.upstream as Socket);
    if (cut !== undefined) {
      this.onUpstreamError(new StreamCutError(cut));
      (this.upstream as Socket).destroy();
      return;
    }
    // A response body read until the server closes ends here: what DLP held is decided now.
    const filter = this.filter;
    if (filter !== null && filter.tailHeld) {
      this.onTailTimeout();
      if (filter.closeReason !== null || this.client.destroyed) return;
    }
    this.endClient();
  }

  private onTailTimeout(): void {
    clearTimeout(this.tailTimer);
    this.tailTimer = undefined;
    const filter = this.filter;
    if (filter === null || this.finished) return;
    try {
      filter.releaseTail();
    } catch (err) {
      return this.onFilterFailure(err);
    }
    this.afterFilter(filter);
  }

  /**
   * Called by the idle sweep (ProxyServer) with the current performance.now(): a connected
   * connection that read nothing on either socket for the idle timeout is closed. Every byte
   * written was read on the other side first, so reads alone tell whether anything moved.
   */
  checkIdle(now: number): void {
    if (!this.connected || this.finished) return;
    const splice = this.splice;
    const moved = this.client.bytesRead + (this.upstream as Socket).bytesRead + (splice === null ? 0 : splice.fromClient + splice.fromServer);
    if (moved !== this.bytesAtLastCheck) {
      this.bytesAtLastCheck = moved;
      this.idleSince = now;
      this.pagesReleased = false;
      return;
    }
    if (now - this.idleSince >= this.timeouts.idleMs) return this.onIdle();
    if (!this.pagesReleased) this.releaseReadPages();
  }

  /**
   * Nothing was read since the last sweep: the pages the two read buffers touched go back to the
   * kernel (a keep-alive connection at rest otherwise holds them as long as it lives). Safe
   * because a socket's current read buffer is never referenced between reads (readBufferAfter
   * gives the socket a new one when anything keeps a view of the last read), and sweeps run
   * between reads.
   */
  private releaseReadPages(): void {
    this.pagesReleased = true;
    if (this.clientReadBuffer !== undefined) releasePages(this.clientReadBuffer);
    if (this.upstreamReadBuffer !== undefined) releasePages(this.upstreamReadBuffer);
  }

  /**
   * Nothing moved for the idle timeout: the sidecar ends the connection, and both sides get a
   * reset. The timeout may fire mid-transfer (a server stalled half-way through its answer): a
   * FIN would make what came so far look like the whole answer (or upload). Only a connection the
   * L7 filter knows to be at rest (HTTP/1 keep-alive between requests) is closed with FIN, as a
   * drain closes it: nothing of it is cut short.
   */
  private onIdle(): void {
    // Already closing with FIN (the server went, or at rest): the linger check ends it (checkHeld).
    if (this.lingerSince > 0) return;
    this.reason ??= 'idle-timeout';
    if (this.closeIfAtRest()) return;
    this.stopSplice();
    this.resetClient();
    if (this.upstream !== undefined) reset(this.upstream);
  }

  /**
   * Any error ends the client's stream short of its end: a reset, or the client gone (ETIMEDOUT,
   * EHOSTUNREACH...). The server gets a reset either way: a FIN would make an upload cut short
   * look complete. The record says reset (the error text says which).
   */
  private onClientError(err: NodeJS.ErrnoException): void {
    this.errorText ??= err.code ?? err.message;
    if (isReset(err)) this.tapValue?.rst('client');
    this.reason ??= 'client-reset';
    if (this.upstream !== undefined) reset(this.upstream);
  }

  private onUpstreamError(err: NodeJS.ErrnoException): void {
    this.errorText ??= err.code ?? err.message;
    if (!this.connected) {
      // Still dialling: the destination refused or is unreachable. Reset the client so it fails
      // as promptly as it would have without us.
      clearTimeout(this.connectTimer);
      this.reason ??= err.code === 'ECONNREFUSED' ? 'connect-refused' : 'connect-failed';
      this.resetClient();
      return;
    }
    // As onClientError: whatever the error, an answer cut short must not reach the client as complete.
    this.reason ??= 'server-reset';
    this.resetClient();
  }

  private onSocketClose(): void {
    ++this.closedSockets;
    // Count destroyed sockets rather than 'close' events alone: a socket destroyed without its
    // event (see reset()) must not keep the connection, and its record, open forever.
    const upstreamGone = this.upstream === undefined || this.upstream.destroyed;
    if ((this.closedSockets < 2 && !(this.client.destroyed && upstreamGone)) || this.finished) {
      // One side closed: if the other has nothing left to do, make sure it goes too.
      if (this.closedSockets === 1) this.closeOtherIfDone();
      return;
    }
    this.finished = true;
    this.budget.held -= this.heldAccounted;
    this.heldAccounted = 0;
    this.budget.state -= this.stateAccounted;
    this.stateAccounted = 0;
    clearTimeout(this.connectTimer);
    clearTimeout(this.detectTimer);
    clearTimeout(this.tailTimer);
    this.recycleReadBuffers();
    const summary = this.snapshot();
    summary.reason = this.reason ?? 'closed';
    if (this.errorText !== undefined) summary.error = this.errorText;
    if (this.tapValue !== undefined && this.tapValue.captureIds.length > 0) {
      summary.captures = this.tapValue.captureIds;
      if (this.tapValue.captureGaps.size > 0) summary.captureGaps = this.tapValue.captureGaps;
    }
    this.tracking?.stop();
    this.filterRef?.finish(summary.reason === 'closed' ? 'fin' : summary.reason);
    this.observer.onClose(summary, this.filterRef);
    this.tapValue?.close();
  }

  private closeOtherIfDone(): void {
    const upstream = this.upstream;
    if (upstream === undefined) return;
    // A socket closes once both directions are done. A closed client can receive nothing more,
    // so the upstream goes at once; a closed upstream may still have bytes on their way to the
    // client, so the client gets them, then FIN.
    if (this.client.destroyed && !upstream.destroyed) upstream.destroy();
    if (upstream.destroyed && !this.client.destroyed) {
      // Held client bytes can no longer go anywhere: let them go, and the client's share of the budget.
      if (!this.client.writableEnded) this.endClient();
      if (this.lingerSince === 0) this.lingerSince = performance.now();
    }
  }

  // Shared socket handlers: `this` is the socket (EventEmitter calls listeners with it).
  private static clientData(this: Socket, chunk: Buffer): void {
    (this as ConnectionSocket)[CONNECTION].onClientData(chunk);
  }
  // Read callbacks (`onread`): backpressure pauses the socket itself (pause() stops reading).
  private static clientRead(this: Socket, length: number, buffer: Uint8Array): boolean {
    const conn = (this as ConnectionSocket)[CONNECTION];
    conn.onClientData((buffer as Buffer).subarray(0, length));
    nextReadBuffer = conn.readBufferAfter(buffer as Buffer, conn.upstream as Socket, 'client');
    return true;
  }
  private static upstreamRead(this: Socket, length: number, buffer: Uint8Array): boolean {
    const conn = (this as ConnectionSocket)[CONNECTION];
    conn.onUpstreamData((buffer as Buffer).subarray(0, length));
    nextReadBuffer = conn.readBufferAfter(buffer as Buffer, conn.client, 'server');
    return true;
  }
  /**
   * Node calls this (without `this`) when a socket starts reading and right after each read
   * callback, which left the answer in `nextReadBuffer`.
   */
  private static nextReadBuffer(): Uint8Array {
    const buffer = nextReadBuffer ?? readBuffers.take();
    nextReadBuffer = undefined;
    return buffer;
  }
  private static clientDrain(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onClientDrain();
  }
  private static upstreamDrain(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onUpstreamDrain();
  }
  private static clientEndHandler(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onClientEnd();
  }
  private static upstreamEnd(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onUpstreamEnd();
  }
  private static clientError(this: Socket, err: NodeJS.ErrnoException): void {
    (this as ConnectionSocket)[CONNECTION].onClientError(err);
  }
  private static upstreamError(this: Socket, err: NodeJS.ErrnoException): void {
    (this as ConnectionSocket)[CONNECTION].onUpstreamError(err);
  }
  private static socketClose(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onSocketClose();
  }
  private static upstreamConnected(this: Socket): void {
    (this as ConnectionSocket)[CONNECTION].onConnected();
  }
  private static spliceImmediate(conn: ProxiedConnection): void {
    conn.spliceScheduled = false;
    if (conn.spliceWanted) conn.trySplice();
  }
  private static retrySplice(this: Socket): void {
    const conn = (this as ConnectionSocket)[CONNECTION];
    if (conn.spliceWanted) conn.trySplice();
  }
  private static connectTimeoutFired(conn: ProxiedConnection): void {
    conn.onConnectTimeout();
  }
  private static detectTimeoutFired(conn: ProxiedConnection): void {
    conn.onDetectTimeout();
  }
  private static tailTimeoutFired(conn: ProxiedConnection): void {
    conn.onTailTimeout();
  }
}
