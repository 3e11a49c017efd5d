// The most recent records as JSON lines in a fixed amount of byte memory. The ring behind
// `sidewall observe --last` used to hold the records themselves: every record then outlived a few
// young-generation collections and was promoted, and the old generation filled with records to be
// collected again (10 % of the sidecar's CPU under keep-alive load). Bytes in a few reused
// buffers are not garbage at all; the rare `--last` query decodes and parses them.
interface Segment {
  readonly bytes: Buffer;
  used: number;
  /** End offset of each line in `bytes`. */
  readonly ends: number[];
}

export class LineRing {
  private readonly segments: Segment[] = [];
  private current = 0;

  /**
   * @param capacityBytes memory for the lines, split into `segmentCount` buffers; the oldest
   *   buffer is cleared whole when the newest is full, so between (segmentCount-1)/segmentCount
   *   and all of it holds lines.
   */
  constructor(capacityBytes: number, segmentCount = 8) {
    const size = Math.max(4096, Math.floor(capacityBytes / segmentCount));
    for (let i = 0; i < segmentCount; i++) this.segments.push({ bytes: Buffer.allocUnsafe(size), used: 0, ends: [] });
  }

  /** Stores a line (UTF-8, no newline); one longer than a third of a segment is not kept. */
  append(line: string): void {
    let seg = this.segments[this.current] as Segment;
    const worst = line.length * 3; // UTF-8 bytes at most, without measuring the string
    if (worst > seg.bytes.length) return;
    if (seg.used + worst > seg.bytes.length) {
      this.current = (this.current + 1) % this.segments.length;
      seg = this.segments[this.current] as Segment;
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
