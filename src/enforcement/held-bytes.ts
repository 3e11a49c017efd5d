// Bytes of one side held back until a verdict releases or drops them, addressed by absolute
// stream offset. Chunks are kept as received; releasing hands out views, never copies.
export class HeldBytes {
  private chunks: Buffer[] = [];
  private length = 0;

  /** @param base absolute offset of the first byte that will be pushed */
  constructor(private base = 0) {}

  get start(): number {
    return this.base;
  }

  /** Absolute offset one past the last held byte. */
  get end(): number {
    return this.base + this.length;
  }

  get size(): number {
    return this.length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Hands `emit` the held bytes before absolute offset `until`, in order, and forgets them. */
  release(until: number, emit: (bytes: Buffer) => void): void {
    this.consume(until, emit);
  }

  /** Forgets the held bytes before absolute offset `until`. */
  drop(until: number): void {
    this.consume(until, undefined);
  }

  /** The first `n` held bytes as one buffer (a copy only when they span chunks). */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length >= n || this.chunks.length === 1) return first.subarray(0, n);
    return Buffer.concat(this.chunks, Math.min(n, this.length)).subarray(0, n);
  }

  /** Every held byte, as views, without forgetting them. */
  forEach(visit: (bytes: Buffer) => void): void {
    for (const c of this.chunks) visit(c);
  }

  private consume(until: number, emit: ((bytes: Buffer) => void) | undefined): void {
    let remaining = Math.min(until, this.end) - this.base;
    while (remaining > 0) {
      const chunk = this.chunks[0] as Buffer;
      if (chunk.length <= remaining) {
        this.chunks.shift();
        emit?.(chunk);
        remaining -= chunk.length;
        this.base += chunk.length;
        this.length -= chunk.length;
      } else {
        emit?.(chunk.subarray(0, remaining));
        this.chunks[0] = chunk.subarray(remaining);
        this.base += remaining;
        this.length -= remaining;
        remaining = 0;
      }
    }
  }
}
