// Read buffers of closed connections, kept for the next ones: a short connection then costs no
// new buffer memory at all (two 64 KiB ArrayBuffers a connection made the garbage collector run
// for them: V8 counts their memory). Only buffers nothing refers to any more come back here (the
// relay's rule: a socket's current read buffer, once that socket is closed).
export class ReadBufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly bufferBytes: number,
    /** Buffers kept at most (bytes kept: bufferBytes × this). */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.bufferBytes);
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.keep && buffer.length === this.bufferBytes) this.free.push(buffer);
  }
}
