// Read buffers of closed connections, kept for the next ones: a short connection then costs no
// new buffer memory at all (two 64 KiB ArrayBuffers a connection made the garbage collector run
// for them: V8 counts their memory). Only buffers nothing refers to any more come back here (the
// relay's rule: a socket's current read buffer, once that socket is closed).
//
// The pages a read touched stay resident for as long as the buffer lives. Idle buffers give them
// back (native/release-memory.c): an idle connection's two (ProxiedConnection.checkIdle), and those
// parked here once no connection took one for a whole idle sweep.
import { optionalNativeAddon } from './native-addon.js';

interface ReleaseMemoryAddon {
  releasePages(view: Uint8Array): number;
  trimHeap(): boolean;
}

/** Without the addon memory is only not given back. */
const releaseMemory = optionalNativeAddon<ReleaseMemoryAddon>('release_memory');

/**
 * Gives the resident pages of a buffer whose contents nothing needs back to the kernel; the
 * buffer stays usable (its next read faults in zeroed pages). Returns the bytes given back.
 */
export function releasePages(buffer: Uint8Array): number {
  return releaseMemory()?.releasePages(buffer) ?? 0;
}

export class ReadBufferPool {
  private readonly free: Buffer[] = [];
  /** free[0, released) have had their pages given back since they were parked. */
  private released = 0;
  private takenSinceSweep = false;
  /** The heap was trimmed since the last take: once per quiet spell. */
  private trimmed = true;

  constructor(
    readonly bufferBytes: number,
    /** Buffers kept at most (bytes kept: bufferBytes × this). */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    this.takenSinceSweep = true;
    this.trimmed = false;
    const buffer = this.free.pop();
    if (this.released > this.free.length) this.released = this.free.length;
    return buffer ?? Buffer.allocUnsafe(this.bufferBytes);
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.keep && buffer.length === this.bufferBytes) this.free.push(buffer);
  }

  /**
   * Called by each idle sweep: when no connection took a buffer since the last one, the pages of
   * the buffers parked since then go back to the kernel (while connections come and go, the pool
   * is in use and keeps them), and the first such sweep after reads trims the heap. Returns the
   * bytes of parked buffers given back.
   */
  releaseIdle(): number {
    if (this.takenSinceSweep) {
      this.takenSinceSweep = false;
      return 0;
    }
    let bytes = 0;
    for (let i = this.released; i < this.free.length; i++) bytes += releasePages(this.free[i]!);
    this.released = this.free.length;
    if (!this.trimmed) {
      this.trimmed = true;
      releaseMemory()?.trimHeap();
    }
    return bytes;
  }
}
