// The kernel-side relay (native/splice-relay.c): once nothing needs to see a connection's bytes,
// splice(2) moves them between its two sockets without their entering JavaScript. The sockets stay
// net.Sockets (paused, nothing queued) that JavaScript closes or resets when the native relay
// reports its end; byte counts come from the addon through a Float64Array read without a call.
import type { Socket } from 'node:net';
import { optionalNativeAddon } from './native-addon.js';

interface SpliceAddon {
  start(clientFd: number, upstreamFd: number, counters: Float64Array, onEnd: (kind: number, side: number, code: string | undefined) => void, done: number): object | string;
  stop(handle: object): [Buffer | null, Buffer | null];
  state(handle: object): number;
}

/** Without the addon connections keep the JS relay. */
const loadAddon = optionalNativeAddon<SpliceAddon>('splice_relay');

/** How the native relay ended. */
export type SpliceEnd =
  | { kind: 'done' } // FIN read and passed on in both directions
  | { kind: 'error'; side: 'client' | 'server'; code: string } // a read or write on that side failed (ECONNRESET, EPIPE, ...)
  | { kind: 'fallback'; code: string; taken: TakenBack }; // no pipe (EMFILE): the JS relay takes over with what was in flight

/** What stop() hands back: bytes in flight toward each side (written first), and which sides had sent their FIN. */
export interface TakenBack {
  toServer: Buffer | null;
  toClient: Buffer | null;
  clientEnded: boolean;
  serverEnded: boolean;
}

/** Counter slots written by the addon. */
const C2S_READ = 0;
const S2C_READ = 1;
const C2S_PENDING = 2;
const S2C_PENDING = 3;
const C2S_WRITTEN = 4;
const S2C_WRITTEN = 5;

/** Process-wide counts of the fast path, for /metrics and tests. */
export const spliceStats = { started: 0, refused: 0, fallbacks: 0, stopped: 0 };

interface WithFd {
  _handle?: { fd?: number } | null;
}

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as WithFd)._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

export class SpliceRelay {
  private readonly counters = new Float64Array(6);
  private handle: object | null = null;

  private constructor(private readonly onEnd: (end: SpliceEnd) => void) {}

  /** The addon is there (a build without it keeps every connection in the JS relay). */
  static get available(): boolean {
    return loadAddon() !== null;
  }

  /**
   * Moves the connection's bytes to the kernel. The caller has paused both sockets and made sure
   * nothing is queued on either (no read or write in progress); returns null when the addon
   * cannot take the descriptors (no addon, libuv still watching one), and the caller carries on.
   * A direction the caller already finished (FIN read and passed on) is named in `finished`.
   */
  static start(client: Socket, upstream: Socket, onEnd: (end: SpliceEnd) => void, finished = { clientToServer: false, serverToClient: false }): SpliceRelay | null {
    const native = loadAddon();
    const clientFd = fdOf(client);
    const upstreamFd = fdOf(upstream);
    if (native === null || clientFd < 0 || upstreamFd < 0) {
      ++spliceStats.refused;
      return null;
    }
    const relay = new SpliceRelay(onEnd);
    const done = (finished.clientToServer ? 1 : 0) | (finished.serverToClient ? 2 : 0);
    const handle = native.start(clientFd, upstreamFd, relay.counters, (kind, side, code) => relay.ended(kind, side, code), done);
    if (typeof handle === 'string') {
      ++spliceStats.refused;
      return null;
    }
    relay.handle = handle;
    ++spliceStats.started;
    return relay;
  }

  private ended(kind: number, side: number, code: string | undefined): void {
    if (kind === 2) {
      ++spliceStats.fallbacks;
      this.onEnd({ kind: 'fallback', code: code ?? 'EIO', taken: this.stop() });
      return;
    }
    this.handle = null;
    this.onEnd(kind === 0 ? { kind: 'done' } : { kind: 'error', side: side === 0 ? 'client' : 'server', code: code ?? 'EIO' });
  }

  /** The relay is still moving bytes. */
  get active(): boolean {
    return this.handle !== null;
  }

  /** Bytes read from the client / the server by the native relay. */
  get fromClient(): number {
    return this.counters[C2S_READ] as number;
  }
  get fromServer(): number {
    return this.counters[S2C_READ] as number;
  }
  /** Bytes written to the server / the client by the native relay. */
  get toServer(): number {
    return this.counters[C2S_WRITTEN] as number;
  }
  get toClient(): number {
    return this.counters[S2C_WRITTEN] as number;
  }
  /** Bytes read but not yet written (in the pipes): the connection's share of the write-queue budget. */
  get pending(): number {
    return (this.counters[C2S_PENDING] as number) + (this.counters[S2C_PENDING] as number);
  }
  /** Bytes read from the server and not yet written to the client. */
  get pendingToClient(): number {
    return this.counters[S2C_PENDING] as number;
  }

  /**
   * Takes the connection back (a capture joined it, or it is being ended): no end callback after
   * this. Returns the bytes that were in flight toward each side, which the caller writes first,
   * and which directions had already finished (FIN read from the client / the server).
   */
  stop(): TakenBack {
    const handle = this.handle;
    if (handle === null) return { toServer: null, toClient: null, clientEnded: false, serverEnded: false };
    this.handle = null;
    const native = loadAddon() as SpliceAddon; // loaded: a handle exists
    const state = native.state(handle);
    const [toServer, toClient] = native.stop(handle);
    ++spliceStats.stopped;
    return { toServer, toClient, clientEnded: (state & 1) !== 0, serverEnded: (state & 4) !== 0 };
  }
}
