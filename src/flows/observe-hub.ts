// The in-memory side of the admin flow stream: a ring of the most recent records (for
// `sidewall observe --last N`) and the live subscribers (for `--follow`). Each subscriber has its
// own bounded queue, so one slow observer loses its own oldest records (and is told how many)
// without holding memory or slowing the traffic path.
import { BoundedQueue } from './bounded-queue.js';
import type { FlowEntry, FlowSink } from './entry.js';
import type { FlowPredicate } from './flow-filter.js';
import { metrics } from '../metrics/index.js';

export interface ObserveSubscriber {
  /** Called synchronously for each new record that passed the subscriber's filter. */
  deliver(entry: FlowEntry): void;
  /** The hub is closing: finish the stream. */
  end(): void;
  readonly matches: FlowPredicate;
}

export class ObserveHub implements FlowSink {
  readonly name = 'observe';
  private readonly ring: BoundedQueue<FlowEntry>;
  private readonly subscribers = new Set<ObserveSubscriber>();
  private closed = false;

  constructor(readonly ringSize: number = 4096) {
    this.ring = new BoundedQueue<FlowEntry>(Math.max(1, ringSize));
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  offer(entry: FlowEntry): void {
    if (this.closed) return;
    this.ring.push(entry);
    for (const subscriber of this.subscribers) {
      if (subscriber.matches(entry.record)) subscriber.deliver(entry);
    }
  }

  /** The last `count` records of the ring that match, oldest first. */
  recent(count: number, matches: FlowPredicate): FlowEntry[] {
    const found: FlowEntry[] = [];
    for (let i = this.ring.length - 1; i >= 0 && found.length < count; i--) {
      const entry = this.ring.at(i);
      if (entry !== undefined && matches(entry.record)) found.push(entry);
    }
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
