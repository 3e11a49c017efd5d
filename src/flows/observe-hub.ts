// The in-memory side of the admin flow stream: a ring of the most recent records (for
// `sidewall observe --last N`) and the live subscribers (for `--follow`). Each subscriber has its
// own bounded queue, so one slow observer loses its own oldest records (and is told how many)
// without holding memory or slowing the traffic path. The ring keeps JSON lines in byte buffers
// (LineRing), written once per event-loop turn, so records do not outlive the turn for its sake.
import { BoundedQueue } from './bounded-queue.js';
import { parseRfc3339Nano } from './clock.js';
import { entryJson, type FlowEntry, type FlowSink } from './entry.js';
import type { FlowPredicate } from './flow-filter.js';
import { LineRing } from './line-ring.js';
import type { FlowRecord } from './types.js';
import { metrics } from '../metrics/index.js';

/** Ring memory per record of `ringSize` (a record line is ≈ 300–700 bytes). */
const RING_BYTES_PER_RECORD = 512;

export interface ObserveSubscriber {
  /** Called synchronously for each new record that passed the subscriber's filter. */
  deliver(entry: FlowEntry): void;
  /** The hub is closing: finish the stream. */
  end(): void;
  readonly matches: FlowPredicate;
}

export class ObserveHub implements FlowSink {
  readonly name = 'observe';
  private readonly ring: LineRing;
  /** Records of this turn, not yet in the ring. */
  private pending: FlowEntry[] = [];
  private readonly storeBound = (): void => this.storePending();
  private readonly subscribers = new Set<ObserveSubscriber>();
  private closed = false;

  /** @param ringSize about how many recent records `recent()` can return. */
  constructor(readonly ringSize: number = 4096) {
    this.ring = new LineRing(Math.max(1, ringSize) * RING_BYTES_PER_RECORD);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  offer(entry: FlowEntry): void {
    if (this.closed) return;
    if (this.pending.push(entry) === 1) setImmediate(this.storeBound);
    for (const subscriber of this.subscribers) {
      if (subscriber.matches(entry.record)) subscriber.deliver(entry);
    }
  }

  private storePending(): void {
    const pending = this.pending;
    this.pending = [];
    for (const entry of pending) this.ring.append(entryJson(entry));
  }

  /** The last `count` records of the ring that match, oldest first. */
  recent(count: number, matches: FlowPredicate): FlowEntry[] {
    this.storePending();
    const found: FlowEntry[] = [];
    if (count <= 0) return found;
    this.ring.newestFirst((json) => {
      const record = JSON.parse(json) as FlowRecord;
      if (matches(record)) found.push({ record, epochNs: parseRfc3339Nano(record.time) ?? 0n, json });
      return found.length < count;
    });
    return found.reverse();
  }

  subscribe(subscriber: ObserveSubscriber): () => void {
    if (this.closed) {
      subscriber.end();
      return () => undefined;
    }
    this.subscribers.add(subscriber);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  async close(_deadlineMs: number): Promise<void> {
    this.closed = true;
    for (const subscriber of this.subscribers) subscriber.end();
    this.subscribers.clear();
  }
}

/** A subscriber's bounded queue with drop-oldest accounting. */
export class SubscriberQueue {
  private readonly queue: BoundedQueue<FlowEntry>;
  private lostCount = 0;

  constructor(capacity: number) {
    this.queue = new BoundedQueue<FlowEntry>(capacity);
  }

  push(entry: FlowEntry): void {
    if (this.queue.push(entry) !== undefined) this.lostCount++;
  }

  shift(): FlowEntry | undefined {
    return this.queue.shift();
  }

  get length(): number {
    return this.queue.length;
  }

  /** Records lost since the last call. */
  takeLost(): number {
    const lost = this.lostCount;
    if (lost > 0) metrics.exportDropped.inc({ exporter: 'observe', reason: 'overflow' }, lost);
    this.lostCount = 0;
    return lost;
  }
}
