// A minimal HPACK encoder (RFC 7541 §6.2.2, Literal Header Field without Indexing) for the
// responses the proxy injects (403, gRPC trailers-only). It never indexes, so it never changes
// the peer's dynamic table and can be spliced between the real endpoints' header blocks.
import type { HeaderList } from '../types.js';
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
