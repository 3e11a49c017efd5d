// HPACK header block decoding (RFC 7541): integer (§5.1) and string (§5.2) primitives, the
// dynamic table (§2.3.2, §4) and the field representations (§6). Besides the decoded fields it
// reports, for each representation, its byte span in the block and whether it changed the
// dynamic table, so a proxy that drops a block can keep the peer's decoder in sync.
import type { HpackFieldSpan, HpackRepresentation } from '../types.js';
import { decodeHuffman } from './hpack-huffman.js';
import { STATIC_TABLE } from './hpack-static-table.js';

/** RFC 7541 §4.1: each entry costs its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;
export const HPACK_DEFAULT_TABLE_SIZE = 4096;
/**
 * Largest dynamic table we keep, whatever the endpoints advertise (SETTINGS_HEADER_TABLE_SIZE
 * is a 32-bit value: two peers agreeing on 4 GiB would make us keep what they keep). 64 KiB is
 * 16 times the default every common stack uses (nghttp2, Go, grpc, Envoy, Node); an encoder
 * that grows its table past it is refused (fail closed: the connection cannot be followed).
 */
export const HPACK_MAX_TABLE_SIZE = 64 * 1024;
/** Memory an entry costs beyond its RFC 7541 size (the Entry object, two string headers). */
const ENTRY_MEMORY_OVERHEAD = 64;

/** Why a block failed; the parser maps it to an error class with an absolute offset. */
export class HpackDecodeFailure {
  constructor(
    readonly kind: 'compression' | 'too-large',
    /** Offset within the block. */
    readonly at: number,
    readonly detail: string,
  ) {}
}

export interface DecodedHeaderBlock {
  readonly fields: HpackFieldSpan[];
  readonly mutatesTable: boolean;
}

interface Entry {
  readonly name: string;
  readonly value: string;
  readonly size: number;
}

export class HpackDecoder {
  /** Oldest first; dynamic index 1 is the last element. */
  private entries: Entry[] = [];
  private size = 0;
  private maxSize = HPACK_DEFAULT_TABLE_SIZE;
  /** Largest size the decoding endpoint allowed (SETTINGS_HEADER_TABLE_SIZE). */
  private limit = HPACK_DEFAULT_TABLE_SIZE;
  private pos = 0;
  private block: Buffer = Buffer.alloc(0);

  /** Decoded header lists larger than this (RFC 7541 §4.1 sizes) are refused. */
  constructor(private readonly maxHeaderListSize = 256 * 1024) {}

  /** The decoding side advertised SETTINGS_HEADER_TABLE_SIZE = `value`. */
  allowTableSize(value: number): void {
    // Settings take effect when acknowledged; accepting the largest advertised value keeps us
    // from rejecting what the real endpoint may still accept.
    this.limit = Math.max(this.limit, Math.min(value, HPACK_MAX_TABLE_SIZE));
  }

  /** Memory the dynamic table keeps (estimate: RFC sizes plus per-entry objects), for the state budget. */
  get memoryBytes(): number {
    return this.size + this.entries.length * ENTRY_MEMORY_OVERHEAD;
  }

  get tableSize(): number {
    return this.size;
  }

  get tableEntries(): number {
    return this.entries.length;
  }

  /** Decode a complete header block. Returns the fields, or a failure (the block is bad). */
  decode(block: Buffer): DecodedHeaderBlock | HpackDecodeFailure {
    this.block = block;
    this.pos = 0;
    const fields: HpackFieldSpan[] = [];
    let mutates = false;
    let listSize = 0;
    let sawField = false;
    while (this.pos < block.length) {
      const start = this.pos;
      const b = block[start]!;
      let representation: HpackRepresentation;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // §6.1 Indexed Header Field
        const index = this.integer(7);
        if (index < 0) return this.failure(start, 'integer overflow');
        if (index === 0) return this.failure(start, 'indexed field with index 0');
        const entry = this.lookup(index);
        if (entry === null) return this.failure(start, `index ${index} is not in the table`);
        representation = 'indexed';
        name = entry[0];
        value = entry[1];
      } else if ((b & 0xe0) === 0x20) {
        // §6.3 Dynamic Table Size Update: only at the start of a block.
        const newSize = this.integer(5);
        if (newSize < 0) return this.failure(start, 'integer overflow');
        if (sawField) return this.failure(start, 'table size update after a header field');
        if (newSize > this.limit) return this.failure(start, `table size update to ${newSize} exceeds the allowed ${this.limit}`);
        this.maxSize = newSize;
        this.evict(0);
        fields.push({ start, end: this.pos, representation: 'size-update', mutatesTable: true, name: '', value: '' });
        mutates = true;
        continue;
      } else {
        const incremental = (b & 0xc0) === 0x40;
        const prefix = incremental ? 6 : 4;
        representation = incremental
          ? 'literal-incremental'
          : (b & 0xf0) === 0x10
            ? 'literal-never-indexed'
            : 'literal-without-indexing';
        const index = this.integer(prefix);
        if (index < 0) return this.failure(start, 'integer overflow');
        if (index === 0) {
          const literal = this.string();
          if (literal === null) return this.failure(start, 'bad name string');
          name = literal;
        } else {
          const entry = this.lookup(index);
          if (entry === null) return this.failure(start, `name index ${index} is not in the table`);
          name = entry[0];
        }
        const literal = this.string();
        if (literal === null) return this.failure(start, 'bad value string');
        value = literal;
        if (incremental) {
          this.insert(name, value);
          mutates = true;
        }
      }
      sawField = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.maxHeaderListSize) {
        return new HpackDecodeFailure('too-large', start, `decoded header list exceeds ${this.maxHeaderListSize} bytes`);
      }
      fields.push({ start, end: this.pos, representation, mutatesTable: representation === 'literal-incremental', name, value });
    }
    return { fields, mutatesTable: mutates };
  }

  private failure(at: number, detail: string): HpackDecodeFailure {
    return new HpackDecodeFailure('compression', at, detail);
  }

  /** §5.1 integer with an N-bit prefix; -1 on truncation or overflow past 2^31. */
  private integer(prefixBits: number): number {
    const block = this.block;
    const mask = (1 << prefixBits) - 1;
    let value = block[this.pos++]! & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= block.length) return -1;
      const b = block[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (value > 0x7fffffff) return -1;
      if ((b & 0x80) === 0) return value;
      shift += 7;
      if (shift > 28) return -1; // more continuation octets than a 31-bit value needs
    }
  }

  /** §5.2 string literal; null when truncated or a bad Huffman string. */
  private string(): string | null {
    const block = this.block;
    if (this.pos >= block.length) return null;
    const huffman = (block[this.pos]! & 0x80) !== 0;
    const length = this.integer(7);
    if (length < 0 || this.pos + length > block.length) return null;
    const start = this.pos;
    this.pos += length;
    return huffman ? decodeHuffman(block, start, start + length) : block.toString('latin1', start, start + length);
  }

  private lookup(index: number): readonly [string, string] | null {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] ?? null;
    const entry = this.entries[this.entries.length - (index - STATIC_TABLE.length)];
    return entry === undefined ? null : [entry.name, entry.value];
  }

  /** §4.4: evict until the new entry fits; an entry larger than the table empties it. */
  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      this.entries = [];
      this.size = 0;
      return;
    }
    this.evict(size);
    this.entries.push({ name, value, size });
    this.size += size;
  }

  private evict(room: number): void {
    let drop = 0;
    while (this.size + room > this.maxSize && drop < this.entries.length) {
      this.size -= this.entries[drop]!.size;
      drop++;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}
