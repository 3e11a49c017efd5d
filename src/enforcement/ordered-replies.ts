// Routing for request/response database protocols (Redis, PostgreSQL, MySQL), where a denied
// request is not sent to the server but answered by us, IN ORDER among the server's replies to
// the requests before it (a pipelining client reads replies strictly in order):
//
// * ClientGate (client → server): the client's bytes are held from a request's first byte until
//   its verdict; then the request is forwarded, dropped, or replaced by other bytes (EXEC → DISCARD).
//   A request's end may be unknown at its verdict (a Redis SET's value still arriving): its region
//   stays open and the rest follows without being held. Only the bytes up to a verdict are held,
//   and the parsers bound those.
// * ReplyOrder (server → client): server bytes go on as they come; each complete reply answers
//   the oldest outstanding request; an answer of ours waits until every reply before it is out,
//   then goes between two replies. A reply may be replaced (the DISCARD's +OK becomes -EXECABORT):
//   its bytes are held until it is complete (it is small: we chose the command).
import { HeldBytes } from './held-bytes.js';
import { NO_OPS, type EnforcerOp, type RequestOutcome } from './types.js';

interface Region {
  start: number;
  end: number;
  action: 'forward' | 'drop';
  replaceWith: Buffer | null;
}

export class ClientGate {
  private held = new HeldBytes(0);
  private readonly regions: Region[] = [];
  private pos = 0;
  private passing = false;

  constructor(private readonly write: (bytes: Buffer) => void) {}

  push(chunk: Buffer): void {
    if (this.passing) {
      this.write(chunk);
      return;
    }
    this.held.push(chunk);
  }

  /** A request's verdict, from its first byte; `end` Infinity until `close` gives it. */
  decide(start: number, action: 'forward' | 'drop', replaceWith: Buffer | null = null, end = Number.POSITIVE_INFINITY): void {
    this.regions.push({ start, end, action, replaceWith });
  }

  /** The request that began at `start` ends at `end`; one that had no verdict (nothing to run) is dropped. */
  close(start: number, end: number): void {
    const last = this.regions[this.regions.length - 1];
    if (last !== undefined && last.start === start && last.end === Number.POSITIVE_INFINITY) last.end = end;
    else this.regions.push({ start, end, action: 'drop', replaceWith: null });
  }

  /** Client bytes held (awaiting a verdict). */
  get size(): number {
    return this.held.size;
  }

  /** Nothing held and no request open. */
  get idle(): boolean {
    return this.held.size === 0 && this.regions.length === 0;
  }

  pump(): void {
    for (;;) {
      const r = this.regions[0];
      if (r === undefined) return;
      if (this.pos < r.start) {
        // Bytes no request covers (cannot happen with our parsers' events): never forwarded.
        const to = Math.min(r.start, this.held.end);
        this.held.drop(to);
        this.pos = to;
        if (to < r.start) return;
      }
      if (this.pos === r.start && r.replaceWith !== null) {
        this.write(r.replaceWith);
        r.replaceWith = null;
      }
      const to = Math.min(r.end, this.held.end);
      if (to > this.pos) {
        if (r.action === 'forward') this.held.release(to, this.write);
        else this.held.drop(to);
        this.pos = to;
      }
      if (this.pos < r.end) return;
      this.regions.shift();
    }
  }

  /** Parsing stopped (monitor/learn parse error): everything held, and all that follows, goes on. */
  flushAll(): void {
    this.regions.length = 0;
    this.held.release(this.held.end, this.write);
    this.passing = true;
  }
}

export type Outstanding<T> =
  | { kind: 'reply'; info: T; replace: Buffer | null }
  | { kind: 'inject'; bytes: Buffer };

export class ReplyOrder<T> {
  private readonly queue: Array<Outstanding<T>> = [];
  /** Absolute offset of the next server byte, and where the last complete reply ended. */
  private offset = 0;
  private boundary = 0;
  /** Bytes of a reply being replaced, held until it completes. */
  private holding: Buffer[] | null = null;
  /** Replies no longer pair with requests (Pub/Sub, MONITOR, CLIENT REPLY OFF): answers go at the next boundary. */
  unordered = false;
  private pendingUnordered: Buffer[] = [];

  constructor(private readonly write: (bytes: Buffer) => void) {}

  /** A request went to the server and will be answered; `replace`: what the client gets instead. */
  expect(info: T, replace: Buffer | null = null): void {
    if (this.unordered) return;
    this.queue.push({ kind: 'reply', info, replace });
  }

  /** Our answer to a request, in its place among the replies. */
  answer(bytes: Buffer): void {
    if (this.unordered || this.queue.length === 0) {
      if (this.offset === this.boundary) this.write(bytes);
      else this.pendingUnordered.push(bytes);
      return;
    }
    this.queue.push({ kind: 'inject', bytes });
  }

  /** Requests awaiting a reply or an answer of ours. */
  get outstanding(): number {
    return this.queue.length + this.pendingUnordered.length;
  }

  /**
   * Server bytes `chunk` (at absolute offset `start`) and the ends of the complete replies in it
   * (`push`: out-of-band, answering no request). Calls `onReply` with each request's info.
   */
  route(chunk: Buffer, replies: ReadonlyArray<{ end: number; push: boolean }>, onReply: (info: T | null, end: number) => void): void {
    let cursor = this.offset;
    const base = this.offset;
    for (const r of replies) {
      this.emitBytes(chunk.subarray(cursor - base, r.end - base));
      cursor = r.end;
      this.offset = r.end;
      this.boundary = r.end;
      if (r.push) {
        this.flushHolding(null);
        this.flushUnordered();
        continue;
      }
      const head = this.queue[0];
      if (this.unordered || head === undefined || head.kind !== 'reply') {
        // A reply no request of ours waits for: we no longer know which reply answers what.
        this.flushHolding(null);
        if (!this.unordered) this.goUnordered();
        onReply(null, r.end);
        this.flushUnordered();
        continue;
      }
      this.queue.shift();
      this.flushHolding(head.replace);
      onReply(head.info, r.end);
      while (this.queue[0]?.kind === 'inject') this.write((this.queue.shift() as { bytes: Buffer }).bytes);
      this.flushUnordered();
    }
    this.emitBytes(chunk.subarray(cursor - base));
    this.offset = base + chunk.length;
    // The next reply begins now: if it is the one to replace, hold it.
    if (this.holding === null && this.offset === this.boundary && this.queue[0]?.kind === 'reply' && this.queue[0].replace !== null) this.holding = [];
  }

  private emitBytes(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.holding === null && this.offset === this.boundary && this.queue[0]?.kind === 'reply' && this.queue[0].replace !== null) this.holding = [];
    if (this.holding !== null) this.holding.push(Buffer.from(bytes));
    else this.write(bytes);
  }

  private flushHolding(replace: Buffer | null): void {
    const held = this.holding;
    this.holding = null;
    if (replace !== null) this.write(replace);
    else if (held !== null) for (const b of held) this.write(b);
  }

  private flushUnordered(): void {
    for (const b of this.pendingUnordered) this.write(b);
    this.pendingUnordered = [];
  }

  /** From now on replies do not pair with requests: our pending answers go at the next boundary. */
  goUnordered(): void {
    this.unordered = true;
    for (const e of this.queue) if (e.kind === 'inject') this.pendingUnordered.push(e.bytes);
    this.queue.length = 0;
    if (this.offset === this.boundary) this.flushUnordered();
  }

  /** Server bytes that already went to the client before routing began (a greeting forwarded while detecting). */
  skipForwarded(length: number): void {
    this.offset += length;
    this.boundary = this.offset;
  }

  /** Infos of requests still waiting for a reply (the connection closes). */
  drain(): T[] {
    const out: T[] = [];
    for (const e of this.queue) if (e.kind === 'reply') out.push(e.info);
    this.queue.length = 0;
    return out;
  }

  /** Parsing stopped: held bytes go as they are, our answers too. */
  flushAll(): void {
    this.flushHolding(null);
    for (const e of this.queue) if (e.kind === 'inject') this.write(e.bytes);
    this.queue.length = 0;
    this.flushUnordered();
    this.unordered = true;
    this.boundary = this.offset = Number.NaN; // never at a boundary again: answers would cut replies
  }
}

/**
 * The operations one enforcer call produces, in order, handed over at the call's end (the shared
 * NO_OPS when there are none, so most calls allocate nothing). The gate and the reply order write
 * their bytes into it.
 */
export class OpCollector {
  private ops: EnforcerOp[] = [];
  readonly toServer = (bytes: Buffer): void => {
    this.ops.push({ op: 'send', to: 'server', bytes });
  };
  readonly toClient = (bytes: Buffer): void => {
    this.ops.push({ op: 'send', to: 'client', bytes });
  };

  push(op: EnforcerOp): void {
    this.ops.push(op);
  }

  request(outcome: RequestOutcome): void {
    this.ops.push({ op: 'request', outcome });
  }

  take(): readonly EnforcerOp[] {
    if (this.ops.length === 0) return NO_OPS;
    const ops = this.ops;
    this.ops = [];
    return ops;
  }
}
