// The most recent records as JSON lines in a fixed amount of byte memory. The ring behind
// `sidewall observe --last` used to hold the records themselves: every record then outlived a few
// young-generation collections and was promoted, and the old generation filled with records to be
// collected again (10 % of the sidecar's CPU under keep-alive load). Bytes in a few reused
// buffers are not garbage at all; the rare `--last` query decodes and parses them.
interface Segment {
  /** Allocated when the ring first reaches this segment: an idle sidecar holds one, not eight. */
  bytes: Buffer;
  used: number;
  /** End offset of each line in `bytes`. */
  readonly ends: number[];
}

const EMPTY = Buffer.alloc(0);

export class LineRing {
  private readonly segments: Segment[] = [];
  private current = 0;
  private readonly segmentSize: number;

  /**
   * @param capacityBytes memory for the lines, split into `segmentCount` buffers; the oldest
   *   buffer is cleared whole when the newest is full, so between (segmentCount-1)/segmentCount
   *   and all of it holds lines.
   */
  constructor(capacityBytes: number, segmentCount = 8) {
    this.segmentSize = Math.max(4096, Math.floor(capacityBytes / segmentCount));
    for (let i = 0; i < segmentCount; i++) this.segments.push({ bytes: EMPTY, used: 0, ends: [] });
  }

  /** Bytes of line memory allocated so far (at most the capacity). */
  get allocatedBytes(): number {
    let n = 0;
    for (const seg of this.segments) n += seg.bytes.length;
    return n;
  }

  /** Stores a line (UTF-8, no newline); one longer than a third of a segment is not kept. */
  append(line: string): void {
    let seg = this.segments[this.current] as Segment;
    const worst = line.length * 3; // UTF-8 bytes at most, without measuring the string
    if (worst > this.segmentSize) return;
    if (seg.bytes.length === 0) seg.bytes = Buffer.allocUnsafe(this.segmentSize);
    if (seg.used + worst > seg.bytes.length) {
      this.current = (this.current + 1) % this.segments.length;
      seg = this.segments[this.current] as Segment;
      if (seg.bytes.length === 0) seg.bytes = Buffer.allocUnsafe(this.segmentSize);
      seg.used = 0;
      seg.ends.length = 0;
    }
    seg.used += seg.bytes.write(line, seg.used, 'utf8');
    seg.ends.push(seg.used);
  }

  /** Lines from the newest back, until `visit` returns false. */
  newestFirst(visit: (line: string) => boolean): void {
    const n = this.segments.length;
    for (let k = 0; k < n; k++) {
      const seg = this.segments[(this.current - k + n) % n] as Segment;
      for (let i = seg.ends.length - 1; i >= 0; i--) {
        const start = i === 0 ? 0 : (seg.ends[i - 1] as number);
        if (!visit(seg.bytes.toString('utf8', start, seg.ends[i]))) return;
      }
    }
  }
}
