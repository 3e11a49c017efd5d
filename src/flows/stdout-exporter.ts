// Flow records to stdout (or a file) as JSON lines, through pino's asynchronous destination
// (sonic-boom with sync: false). The traffic path only pushes onto a bounded queue; a
// setImmediate-scheduled writer moves batches into the destination while the destination accepts
// them (write() returns true) and waits for its 'drain' otherwise. If stdout is slower than the
// traffic, the queue overflows and the OLDEST records are dropped and counted, so a reader sees
// the loss as a seq gap equal to sidewall_flow_export_dropped_total{exporter="stdout"}.
import pino from 'pino';
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
}

type AsyncDestination = ReturnType<typeof pino.destination>;

export class StdoutExporter implements FlowSink {
  readonly name = 'stdout';
  private readonly queue: BoundedQueue<FlowEntry>;
  private readonly destination: AsyncDestination;
  private readonly maxChunkBytes: number;
  private readonly ownsDestination: boolean;
  private scheduled = false;
  private awaitingDrain = false;
  private closed = false;
  private failed: Error | null = null;
  private droppedCount = 0;
  /** Overflow drops not yet added to the prom-client counter (see addCollectHook). */
  private uncountedOverflow = 0;
  private sentCount = 0;
  private readonly removeCollectHook = addCollectHook(() => this.publishMetrics());
  private readonly flushBound = (): void => this.flush();
  private readonly onDrainBound = (): void => this.onDrain();

  constructor(options: StdoutExporterOptions = {}) {
    this.queue = new BoundedQueue<FlowEntry>(options.queueSize ?? 10_000);
    this.maxChunkBytes = options.maxChunkBytes ?? 64 * 1024;
    this.ownsDestination = options.path !== undefined;
    this.destination = pino.destination({
      dest: options.path ?? options.fd ?? 1,
      sync: false,
      minLength: 0,
      mkdir: options.path !== undefined,
    });
    this.destination.on('drain', this.onDrainBound);
    this.destination.on('error', (err: Error) => {
      // EPIPE and friends: nobody reads our stdout any more. Everything from now on is lost, and
      // counted; the traffic path must not notice.
      this.failed = err;
      this.dropAll('error');
    });
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
    if (this.scheduled || this.awaitingDrain) return;
    this.scheduled = true;
    setImmediate(this.flushBound);
  }

  private onDrain(): void {
    if (!this.awaitingDrain) return;
    this.awaitingDrain = false;
    if (this.queue.length > 0) this.schedule();
  }

  /** Moves queued records into the destination until it pushes back or the queue is empty. */
  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.failed === null) {
      let chunk = '';
      let lines = 0;
      while (chunk.length < this.maxChunkBytes) {
        const entry = this.queue.shift();
        if (entry === undefined) break;
        chunk += entryJson(entry) + '\n';
        lines++;
      }
      const accepted = this.destination.write(chunk);
      this.sentCount += lines;
      metrics.exportSent.inc({ exporter: 'stdout' }, lines);
      if (!accepted) {
        this.awaitingDrain = true;
        break;
      }
    }
    metrics.exportQueueDepth.set({ exporter: 'stdout' }, this.queue.length);
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
    // At shutdown the destination's own buffer may grow without bound: hand it everything.
    this.awaitingDrain = false;
    this.flushAllUnbounded();
    const flushed = new Promise<void>((resolve) => {
      if (this.failed !== null) return resolve();
      this.destination.flush((err?: Error | null) => {
        if (err) this.failed = err;
        resolve();
      });
    });
    await Promise.race([flushed, sleepUnref(deadlineMs - Date.now())]);
    this.destination.off('drain', this.onDrainBound);
    this.publishMetrics();
    this.removeCollectHook();
    if (this.ownsDestination && this.failed === null) {
      await new Promise<void>((resolve) => {
        this.destination.once('close', () => resolve());
        this.destination.once('error', () => resolve());
        this.destination.end();
        void sleepUnref(deadlineMs - Date.now()).then(resolve);
      });
    }
  }

  private flushAllUnbounded(): void {
    if (this.failed !== null) return this.dropAll('error');
    let lines = 0;
    let chunk = '';
    for (let entry = this.queue.shift(); entry !== undefined; entry = this.queue.shift()) {
      chunk += entryJson(entry) + '\n';
      lines++;
      if (chunk.length >= this.maxChunkBytes) {
        this.destination.write(chunk);
        chunk = '';
      }
    }
    if (chunk.length > 0) this.destination.write(chunk);
    this.sentCount += lines;
    if (lines > 0) metrics.exportSent.inc({ exporter: 'stdout' }, lines);
    metrics.exportQueueDepth.set({ exporter: 'stdout' }, 0);
  }
}
