// Collects a fixed-size piece or a line that may arrive split across chunks. When the piece is
// wholly inside one chunk it is returned as a view of that chunk (no copy); otherwise it is
// copied once into a buffer of exactly the needed size, so a slow drip stays linear.

export class FixedGather {
  private buf: Buffer | null = null;
  private have = 0;
  /** Bytes of the last chunk `take` used. */
  used = 0;

  /** True while a piece is partly collected. */
  get pending(): boolean {
    return this.have > 0;
  }

  /** Memory kept for the piece being collected (its whole size is allocated at once). */
  get pendingBytes(): number {
    return this.buf === null ? 0 : this.buf.length;
  }

  /**
   * Obtain `need` bytes starting at `chunk[pos]`. Returns them, or null when the chunk ran out
   * (the bytes were kept; call again with the next chunk and the same `need`).
   */
  take(chunk: Buffer, pos: number, need: number): Buffer | null {
    const avail = chunk.length - pos;
    if (this.buf === null) {
      if (avail >= need) {
        this.used = need;
        return chunk.subarray(pos, pos + need);
      }
      this.buf = Buffer.allocUnsafe(need);
      chunk.copy(this.buf, 0, pos);
      this.have = avail;
      this.used = avail;
      return null;
    }
    const n = Math.min(need - this.have, avail);
    chunk.copy(this.buf, this.have, pos, pos + n);
    this.have += n;
    this.used = n;
    if (this.have < need) return null;
    const out = this.buf;
    this.buf = null;
    this.have = 0;
    return out;
  }

  reset(): void {
    this.buf = null;
    this.have = 0;
  }
}

export class LineGather {
  private parts: Buffer[] = [];
  private have = 0;
  /** Bytes of the last chunk `take` used. */
  used = 0;

  /** Bytes of an unfinished line kept so far. */
  get pendingLength(): number {
    return this.have;
  }

  /**
   * Obtain the bytes from `chunk[pos]` up to and including the next LF. Returns null when the
   * chunk ran out first (kept; check `pendingLength` against your cap).
   */
  take(chunk: Buffer, pos: number): Buffer | null {
    const lf = chunk.indexOf(0x0a, pos);
    if (lf < 0) {
      const rest = chunk.subarray(pos);
      if (rest.length > 0) {
        // Copied: the caller may reuse its chunk buffers once feed returns.
        this.parts.push(Buffer.from(rest));
        this.have += rest.length;
      }
      this.used = chunk.length - pos;
      return null;
    }
    this.used = lf + 1 - pos;
    const tail = chunk.subarray(pos, lf + 1);
    if (this.have === 0) return tail;
    this.parts.push(tail);
    const line = Buffer.concat(this.parts, this.have + tail.length);
    this.parts = [];
    this.have = 0;
    return line;
  }
}
