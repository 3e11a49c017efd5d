// Flow records to stdout (or a file) as JSON lines. The traffic path only pushes onto a bounded
// queue; a batch window after its first record (batchDelayMs, 10 ms: one write and one wake-up of
// the log reader per window instead of per event-loop turn; at 2 ms a new-connection load wrote
// about once per connection, ~9 % of the main thread in the pipe write) the writer turns up to maxChunkBytes
// of records into one string and hands it to the kernel with a single synchronous write(2). No thread-pool
// hop: an asynchronous fs.write per batch (what pino's sonic-boom does) wakes a libuv pool thread
// each time, which cost more than the write itself (issue 7: ~3 futex calls per connection).
//
// The descriptor must not block the event loop: a pipe or socket on stdout/stderr is switched to
// O_NONBLOCK by Node when process.stdout/stderr is first touched (we touch it); another descriptor
// is used as the caller opened it. When the pipe is full, write(2) returns EAGAIN or writes part
// of the chunk: the rest is kept (one chunk at most) and retried after a short, growing delay,
// while new records wait in the queue. If stdout is slower than the traffic, the queue overflows
// and the OLDEST records are dropped and counted, so a reader sees the loss as a seq gap equal to
// sidewall_flow_export_dropped_total{exporter="stdout"}.
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { BoundedQueue } from './bounded-queue.js';
import { entryJson, sleepUnref, type FlowEntry, type FlowSink } from './entry.js';
import { addCollectHook, metrics } from '../metrics/index.js';

export interface StdoutExporterOptions {
  /** File descriptor to write to; default 1 (stdout). */
  fd?: number;
  /** Write to this file instead of a descriptor (appends; created with its folder). */
  path?: string;
  /** Records held while the destination is busy; default 10,000. */
  queueSize?: number;
  /** Upper bound of bytes handed to the destination in one write; default 64 KiB. */
  maxChunkBytes?: number;
  /**
   * How long the first record of a batch waits for others before the batch is written, in ms;
   * default 10. 0 writes at the end of the current event-loop turn.
   */
  batchDelayMs?: number;
}

/** First and longest wait before retrying a write the pipe refused (EAGAIN): the reader is slow. */
const RETRY_FIRST_MS = 1;
const RETRY_MAX_MS = 50;

export class StdoutExporter implements FlowSink {
  readonly name = 'stdout';
  private readonly queue: BoundedQueue<FlowEntry>;
  private readonly fd: number;
  private readonly maxChunkBytes: number;
  private readonly batchDelayMs: number;
  private readonly ownsDestination: boolean;
  private scheduled = false;
  /** Bytes of the last chunk the descriptor did not take yet (EAGAIN or a partial write). */
  private pending: Buffer | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = RETRY_FIRST_MS;
  private closed = false;
  private failed: Error | null = null;
  private droppedCount = 0;
  /** Overflow drops not yet added to the prom-client counter (see addCollectHook). */
  private uncountedOverflow = 0;
  private sentCount = 0;
  private readonly removeCollectHook = addCollectHook(() => this.publishMetrics());
  private readonly flushBound = (): void => this.flush();
  private readonly retryBound = (): void => this.retry();

  constructor(options: StdoutExporterOptions = {}) {
    this.queue = new BoundedQueue<FlowEntry>(options.queueSize ?? 10_000);
    this.maxChunkBytes = options.maxChunkBytes ?? 64 * 1024;
    this.batchDelayMs = options.batchDelayMs ?? 10;
    this.ownsDestination = options.path !== undefined;
    if (options.path !== undefined) {
      mkdirSync(dirname(options.path), { recursive: true });
      this.fd = openSync(options.path, 'a');
    } else {
      this.fd = options.fd ?? 1;
      if (!fstatSync(this.fd).isFile()) {
        // Node makes a pipe or socket on fd 1/2 non-blocking when it wraps it in a stream.
        if (this.fd === 1) void process.stdout;
        else if (this.fd === 2) void process.stderr;
      }
    }
  }

  get dropped(): number {
    return this.droppedCount;
  }
  get sent(): number {
    return this.sentCount;
  }
  get queued(): number {
    return this.queue.length;
  }

  offer(entry: FlowEntry): void {
    if (this.closed || this.failed !== null) {
      this.countDropped(1, this.failed !== null ? 'error' : 'shutdown');
      return;
    }
    if (this.queue.push(entry) !== undefined) {
      this.droppedCount++;
      this.uncountedOverflow++;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.pending !== null || this.failed !== null) return;
    this.scheduled = true;
    if (this.batchDelayMs > 0) setTimeout(this.flushBound, this.batchDelayMs);
    else setImmediate(this.flushBound);
  }

  /** Moves queued records into the descriptor, one write per chunk, until it pushes back or the queue is empty. */
  private flush(): void {
    this.scheduled = false;
    while (this.pending === null && this.queue.length > 0 && this.failed === null) {
      let chunk = '';
      let lines = 0;
      while (chunk.length < this.maxChunkBytes) {
        const entry = this.queue.shift();
        if (entry === undefined) break;
        chunk += entryJson(entry) + '\n';
        lines++;
      }
      // Counted when handed over, as before: a record in the pending remainder is not lost.
      this.sentCount += lines;
      metrics.exportSent.inc({ exporter: 'stdout' }, lines);
      this.writeChunk(chunk);
    }
    metrics.exportQueueDepth.set({ exporter: 'stdout' }, this.queue.length);
  }

  /** One write(2); what the descriptor does not take becomes `pending`, retried by a timer. */
  private writeChunk(chunk: string): void {
    let written: number;
    try {
      written = writeSync(this.fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return this.keepPending(Buffer.from(chunk));
      return this.fail(err as Error);
    }
    // A pipe may take part of the chunk: keep the rest, as bytes (the split may fall inside a character).
    if (written < Buffer.byteLength(chunk)) this.keepPending(Buffer.from(chunk).subarray(written));
  }

  private keepPending(rest: Buffer): void {
    this.pending = rest;
    if (this.retryTimer === null && !this.closed) {
      this.retryTimer = setTimeout(this.retryBound, this.retryDelayMs);
      this.retryTimer.unref();
    }
  }

  /** Writes what is pending; returns true when nothing is left pending. */
  private writePending(): boolean {
    const rest = this.pending;
    if (rest === null) return true;
    let written: number;
    try {
      written = writeSync(this.fd, rest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
      this.fail(err as Error);
      return true;
    }
    this.pending = written < rest.length ? rest.subarray(written) : null;
    return this.pending === null;
  }

  private retry(): void {
    this.retryTimer = null;
    if (this.failed !== null) return;
    if (this.writePending()) {
      this.retryDelayMs = RETRY_FIRST_MS;
      if (this.queue.length > 0) this.flush();
      return;
    }
    // The reader is still behind: wait a little longer each time, bounded.
    this.retryDelayMs = Math.min(RETRY_MAX_MS, this.retryDelayMs * 2);
    if (!this.closed) {
      this.retryTimer = setTimeout(this.retryBound, this.retryDelayMs);
      this.retryTimer.unref();
    }
  }

  /**
   * EPIPE and friends: nobody reads our stdout any more. Everything from now on is lost, and
   * counted; the traffic path must not notice.
   */
  private fail(err: Error): void {
    this.failed = err;
    this.pending = null;
    this.dropAll('error');
  }

  private publishMetrics(): void {
    if (this.uncountedOverflow > 0) {
      metrics.exportDropped.inc({ exporter: 'stdout', reason: 'overflow' }, this.uncountedOverflow);
      this.uncountedOverflow = 0;
    }
    metrics.exportQueueDepth.set({ exporter: 'stdout' }, this.queue.length);
  }

  private countDropped(count: number, reason: string): void {
    this.droppedCount += count;
    metrics.exportDropped.inc({ exporter: 'stdout', reason }, count);
  }

  private dropAll(reason: string): void {
    const count = this.queue.length;
    this.queue.clear();
    if (count > 0) this.countDropped(count, reason);
    metrics.exportQueueDepth.set({ exporter: 'stdout' }, 0);
  }

  async close(deadlineMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // At shutdown everything queued goes out, as far as the reader takes it before the deadline.
    let waitMs = RETRY_FIRST_MS;
    for (;;) {
      if (this.writePending() && this.failed === null) {
        if (this.queue.length === 0) break;
        this.flush();
        continue;
      }
      if (this.failed !== null || Date.now() >= deadlineMs) break;
      await sleepUnref(Math.min(waitMs, deadlineMs - Date.now()));
      waitMs = Math.min(RETRY_MAX_MS, waitMs * 2);
    }
    // Whatever the reader did not take by the deadline is lost: counted, so the seq gap adds up.
    if (this.queue.length > 0) this.dropAll('shutdown');
    this.publishMetrics();
    this.removeCollectHook();
    if (this.ownsDestination) {
      try {
        closeSync(this.fd);
      } catch {
        // already gone: nothing left to flush into it
      }
    }
  }
}
