// A minimal HPACK encoder (RFC 7541 §6.2.2, Literal Header Field without Indexing) for the
// responses the proxy injects (403, gRPC trailers-only). It never indexes, so it never changes
// the peer's dynamic table and can be spliced between the real endpoints' header blocks.
import type { HeaderList, HpackFieldSpan } from '../types.js';
import { staticNameIndex } from './hpack-static-table.js';

function writeInteger(out: number[], firstByteFlags: number, prefixBits: number, value: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(firstByteFlags | value);
    return;
  }
  out.push(firstByteFlags | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  writeInteger(out, 0x00, 7, bytes.length); // H = 0: raw octets
  for (const b of bytes) out.push(b);
}

/**
 * Encode `fields` (names lower-case, pseudo-headers first) as literals without indexing.
 * Names found in the static table are referenced by index; nothing else is table-dependent.
 */
export function encodeLiteralHeaderBlock(fields: HeaderList): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const index = staticNameIndex(name);
    if (index > 0) {
      writeInteger(out, 0x00, 4, index);
    } else {
      out.push(0x00);
      writeString(out, name);
    }
    writeString(out, value);
  }
  return Buffer.from(out);
}

/**
 * Re-encodes a decoded header block (RFC 7541 §6.2.2 / §6.2.3) so that it depends on no dynamic
 * table: the fields in order, size updates left out, never-indexed fields kept never-indexed
 * (§7.1.3: an intermediary must not index them either). The peer's table is left as it is.
 */
export function reencodeHeaderBlock(fields: readonly HpackFieldSpan[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    if (f.representation === 'size-update') continue;
    const flags = f.representation === 'literal-never-indexed' ? 0x10 : 0x00;
    const index = staticNameIndex(f.name);
    if (index > 0) {
      writeInteger(out, flags, 4, index);
    } else {
      out.push(flags);
      writeString(out, f.name);
    }
    writeString(out, f.value);
  }
  return Buffer.from(out);
}
