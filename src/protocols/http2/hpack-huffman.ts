// The HPACK Huffman code (RFC 7541 §5.2, Appendix B).
//
// Appendix B is a canonical Huffman code: codes of each length are consecutive and ordered by
// symbol. So the table is fully determined by the code length of each symbol, which is what we
// keep; the codes are derived below. The decoder walks 4 bits at a time through a state table
// built once at load (no per-bit loop, no allocation per string but the result).

/** Code length in bits of symbols 0..255 and EOS (256), from RFC 7541 Appendix B. */
const CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
  6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
  7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
  23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
  22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
  23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
  27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
  24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS = 256;

/** Canonical code of each symbol, right-aligned in `CODE_LENGTHS[sym]` bits. */
export const HUFFMAN_CODES: Uint32Array = (() => {
  const order = CODE_LENGTHS.map((_, sym) => sym).sort(
    (a, b) => CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b,
  );
  const codes = new Uint32Array(CODE_LENGTHS.length);
  let code = 0;
  let prevLength = CODE_LENGTHS[order[0]!]!;
  for (const sym of order) {
    const length = CODE_LENGTHS[sym]!;
    code = code * 2 ** (length - prevLength);
    prevLength = length;
    codes[sym] = code;
    code += 1;
  }
  return codes;
})();

export const HUFFMAN_CODE_LENGTHS: readonly number[] = CODE_LENGTHS;

// Binary trie of the code: children[2n + bit] is an internal node (> 0) or a leaf -(sym + 1).
const trie = (() => {
  const children: number[] = [0, 0];
  const depth: number[] = [0];
  const allOnes: boolean[] = [true];
  for (let sym = 0; sym <= EOS; sym++) {
    const length = CODE_LENGTHS[sym]!;
    const code = HUFFMAN_CODES[sym]!;
    let node = 0;
    for (let i = length - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1;
      const slot = node * 2 + bit;
      if (i === 0) {
        children[slot] = -(sym + 1);
        break;
      }
      let next = children[slot]!;
      if (next === 0) {
        next = depth.length;
        depth.push(depth[node]! + 1);
        allOnes.push(allOnes[node]! && bit === 1);
        children.push(0, 0);
        children[slot] = next;
      }
      node = next;
    }
  }
  return { children, depth, allOnes, nodes: depth.length };
})();

/** 4-bit transitions: next state, and the symbol emitted (-1 none, -2 EOS = decoding error). */
const NEXT_STATE = new Uint16Array(trie.nodes * 16);
const EMITTED = new Int16Array(trie.nodes * 16);
/** A string may end in this state: < 8 bits of padding, all ones (RFC 7541 §5.2). */
const ACCEPTING = new Uint8Array(trie.nodes);
for (let node = 0; node < trie.nodes; node++) {
  ACCEPTING[node] = trie.depth[node]! <= 7 && trie.allOnes[node]! ? 1 : 0;
  for (let nibble = 0; nibble < 16; nibble++) {
    let cur = node;
    let emitted = -1;
    for (let i = 3; i >= 0; i--) {
      const child = trie.children[cur * 2 + ((nibble >> i) & 1)]!;
      if (child < 0) {
        const sym = -child - 1;
        // Codes are ≥ 5 bits, so at most one symbol completes within a nibble.
        emitted = sym === EOS ? -2 : sym;
        cur = 0;
      } else {
        cur = child;
      }
    }
    NEXT_STATE[node * 16 + nibble] = cur;
    EMITTED[node * 16 + nibble] = emitted;
  }
}

let scratch = Buffer.allocUnsafe(4096);

/**
 * Decode `src[start, end)`. Returns the string (latin1, one char per octet) or null when the
 * input is not a valid Huffman string (EOS inside, or padding longer than 7 bits / not ones).
 */
export function decodeHuffman(src: Buffer, start: number, end: number): string | null {
  // The shortest code is 5 bits, so n input octets give at most 8n/5 output octets.
  const maxOut = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < maxOut) scratch = Buffer.allocUnsafe(Math.max(maxOut, scratch.length * 2));
  const out = scratch;
  let produced = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    let t = state * 16 + (byte >> 4);
    let sym = EMITTED[t]!;
    if (sym !== -1) {
      if (sym === -2) return null;
      out[produced++] = sym;
    }
    state = NEXT_STATE[t]!;
    t = state * 16 + (byte & 0x0f);
    sym = EMITTED[t]!;
    if (sym !== -1) {
      if (sym === -2) return null;
      out[produced++] = sym;
    }
    state = NEXT_STATE[t]!;
  }
  if (ACCEPTING[state] !== 1) return null;
  return out.toString('latin1', 0, produced);
}

/** Huffman-encode a latin1 string (used by tests and by callers that want smaller blocks). */
export function encodeHuffman(text: string): Buffer {
  let bits = 0;
  for (let i = 0; i < text.length; i++) bits += CODE_LENGTHS[text.charCodeAt(i) & 0xff]!;
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let acc = 0;
  let accBits = 0;
  let pos = 0;
  for (let i = 0; i < text.length; i++) {
    const sym = text.charCodeAt(i) & 0xff;
    const length = CODE_LENGTHS[sym]!;
    const code = HUFFMAN_CODES[sym]!;
    // Feed the code in pieces of at most 8 bits so `acc` stays within 32-bit integer range.
    for (let remaining = length; remaining > 0; ) {
      const take = Math.min(8, remaining);
      remaining -= take;
      acc = ((acc << take) | (Math.floor(code / 2 ** remaining) & ((1 << take) - 1))) >>> 0;
      accBits += take;
      while (accBits >= 8) {
        accBits -= 8;
        out[pos++] = (acc >>> accBits) & 0xff;
      }
      acc &= (1 << accBits) - 1;
    }
  }
  if (accBits > 0) out[pos] = ((acc << (8 - accBits)) | ((1 << (8 - accBits)) - 1)) & 0xff;
  return out;
}
