// What travels from the pipeline to the exporters: the record plus what is derived from it once
// and shared (its epoch time as a bigint for OTLP, its JSON line for every exporter).
import type { FlowRecord } from './types.js';

export interface FlowEntry {
  readonly record: FlowRecord;
  readonly epochNs: bigint;
  /** The record as one line of JSON (no newline); computed on first use, then shared. */
  json: string | undefined;
}

export function entryJson(entry: FlowEntry): string {
  let json = entry.json;
  if (json === undefined) {
    json = JSON.stringify(entry.record);
    entry.json = json;
  }
  return json;
}

/** An exporter: takes entries without blocking, loses the oldest when it cannot keep up. */
export interface FlowSink {
  readonly name: string;
  /** Synchronous and cheap: queue the entry, never wait for I/O. */
  offer(entry: FlowEntry): void;
  /** Stop accepting; flush what can be flushed before the deadline (epoch ms). */
  close(deadlineMs: number): Promise<void>;
}

/** Resolves after ms, without keeping the process alive. */
export function sleepUnref(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, Math.max(0, ms)).unref();
  });
}
