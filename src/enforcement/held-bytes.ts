// Bytes of one side held back until a verdict releases or drops them, addressed by absolute
// stream offset. Chunks are kept as received (views of the relay's read buffers) until the read
// returns; then compact() copies the small ones into memory of our own, so a 64 KiB read buffer
// is never pinned by the 11 bytes a slow client sent, and the relay may reuse it for the next read.
// Releasing hands out views, never copies: bytes copied into our own memory are never rewritten
// (later copies go after them), so a view handed to a socket write stays valid.

/** Chunks shorter than this are copied out of their read buffer; longer ones use at least a quarter of a 64 KiB buffer. */
export const COMPACT_BELOW = 16 * 1024;
/** Size of the first buffer of our own; each next one doubles, up to COMPACT_BELOW × 4. */
const FIRST_OWN_BYTES = 1024;

export class HeldBytes {
  private chunks: Buffer[] = [];
  private length = 0;
  /** Held chunks that are views of memory not our own (read buffers); 0 after compact() of small chunks. */
  private foreign = 0;
  /** Memory of our own that copies are appended to, and how much of it is used. */
  private own: Buffer | null = null;
  private ownUsed = 0;

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

  /** True while some held bytes are views of a buffer we were given (the caller must not reuse it). */
  get holdsViews(): boolean {
    return this.foreign > 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
    ++this.foreign;
  }

  /**
   * Copies held views shorter than COMPACT_BELOW into memory of our own, merging neighbours.
   * Called when a read returns with bytes still held; cheap when nothing is (the common case).
   */
  compact(): void {
    if (this.foreign === 0) return;
    const out: Buffer[] = [];
    let foreign = 0;
    for (const chunk of this.chunks) {
      if (this.isOwn(chunk) || chunk.length >= COMPACT_BELOW) {
        if (!this.isOwn(chunk)) ++foreign;
        out.push(chunk);
        continue;
      }
      const copy = this.copyIn(chunk);
      const last = out[out.length - 1];
      // Contiguous with the previous copy: one view instead of two (11-byte segments become one chunk).
      if (last !== undefined && last.buffer === copy.buffer && last.byteOffset + last.length === copy.byteOffset) {
        out[out.length - 1] = Buffer.from(copy.buffer, last.byteOffset, last.length + copy.length);
      } else out.push(copy);
    }
    this.chunks = out;
    this.foreign = foreign;
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

  private isOwn(chunk: Buffer): boolean {
    // Our copies live in buffers allocated by copyIn(), each its own ArrayBuffer (allocUnsafeSlow).
    return chunk.buffer === this.own?.buffer || OWN_BUFFERS.has(chunk.buffer);
  }

  private copyIn(chunk: Buffer): Buffer {
    let own = this.own;
    if (own === null || own.length - this.ownUsed < chunk.length) {
      const size = Math.max(chunk.length, own === null ? FIRST_OWN_BYTES : Math.min(own.length * 2, COMPACT_BELOW * 4));
      own = Buffer.allocUnsafeSlow(size);
      OWN_BUFFERS.add(own.buffer);
      this.own = own;
      this.ownUsed = 0;
    }
    chunk.copy(own, this.ownUsed);
    const copy = own.subarray(this.ownUsed, this.ownUsed + chunk.length);
    this.ownUsed += chunk.length;
    return copy;
  }

  private consume(until: number, emit: ((bytes: Buffer) => void) | undefined): void {
    let remaining = Math.min(until, this.end) - this.base;
    while (remaining > 0) {
      const chunk = this.chunks[0] as Buffer;
      if (chunk.length <= remaining) {
        this.chunks.shift();
        if (!this.isOwn(chunk)) --this.foreign;
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
    // Nothing held: let our copy memory go (views already handed out keep it alive until written).
    if (this.length === 0) {
      this.own = null;
      this.ownUsed = 0;
    }
  }
}

/** ArrayBuffers allocated for copies (weakly held: they go with their last view). */
const OWN_BUFFERS = new WeakSet<ArrayBufferLike>();
