// The sidecar's TCP listeners: outbound (15001: egress and intra-pod) and inbound (15006), each
// on IPv4 and IPv6. Accept is where L3/L4 facts are known: original destination, direction,
// loops and the connection limit are decided here, before any byte is read.
import { createServer, type Server, type Socket } from 'node:net';
import type { Admission, ConnectionGate } from '../enforcement/gate.js';
import { ProxiedConnection, releaseIdleReadBuffers, type CloseReason, type ConnectionObserver, type ConnectionTimeouts, type Direction, type RelayBudget } from './connection.js';
import { LocalAddresses } from './local-addresses.js';
import { originalDestination, peerAddress, type Destination } from './original-dst.js';
import { markServer } from './socket-mark.js';

/** A listener the sidecar could not own: the port is taken (EADDRINUSE) or cannot be marked (EPERM). */
export class ListenerError extends Error {
  readonly code = 'SIDEWALL_LISTENER';
  constructor(readonly listener: string, override readonly cause: NodeJS.ErrnoException) {
    super(`cannot own listener ${listener}: ${cause.code === 'EADDRINUSE' ? 'the port is already taken by another process (an app bound it while the sidecar was down?)' : cause.message}`);
    this.name = 'ListenerError';
  }
}

export interface ProxyServerOptions {
  outboundPort: number;
  inboundPort: number;
  /** DNS over TCP (port 53 redirected by `sidewall init --redirect-dns`): an outbound listener too. */
  dnsPort: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  detectTimeoutMs: number;
  maxConnections: number;
  ipv6: boolean;
  /** SO_MARK of the listeners and of every upstream dial (the proxy's identity); undefined: unmarked. */
  socketMark?: number;
  /** The admin port: never relayed to on a local address (a relayed dial would carry our identity). */
  adminPort?: number;
  /** Held bytes per connection and in all, and how long and how slowly they may wait (memory-limits.ts). */
  heldBytesPerConnection: number;
  heldBytesTotal: number;
  writeQueueTotal: number;
  /** Parser state per connection and in all (memory-limits.ts); defaults: 1 MiB and heldBytesTotal / 3. */
  statePerConnection?: number;
  stateTotal?: number;
  headTimeoutMs: number;
  minHeadBytesPerSecond: number;
  /** Resident memory past which new connections are refused and offenders shed; null: no limit known. */
  pressureBytes: number | null;
  /** Counts each connection ended (or refused) to stay within the limits, by reason. */
  onShed?: (reason: string) => void;
}

/** How often held bytes, write queues and resident memory are checked against their budgets. */
const PRESSURE_CHECK_MS = 250;

export type ListenerKind = 'outbound' | 'inbound';

function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

export class ProxyServer {
  private readonly servers: Server[] = [];
  private readonly active = new Map<string, ProxiedConnection>();
  private readonly local = new LocalAddresses();
  private readonly flowPrefix = Date.now().toString(36);
  private flowCounter = 0;
  private draining = false;
  private readonly trackingObserver: ConnectionObserver;
  /** One timer for the idle timeout of every connection (a quarter of it, at most 1 s, apart). */
  private idleSweep: NodeJS.Timeout | undefined;
  private readonly idleSweepBound = (): void => this.sweepIdle();
  private readonly timeouts: ConnectionTimeouts;
  private pressureSweep: NodeJS.Timeout | undefined;
  private readonly pressureSweepBound = (): void => this.sweepPressure();
  private readonly budget: RelayBudget;
  /** Resident memory was past pressureBytes at the last check: new connections are refused. */
  private underPressure = false;
  /** Connections accepted (refused ones included): each ends in exactly one final record. */
  accepted = 0;

  constructor(
    private readonly options: ProxyServerOptions,
    private readonly observer: ConnectionObserver,
    private readonly gate: ConnectionGate,
  ) {
    this.timeouts = Object.freeze({
      connectMs: options.connectTimeoutMs,
      idleMs: options.idleTimeoutMs,
      detectMs: options.detectTimeoutMs,
      ...(options.socketMark !== undefined ? { upstreamMark: options.socketMark } : {}),
    });
    this.budget = {
      held: 0,
      heldPerConnection: options.heldBytesPerConnection,
      heldTotal: options.heldBytesTotal,
      headTimeoutMs: options.headTimeoutMs,
      minHeadBytesPerSecond: options.minHeadBytesPerSecond,
      state: 0,
      statePerConnection: options.statePerConnection ?? 1024 * 1024,
      stateTotal: options.stateTotal ?? Math.floor(options.heldBytesTotal / 3),
    };
    this.trackingObserver = {
      onClose: (summary, filter) => {
        this.active.delete(summary.flowId);
        this.observer.onClose(summary, filter);
      },
      onRequest: (conn, outcome) => this.observer.onRequest?.(conn, outcome),
      onAlert: (conn, finding, blocked) => this.observer.onAlert?.(conn, finding, blocked),
      onDecision: (conn, decision) => this.observer.onDecision?.(conn, decision),
      onDlp: (conn, alert) => this.observer.onDlp?.(conn, alert),
      onInternalError: (conn, err) => this.observer.onInternalError?.(conn, err),
    };
  }

  get activeConnections(): number {
    return this.active.size;
  }

  /** The open connections (for the admin port's /connections). */
  openConnections(): IterableIterator<ProxiedConnection> {
    return this.active.values();
  }

  /** An open connection by flow id. */
  connection(flowId: string): ProxiedConnection | undefined {
    return this.active.get(flowId);
  }

  isLocal(ip: string): boolean {
    return this.local.isLocal(ip);
  }

  /** Every address of the pod (loopback included): the pod's own identity applies to them. */
  localAddresses(): string[] {
    return ['127.0.0.1', '::1', ...this.local.all()];
  }

  async listen(): Promise<void> {
    const ports: Array<[ListenerKind, number]> = [
      ['outbound', this.options.outboundPort],
      ['inbound', this.options.inboundPort],
      ['outbound', this.options.dnsPort],
    ];
    const binds: Array<[ListenerKind, number, string]> = [];
    for (const [kind, port] of ports) {
      binds.push([kind, port, '0.0.0.0']);
      if (this.options.ipv6) binds.push([kind, port, '::']);
    }
    for (const [kind, port, host] of binds) {
      // Our IPv6 listeners are IPv6-only (ipv6Only below): the listener says the family.
      const ipv6 = host === '::';
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.accept(kind, socket, ipv6));
      const name = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host, ipv6Only: host === '::', backlog: 4096 }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        // Connections reach a listener only when it bears the mark (the pod's SIDEWALL_LISTEN chain):
        // until this line, SYNs to it are dropped and retried, never accepted unmarked.
        if (this.options.socketMark !== undefined) markServer(server, this.options.socketMark);
      } catch (err) {
        // All or nothing: a sidecar holding some of its listeners would serve half the pod.
        server.close();
        for (const s of this.servers.splice(0)) s.close();
        throw new ListenerError(name, err as NodeJS.ErrnoException);
      }
      this.servers.push(server);
    }
    const period = Math.max(10, Math.min(1000, Math.floor(this.options.idleTimeoutMs / 4)));
    this.idleSweep = setInterval(this.idleSweepBound, period);
    this.idleSweep.unref();
    this.pressureSweep = setInterval(this.pressureSweepBound, PRESSURE_CHECK_MS);
    this.pressureSweep.unref();
  }

  private sweepIdle(): void {
    const now = performance.now();
    for (const conn of this.active.values()) conn.checkIdle(now);
    releaseIdleReadBuffers();
  }

  /** Bytes held for verdicts by all connections (the held-bytes budget's running total). */
  get heldBytes(): number {
    return this.budget.held;
  }

  /**
   * Keeps memory within the limit: heads held too long or too slowly end; past the held-bytes
   * budget the connections holding bytes longest are shed, past the write-queue budget those with
   * the longest queues (the slowest readers); past the resident-memory mark new connections are
   * refused and both kinds of offender shed until their budgets are half used.
   */
  private sweepPressure(): void {
    const now = performance.now();
    let queued = 0;
    for (const conn of this.active.values()) {
      const ended = conn.checkHeld(now);
      if (ended !== undefined) this.options.onShed?.(ended);
      else queued += conn.queuedBytes;
    }
    const rss = this.options.pressureBytes === null ? 0 : process.memoryUsage.rss();
    this.underPressure = this.options.pressureBytes !== null && rss > this.options.pressureBytes;
    const heldTarget = this.underPressure ? this.budget.heldTotal / 2 : this.budget.heldTotal;
    if (this.budget.held > heldTarget) {
      const holders = [...this.active.values()].filter((c) => c.heldBytes > 0).sort((a, b) => a.heldSince - b.heldSince);
      for (const conn of holders) {
        if (this.budget.held <= heldTarget) break;
        this.budget.held -= conn.heldBytes; // released at close; counted now so the loop stops in time
        conn.abort('overload', this.underPressure ? 'memory pressure: held bytes' : 'held-bytes budget');
        this.budget.held += conn.heldBytes;
        this.options.onShed?.('held-bytes');
      }
    }
    // Parser state (HTTP/2 HPACK tables, streams): the connections keeping the most go first.
    const stateTarget = this.underPressure ? this.budget.stateTotal / 2 : this.budget.stateTotal;
    if (this.budget.state > stateTarget) {
      let state = this.budget.state;
      const keepers = [...this.active.values()].filter((c) => c.stateBytes > 0).sort((a, b) => b.stateBytes - a.stateBytes);
      for (const conn of keepers) {
        if (state <= stateTarget) break;
        state -= conn.stateBytes;
        conn.abort('overload', this.underPressure ? 'memory pressure: parser state' : 'parser-state budget');
        this.options.onShed?.('parser-state');
      }
    }
    const queueTarget = this.underPressure ? this.options.writeQueueTotal / 2 : this.options.writeQueueTotal;
    if (queued > queueTarget) {
      const writers = [...this.active.values()].filter((c) => c.queuedBytes > 0).sort((a, b) => b.queuedBytes - a.queuedBytes);
      for (const conn of writers) {
        if (queued <= queueTarget) break;
        queued -= conn.queuedBytes;
        conn.abort('overload', this.underPressure ? 'memory pressure: write queue' : 'write-queue budget');
        this.options.onShed?.('write-queue');
      }
    }
  }

  /** Flow ids are unique per sidecar (DNS queries over UDP draw from the same sequence). */
  nextFlowId(): string {
    return `${this.flowPrefix}-${(++this.flowCounter).toString(36)}`;
  }

  private accept(kind: ListenerKind, socket: Socket, ipv6?: boolean): void {
    const startedAt = performance.now();
    // Taken now, kept for the record: a client may reset (or have reset) its connection at any time.
    const peer = peerAddress(socket);
    const src: Destination = { ip: unmapped(peer.ip), port: peer.port };
    const original = originalDestination(socket, ipv6);
    const dst: Destination = typeof original === 'number' ? { ip: unmapped(socket.localAddress ?? ''), port: socket.localPort ?? 0 } : { ip: unmapped(original.ip), port: original.port };
    const direction: Direction = kind === 'inbound' ? 'ingress' : this.local.isLocal(dst.ip) ? 'intra' : 'egress';
    const conn = new ProxiedConnection(this.nextFlowId(), direction, socket, src, dst, startedAt, this.timeouts, this.trackingObserver, this.budget);
    this.active.set(conn.flowId, conn);
    ++this.accepted;
    let refusal: CloseReason | undefined;
    if (typeof original === 'number') refusal = 'no-original-dst';
    else if (this.isLoop(dst)) refusal = 'loop';
    else if (this.draining) refusal = 'drain';
    else if (this.active.size > this.options.maxConnections) refusal = 'limit';
    else if (this.underPressure) refusal = 'overload';
    if (refusal !== undefined) {
      if (refusal === 'limit' || refusal === 'overload') this.options.onShed?.(refusal);
      this.observer.onOpen?.(conn);
      conn.refuse(refusal);
      return;
    }
    const admission: Admission = this.gate.admit(direction, src, dst, conn);
    conn.admission = admission;
    this.observer.onOpen?.(conn);
    if (admission.filter === null) {
      conn.refuse('denied');
      return;
    }
    conn.start(admission.filter);
  }

  /**
   * A connection whose original destination is one of our own listeners would dial itself forever;
   * one to our own admin port would reach it from our socket, as our own user.
   */
  private isLoop(dst: Destination): boolean {
    const port = dst.port;
    return (port === this.options.outboundPort || port === this.options.inboundPort || port === this.options.dnsPort || port === this.options.adminPort) && this.local.isLocal(dst.ip);
  }

  /** Closes the listeners (no connection was accepted yet): the caller could not own all of them. */
  async closeListeners(): Promise<void> {
    clearInterval(this.idleSweep);
    await Promise.all(this.servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  /**
   * Stops accepting, closes connections with nothing in flight at once (and each other one as soon
   * as its requests are done), lets the rest finish until the deadline, then resets what is left.
   * The deadline starts now: server.close() calls back only once every connection is gone, so it
   * is not awaited.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const until = performance.now() + deadlineMs;
    for (const s of this.servers) s.close();
    const closeAtRest = (): void => {
      for (const conn of this.active.values()) conn.closeIfAtRest();
    };
    closeAtRest();
    while (this.active.size > 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, until - performance.now()))));
      closeAtRest();
    }
    for (const conn of [...this.active.values()]) conn.abort('drain');
    // Reset sockets close on the next turn of the event loop: their records are written then.
    const settle = performance.now() + 1000;
    while (this.active.size > 0 && performance.now() < settle) await new Promise((r) => setTimeout(r, 10));
    clearInterval(this.idleSweep);
    clearInterval(this.pressureSweep);
    this.local.close();
  }
}
