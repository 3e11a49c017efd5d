// Packet captures written by the sidecar itself (issue 19, PRODUCT.md "Content: DLP and capture"):
// which connections are captured, into which pcapng file, and the capture volume's budget.
//
// Triggers:
// - on alert (`capture.onAlert`): the connection that raised the alert, from its first byte (the
//   tap's pre-buffer), until it closes; the alert record names the capture;
// - per rule (`capture: true`): a connection a rule so marked decides (at accept, per request or at
//   the protocol's verdict), likewise;
// - on demand (`sidewall capture`, POST /captures on the admin port): one flow, the flows a rule
//   decides, or the flows of a peer (IP or CIDR), for a duration, into one file.
// Files live in `capture.dir` (the sidecar's writable volume) within `capture.maxBytes`: when a
// frame would pass it, the oldest finished captures are deleted (counted); when only active ones
// are left, the frame is not written and the capture is marked truncated (counted).
// Writes are batched per turn of the event loop (one writev of the blocks a turn produced), so a
// capture on disk is always whole blocks. An active capture holds its file open (O_APPEND; at most
// maxActive of them): an open/write/close per turn cost more than the write itself.
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { metrics } from '../metrics/index.js';
import { INVALID, parseCidr, parseIp, cidrContains, type Cidr } from '../policy/ip.js';
import type { Decision } from '../policy/types.js';
import { enhancedPacket, fileHeader } from './pcapng.js';
import { CaptureTap, nowMicros, type CaptureSink, type Endpoint, type PreBufferBudget } from './tap.js';
import { udpFrame } from './udp-frames.js';

export interface CaptureSettings {
  /** Capture the connection that raised an alert, from its first byte. */
  onAlert: boolean;
  /** Bytes all stored captures may take on the volume; oldest finished ones go first. */
  maxBytes: number;
  /** Folder on the sidecar's writable volume. */
  dir: string;
  /** Frames (bytes) each connection keeps from its start while a trigger could still capture it. */
  preBufferBytes: number;
  /** Pre-buffered bytes of all connections together. */
  preBufferTotal: number;
  /** Captures being written at once (each alerting connection is one). */
  maxActive: number;
}

export const DEFAULT_CAPTURE: Readonly<CaptureSettings> = Object.freeze({
  onAlert: false,
  // The injected sidecar's /tmp is a 16 MiB memory-backed emptyDir shared with the learn state.
  maxBytes: 8 * 1024 * 1024,
  dir: '/tmp/sidewall-captures',
  preBufferBytes: 16 * 1024,
  preBufferTotal: 16 * 1024 * 1024,
  maxActive: 64,
});

export type CaptureTrigger = 'alert' | 'rule' | 'on-demand';

/** What the store needs of a relayed connection (src/net/connection.ts ProxiedConnection). */
export interface TappableConnection {
  readonly flowId: string;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  tap: CaptureTap | undefined;
  /** Bytes read from the client and written to it so far (a capture joining an open connection). */
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
}

export interface OpenConnections {
  get(flowId: string): TappableConnection | undefined;
  all(): Iterable<TappableConnection>;
}

/** One datagram of a flow without a connection (DNS over UDP), as the app's end sent or received it. */
export interface CapturedDatagram {
  /** Microseconds since the Unix epoch (tap.ts nowMicros()). */
  micros: number;
  fromClient: boolean;
  bytes: Buffer;
}

/** A finished datagram flow (a DNS query and its answer): what the capture triggers see of it. */
export interface DatagramFlow {
  flowId: string;
  /** The app's address and port. */
  client: Endpoint;
  /** The address and port it sent to (the resolver, port 53). */
  server: Endpoint;
  /** The rule that decided it (`capture: true`, on-demand `--rule`). */
  decision?: Decision;
  datagrams: CapturedDatagram[];
}

/** The first packet of a non-TCP flow as the NFQUEUE guard got it (src/sidecar/non-tcp-guard.ts). */
export interface FirstPacket {
  flowId: string;
  client: Endpoint;
  server: Endpoint;
  decision: Decision;
  /** From the IP header on: the packet's first bytes only (the guard's copy range). */
  ip: Buffer;
  /** The packet's whole length (the IP header's). */
  length: number;
}

/** How long a datagram flow's alert capture waits for its datagrams (the DNS proxy's query timeout is 5 s). */
const DATAGRAM_ALERT_WAIT_MS = 30_000;

export interface CaptureRequest {
  flow?: string;
  rule?: string;
  peer?: string;
  durationMs: number;
}

export interface CaptureInfo {
  id: string;
  trigger: CaptureTrigger;
  /** Flow ids in the capture (the first 100). */
  flows: string[];
  flowCount: number;
  ruleId?: string;
  peer?: string;
  flow?: string;
  startedAt: string;
  endedAt?: string;
  active: boolean;
  bytes: number;
  packets: number;
  /** Frames were left out (the volume's budget was full of active captures). */
  truncated: boolean;
}

const MAX_STORED = 10_000;
const MAX_DURATION_MS = 3_600_000;
const FLUSH_BYTES = 1024 * 1024;

class CaptureFile implements CaptureSink {
  readonly flows = new Set<string>();
  /** Taps writing here (detached when the capture ends). */
  readonly taps = new Set<CaptureTap>();
  pending: Buffer[] = [];
  pendingBytes = 0;
  bytes = 0;
  packets = 0;
  truncated = false;
  active = true;
  endedAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The open file while the capture is written (opened at the first flush, closed when it ends). */
  private fd: number | undefined;
  readonly startedAt = Date.now();

  constructor(
    readonly id: string,
    readonly path: string,
    readonly trigger: CaptureTrigger,
    private readonly store: CaptureStore,
    /** Ends when its last flow ends (alert, rule and single-flow captures). */
    readonly endsWithFlows: boolean,
    readonly match: { ruleId?: string; peer?: { text: string; cidr: Cidr }; flow?: string },
  ) {}

  write(block: Buffer): boolean {
    if (!this.active) return false;
    if (!this.store.reserve(this, block.length)) {
      this.truncated = true;
      metrics.capturePacketsDropped.inc();
      return false;
    }
    this.pending.push(block);
    this.pendingBytes += block.length;
    this.bytes += block.length;
    this.packets += 1;
    this.store.dirty(this);
    return true;
  }

  flowEnded(flowId: string): void {
    for (const tap of this.taps) if (tap.flowId === flowId) this.taps.delete(tap);
    if (this.endsWithFlows && this.taps.size === 0) this.store.finish(this);
  }

  flush(): void {
    if (this.pendingBytes === 0) return;
    const blocks = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.fd ??= openSync(this.path, 'a');
    // libuv writes the whole list (IOV_MAX at a time, partial writes resumed).
    const written = writevSync(this.fd, blocks);
    metrics.captureBytesWritten.inc(written);
    if (written !== bytes) throw new Error(`capture ${this.id}: ${written} of ${bytes} bytes written`);
  }

  /** Lets go of the file (the capture ended, or cannot be written). */
  closeFile(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // already gone: nothing to release
    }
  }

  info(): CaptureInfo {
    const flows = [...this.flows];
    return {
      id: this.id,
      trigger: this.trigger,
      flows: flows.slice(0, 100),
      flowCount: flows.length,
      ...(this.match.ruleId !== undefined ? { ruleId: this.match.ruleId } : {}),
      ...(this.match.peer !== undefined ? { peer: this.match.peer.text } : {}),
      ...(this.match.flow !== undefined ? { flow: this.match.flow } : {}),
      startedAt: new Date(this.startedAt).toISOString(),
      ...(this.endedAt !== undefined ? { endedAt: new Date(this.endedAt).toISOString() } : {}),
      active: this.active,
      bytes: this.bytes,
      packets: this.packets,
      truncated: this.truncated,
    };
  }
}

export class CaptureError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'CaptureError';
  }
}

export class CaptureStore {
  /** Every stored capture, oldest first (Map keeps insertion order). */
  private readonly files = new Map<string, CaptureFile>();
  /** The per-connection capture (alert or rule) of each flow that has one. */
  private readonly ownCapture = new Map<string, CaptureFile>();
  /** On-demand captures matching new connections by rule or peer. */
  private readonly sessions = new Set<CaptureFile>();
  private readonly dirtyFiles = new Set<CaptureFile>();
  private flushScheduled = false;
  private stored = 0;
  private counter = 0;
  private readonly idPrefix = Date.now().toString(36);
  private preBuffered = 0;
  private ruleCaptures = false;
  private readonly budget: PreBufferBudget;
  private readonly scratch = new Uint32Array(4);
  private prepared = false;

  constructor(
    readonly settings: CaptureSettings,
    private readonly connections: OpenConnections,
    private readonly log: { warn(obj: object, msg: string): void } = { warn: () => undefined },
  ) {
    this.budget = {
      take: (n) => {
        if (this.preBuffered + n > this.settings.preBufferTotal) return false;
        this.preBuffered += n;
        return true;
      },
      give: (n) => {
        this.preBuffered -= n;
      },
      full: () => metrics.capturePreBufferFull.inc(),
    };
  }

  /**
   * The capture folder, made at the first capture (a sidecar that never captures writes nothing);
   * captures an earlier run of the sidecar left there count against the budget and go first.
   */
  private prepare(): void {
    if (this.prepared) return;
    mkdirSync(this.settings.dir, { recursive: true, mode: 0o700 });
    this.prepared = true;
    for (const name of readdirSync(this.settings.dir).filter((n) => n.endsWith('.pcapng')).sort()) {
      try {
        const size = statSync(join(this.settings.dir, name)).size;
        const file = new CaptureFile(name.slice(0, -'.pcapng'.length), join(this.settings.dir, name), 'on-demand', this, false, {});
        file.active = false;
        file.bytes = size;
        file.endedAt = Date.now();
        this.files.set(file.id, file);
        this.stored += size;
      } catch {
        // gone meanwhile
      }
    }
    this.evictFor(0, undefined);
    metrics.captureBytesStored.set(this.stored);
  }

  /** The policy in force has rules with `capture: true` (new connections then keep a pre-buffer). */
  setRuleCaptures(on: boolean): void {
    this.ruleCaptures = on;
  }

  /** Whether a new connection needs a tap: some trigger could still capture it. */
  get wantsTaps(): boolean {
    return this.settings.onAlert || this.ruleCaptures || this.sessions.size > 0;
  }

  /** At accept: a tap with a pre-buffer when a trigger could want the connection, and on-demand peer captures. */
  opened(conn: TappableConnection): void {
    if (!this.wantsTaps) return;
    conn.tap = new CaptureTap(conn.flowId, conn.src, conn.dst, this.settings.preBufferBytes, this.budget);
    for (const session of this.sessions) {
      const peer = session.match.peer;
      if (peer !== undefined && (this.inCidr(peer.cidr, conn.src.ip) || this.inCidr(peer.cidr, conn.dst.ip))) this.attach(session, conn);
    }
  }

  /** A rule decided the connection or one of its requests: `capture: true` and rule captures. */
  decided(conn: TappableConnection, decision: Decision): void {
    if (conn.tap === undefined && this.sessions.size === 0 && decision.capture !== true) return;
    if (decision.capture === true) this.ownCaptureOf(conn, 'rule', decision.ruleId);
    for (const session of this.sessions) if (session.match.ruleId === decision.ruleId) this.attach(session, conn);
  }

  /** An alert on the connection: its capture (started now, from the first byte) when onAlert is on. */
  alerted(conn: TappableConnection): string | undefined {
    const own = this.ownCapture.get(conn.flowId);
    if (own !== undefined) return own.id;
    if (!this.settings.onAlert) return undefined;
    return this.ownCaptureOf(conn, 'alert')?.id;
  }

  /**
   * An alert on a datagram flow (a DNS tunnel finding, raised before the answer is in): with
   * onAlert, its capture now (the alert names it), written when datagramFlow() brings the
   * datagrams; ended after DATAGRAM_ALERT_WAIT_MS if they never come.
   */
  alertedDatagrams(flowId: string): string | undefined {
    const own = this.ownCapture.get(flowId);
    if (own !== undefined) return own.id;
    if (!this.settings.onAlert) return undefined;
    const file = this.create('alert', false, {});
    if (file === undefined) return undefined;
    this.ownCapture.set(flowId, file);
    file.flows.add(flowId);
    file.timer = setTimeout(() => this.finish(file), DATAGRAM_ALERT_WAIT_MS);
    file.timer.unref();
    return file.id;
  }

  /**
   * A datagram flow is over (a DNS query answered, refused or timed out): its datagrams go to its
   * own capture (an alert's, or a `capture: true` rule's: one file per flow, as for connections)
   * and to the on-demand captures of its rule or peer. Returns the own capture's id (for the record).
   */
  datagramFlow(flow: DatagramFlow): string | undefined {
    let own = this.ownCapture.get(flow.flowId);
    if (own === undefined && flow.decision?.capture === true) {
      own = this.create('rule', false, { ruleId: flow.decision.ruleId });
      if (own !== undefined) this.ownCapture.set(flow.flowId, own);
    }
    const targets: CaptureFile[] = [];
    if (own !== undefined && own.active) targets.push(own);
    for (const session of this.sessions) {
      const peer = session.match.peer;
      const byRule = session.match.ruleId !== undefined && session.match.ruleId === flow.decision?.ruleId;
      const byPeer = peer !== undefined && (this.inCidr(peer.cidr, flow.client.ip) || this.inCidr(peer.cidr, flow.server.ip));
      if ((byRule || byPeer) && !targets.includes(session)) targets.push(session);
    }
    if (targets.length > 0) {
      const ends = { client: flow.client, server: flow.server };
      const blocks = flow.datagrams.map((d, i) => enhancedPacket(d.micros, udpFrame(ends, d.fromClient, d.bytes, i), i === 0 ? `sidewall flow ${flow.flowId}` : undefined));
      for (const file of targets) {
        file.flows.add(flow.flowId);
        for (const block of blocks) file.write(block);
      }
    }
    if (own !== undefined) {
      this.ownCapture.delete(flow.flowId);
      this.finish(own);
    }
    return own?.id;
  }

  /**
   * The first packet of a non-TCP flow the guard decided (the kernel passes the rest of an
   * allowed flow without us, so it is all there is): written as it was, cut to the guard's copy
   * range (pcapng keeps the original length: tshark says "packet size limited during capture"),
   * to a `capture: true` rule's own capture and to on-demand captures of its rule or peer.
   */
  firstPacket(packet: FirstPacket): string | undefined {
    const own = packet.decision.capture === true ? this.create('rule', false, { ruleId: packet.decision.ruleId }) : undefined;
    const targets: CaptureFile[] = own !== undefined ? [own] : [];
    for (const session of this.sessions) {
      const peer = session.match.peer;
      const byRule = session.match.ruleId !== undefined && session.match.ruleId === packet.decision.ruleId;
      const byPeer = peer !== undefined && (this.inCidr(peer.cidr, packet.client.ip) || this.inCidr(peer.cidr, packet.server.ip));
      if (byRule || byPeer) targets.push(session);
    }
    if (targets.length > 0) {
      const frame = Buffer.alloc(14 + packet.ip.length);
      frame.writeUInt16BE(0x0200, 0); // locally administered MACs, as the synthesized frames have
      frame.writeUInt32BE(0x00000002, 2);
      frame.writeUInt16BE(0x0200, 6);
      frame.writeUInt32BE(0x00000001, 8);
      frame.writeUInt16BE(packet.ip[0]! >> 4 === 6 ? 0x86dd : 0x0800, 12);
      packet.ip.copy(frame, 14);
      const block = enhancedPacket(nowMicros(), frame, `sidewall flow ${packet.flowId} (first packet, as the non-TCP guard decided it)`, 14 + packet.length);
      for (const file of targets) {
        file.flows.add(packet.flowId);
        file.write(block);
      }
    }
    if (own !== undefined) this.finish(own);
    return own?.id;
  }

  /** The capture an alert or a `capture: true` rule started for this flow, while it is open. */
  ownCaptureId(flowId: string): string | undefined {
    return this.ownCapture.get(flowId)?.id;
  }

  /** Starts an on-demand capture (POST /captures). */
  start(request: CaptureRequest): CaptureInfo {
    const selectors = [request.flow, request.rule, request.peer].filter((s) => s !== undefined).length;
    if (selectors !== 1) throw new CaptureError(400, 'name exactly one of flow, rule or peer');
    if (!Number.isInteger(request.durationMs) || request.durationMs <= 0 || request.durationMs > MAX_DURATION_MS) {
      throw new CaptureError(400, `durationMs must be an integer in 1..${MAX_DURATION_MS}`);
    }
    let peer: { text: string; cidr: Cidr } | undefined;
    if (request.peer !== undefined) {
      const parsed = parseCidr(request.peer);
      if (!parsed.ok) throw new CaptureError(400, `peer: ${parsed.message}`);
      peer = { text: parsed.cidr.text, cidr: parsed.cidr };
    }
    let conn: TappableConnection | undefined;
    if (request.flow !== undefined) {
      conn = this.connections.get(request.flow);
      if (conn === undefined) throw new CaptureError(404, `no open connection with flow id ${request.flow} (GET /connections lists them)`);
    }
    const match = { ...(request.rule !== undefined ? { ruleId: request.rule } : {}), ...(peer !== undefined ? { peer } : {}), ...(request.flow !== undefined ? { flow: request.flow } : {}) };
    const file = this.create('on-demand', request.flow !== undefined, match);
    if (file === undefined) throw new CaptureError(503, `cannot start a capture: ${this.settings.maxActive} are being written already, or ${this.settings.dir} is not writable (the sidecar's log says which)`);
    file.timer = setTimeout(() => this.finish(file), request.durationMs);
    file.timer.unref();
    if (conn !== undefined) this.attach(file, conn);
    else {
      this.sessions.add(file);
      if (peer !== undefined) {
        for (const open of this.connections.all()) if (this.inCidr(peer.cidr, open.src.ip) || this.inCidr(peer.cidr, open.dst.ip)) this.attach(file, open);
      }
    }
    return file.info();
  }

  /** Ends a capture now (DELETE /captures/ID). */
  stop(id: string): CaptureInfo | undefined {
    const file = this.files.get(id);
    if (file === undefined) return undefined;
    this.finish(file);
    return file.info();
  }

  list(): CaptureInfo[] {
    return [...this.files.values()].map((f) => f.info());
  }

  info(id: string): CaptureInfo | undefined {
    return this.files.get(id)?.info();
  }

  /** The file of a capture, flushed (an active one holds whole blocks up to now). */
  path(id: string): string | undefined {
    const file = this.files.get(id);
    if (file === undefined) return undefined;
    file.flush();
    return file.path;
  }

  /** Ends every capture (shutdown). */
  close(): void {
    for (const file of [...this.files.values()]) if (file.active) this.finish(file);
  }

  // ---- for CaptureFile ----

  /** Makes room for n more bytes of `file`; false when only active captures fill the budget. */
  reserve(file: CaptureFile, n: number): boolean {
    if (this.stored + n > this.settings.maxBytes && !this.evictFor(n, file)) return false;
    this.stored += n;
    metrics.captureBytesStored.set(this.stored);
    return true;
  }

  dirty(file: CaptureFile): void {
    this.dirtyFiles.add(file);
    if (file.pendingBytes >= FLUSH_BYTES) this.flushOne(file);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushAll());
    }
  }

  finish(file: CaptureFile): void {
    if (!file.active) return;
    file.active = false;
    file.endedAt = Date.now();
    clearTimeout(file.timer);
    this.sessions.delete(file);
    for (const tap of file.taps) tap.detach(file);
    file.taps.clear();
    for (const [flowId, own] of this.ownCapture) if (own === file) this.ownCapture.delete(flowId);
    this.flushOne(file);
    file.closeFile();
  }

  // ---- internals ----

  private create(trigger: CaptureTrigger, endsWithFlows: boolean, match: CaptureFile['match']): CaptureFile | undefined {
    let active = 0;
    for (const f of this.files.values()) if (f.active) ++active;
    if (active >= this.settings.maxActive) {
      metrics.capturesDropped.inc({ reason: 'too-many-active' });
      return undefined;
    }
    try {
      this.prepare();
    } catch (err) {
      this.log.warn({ err, dir: this.settings.dir }, 'cannot make the capture folder; no capture');
      return undefined;
    }
    const id = `${this.idPrefix}-${(++this.counter).toString(36).padStart(4, '0')}`;
    const file = new CaptureFile(id, join(this.settings.dir, `${id}.pcapng`), trigger, this, endsWithFlows, match);
    this.files.set(id, file);
    if (this.files.size > MAX_STORED) this.evictOldestFinished('max-count');
    metrics.capturesStarted.inc({ trigger });
    file.write(fileHeader(`sidewall capture ${id} (${trigger})`));
    file.packets = 0; // the header is not a packet
    return file;
  }

  private ownCaptureOf(conn: TappableConnection, trigger: 'alert' | 'rule', ruleId?: string): CaptureFile | undefined {
    const existing = this.ownCapture.get(conn.flowId);
    if (existing !== undefined) return existing;
    const file = this.create(trigger, true, ruleId !== undefined ? { ruleId } : {});
    if (file === undefined) return undefined;
    this.ownCapture.set(conn.flowId, file);
    this.attach(file, conn);
    return file;
  }

  private attach(file: CaptureFile, conn: TappableConnection): void {
    if (!file.active) return;
    // A connection opened while nothing was capturing has no tap: one joins it now, mid-stream.
    conn.tap ??= new CaptureTap(conn.flowId, conn.src, conn.dst, 0, this.budget, { fromClient: conn.bytesFromClient, toClient: conn.bytesToClient });
    file.flows.add(conn.flowId);
    file.taps.add(conn.tap);
    conn.tap.attach(file);
  }

  private inCidr(cidr: Cidr, ip: string): boolean {
    const family = parseIp(ip, this.scratch);
    return family !== INVALID && cidrContains(cidr, family, this.scratch);
  }

  /** Deletes finished captures, oldest first, until n more bytes fit; false when they do not. */
  private evictFor(n: number, writing: CaptureFile | undefined): boolean {
    while (this.stored + n > this.settings.maxBytes) {
      if (!this.evictOldestFinished('max-bytes', writing)) return false;
    }
    return true;
  }

  private evictOldestFinished(reason: 'max-bytes' | 'max-count', keep?: CaptureFile): boolean {
    for (const file of this.files.values()) {
      if (file.active || file === keep) continue;
      this.files.delete(file.id);
      this.stored -= file.bytes;
      metrics.captureBytesStored.set(this.stored);
      metrics.capturesDropped.inc({ reason });
      try {
        rmSync(file.path, { force: true });
      } catch (err) {
        this.log.warn({ err, capture: file.id }, 'cannot delete a capture');
      }
      return true;
    }
    return false;
  }

  private flushOne(file: CaptureFile): void {
    try {
      file.flush();
    } catch (err) {
      // A full or read-only volume: the capture ends, the sidecar goes on.
      this.log.warn({ err, capture: file.id }, 'cannot write a capture; it ends here');
      file.truncated = true;
      file.pending = [];
      file.pendingBytes = 0;
      file.closeFile();
      if (file.active) this.finish(file);
    }
    this.dirtyFiles.delete(file);
  }

  private flushAll(): void {
    this.flushScheduled = false;
    for (const file of [...this.dirtyFiles]) this.flushOne(file);
  }
}
