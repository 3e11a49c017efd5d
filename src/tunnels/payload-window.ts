// The first bytes of one payload (an HTTP body, or one side of a stream after CONNECT/Upgrade),
// with the byte statistics the detectors need kept up to date as bytes arrive: a histogram for
// Shannon entropy (bits per byte) and counts of bytes that never occur in text.
//
// Bounded by design: a window holds at most `capacity` bytes (the inspector's payload budget),
// so the per-byte work is at most `capacity` per body. The bytes are copied (not viewed) because
// a body arrives in pieces and the SSH signature may straddle two of them; the copy is bounded by
// the same budget and the buffer is reused for every body of the connection.

/** c·log2(c) for every count a window can reach, so entropy is O(1) to update and to read. */
function cLogCTable(max: number): Float64Array {
  const table = new Float64Array(max + 1);
  for (let c = 2; c <= max; c++) table[c] = c * Math.log2(c);
  return table;
}

const tables = new Map<number, Float64Array>();

/**
 * Bytes that text never contains: C0 controls other than TAB, LF, VT, FF, CR and ESC (ANSI
 * colours in logs), and DEL. NUL counts too.
 */
function isBinaryByte(b: number): boolean {
  return (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0b && b !== 0x0c && b !== 0x0d && b !== 0x1b) || b === 0x7f;
}

export class PayloadWindow {
  /** Lazily allocated: most connections never show a payload. */
  private store: Buffer | null = null;
  length = 0;
  /** Bytes that do not occur in text (see isBinaryByte). */
  binaryBytes = 0;
  private readonly counts: Uint16Array;
  private sumCLogC = 0;
  private readonly cLogC: Float64Array;

  constructor(readonly capacity: number) {
    this.counts = new Uint16Array(256);
    let table = tables.get(capacity);
    if (table === undefined) {
      table = cLogCTable(capacity);
      tables.set(capacity, table);
    }
    this.cLogC = table;
  }

  get full(): boolean {
    return this.length >= this.capacity;
  }

  /** The bytes seen so far (a view). */
  get bytes(): Buffer {
    return this.store === null ? Buffer.alloc(0) : this.store.subarray(0, this.length);
  }

  reset(): void {
    if (this.length > 0) this.counts.fill(0);
    this.length = 0;
    this.binaryBytes = 0;
    this.sumCLogC = 0;
  }

  /** Appends what fits; returns how many bytes were taken. */
  append(chunk: Buffer): number {
    const take = Math.min(chunk.length, this.capacity - this.length);
    if (take <= 0) return 0;
    this.store ??= Buffer.allocUnsafe(this.capacity);
    chunk.copy(this.store, this.length, 0, take);
    this.addStats(chunk, 0, take);
    this.length += take;
    return take;
  }

  /** Appends one byte (used by the WebSocket unmasker, which produces bytes one at a time). */
  appendByte(b: number): boolean {
    if (this.length >= this.capacity) return false;
    this.store ??= Buffer.allocUnsafe(this.capacity);
    this.store[this.length++] = b;
    this.count(b);
    return true;
  }

  private addStats(chunk: Buffer, from: number, to: number): void {
    for (let i = from; i < to; i++) this.count(chunk[i]!);
  }

  private count(b: number): void {
    const c = this.counts[b]!;
    this.sumCLogC += this.cLogC[c + 1]! - this.cLogC[c]!;
    this.counts[b] = c + 1;
    if (isBinaryByte(b)) this.binaryBytes++;
  }

  /** Shannon entropy of the bytes so far, in bits per byte (0..8). */
  entropy(): number {
    const n = this.length;
    if (n < 2) return 0;
    return Math.max(0, Math.log2(n) - this.sumCLogC / n);
  }

  /**
   * Entropy relative to the most a sample of this size can show (log2 of min(n, 256)): random
   * and compressed bytes score ~0.9+, base64 ~0.75, text lower. Sample entropy is biased low for
   * small samples, which this ratio partly corrects.
   */
  entropyRatio(): number {
    const n = this.length;
    if (n < 2) return 0;
    return this.entropy() / Math.log2(Math.min(n, 256));
  }

  /** The first bytes in hex, for evidence. */
  hexHead(count = 12): string {
    return this.bytes.subarray(0, count).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  }
}
