// HeldBytes: compaction copies small views out of read buffers without changing what is held.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMPACT_BELOW, HeldBytes } from '../../../src/enforcement/held-bytes.js';

function bytesOf(held: HeldBytes): Buffer {
  const parts: Buffer[] = [];
  held.forEach((b) => parts.push(b));
  return Buffer.concat(parts);
}

describe('HeldBytes', () => {
  it('compacts 11-byte views of 64 KiB read buffers into one chunk of its own, and the read buffer can be reused', () => {
    const held = new HeldBytes();
    const expected: Buffer[] = [];
    const readBuffer = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 1000; ++i) {
      const piece = Buffer.from(`X-h${String(i).padStart(4, '0')}: 1\r`.slice(0, 11));
      piece.copy(readBuffer);
      held.push(readBuffer.subarray(0, 11));
      expect(held.holdsViews).toBe(true);
      held.compact();
      expect(held.holdsViews).toBe(false);
      readBuffer.fill(0); // the relay reuses it for the next read
      expected.push(piece);
    }
    expect(bytesOf(held).equals(Buffer.concat(expected))).toBe(true);
    let chunks = 0;
    held.forEach((b) => {
      ++chunks;
      expect(b.buffer).not.toBe(readBuffer.buffer);
    });
    expect(chunks).toBeLessThan(10); // merged: 11,000 bytes in a handful of growing buffers
    expect(held.size).toBe(11_000);
  });

  it('keeps large chunks as views (no copy) and counts them', () => {
    const held = new HeldBytes();
    held.push(Buffer.alloc(COMPACT_BELOW, 1));
    held.compact();
    expect(held.holdsViews).toBe(true);
    held.drop(held.end);
    expect(held.holdsViews).toBe(false);
  });

  it('releases the same bytes at the same offsets, compacted or not, for any chunking and releases', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 30 }), fc.array(fc.nat(2000), { maxLength: 10 }), fc.array(fc.boolean(), { maxLength: 30 }), (chunks, cuts, compacts) => {
        const a = new HeldBytes(100);
        const b = new HeldBytes(100);
        const outA: Buffer[] = [];
        const outB: Buffer[] = [];
        const sorted = [...cuts].sort((x, y) => x - y);
        chunks.forEach((c, i) => {
          const scratch = Buffer.from(c);
          a.push(scratch);
          b.push(Buffer.from(c));
          if (compacts[i] === true) {
            a.compact();
            scratch.fill(0xee); // a compacted view must not see its read buffer reused
          } else a.compact();
          const cut = sorted[i];
          if (cut !== undefined) {
            a.release(100 + cut, (x) => outA.push(Buffer.from(x)));
            b.release(100 + cut, (x) => outB.push(Buffer.from(x)));
          }
        });
        expect(a.start).toBe(b.start);
        expect(Buffer.concat(outA).equals(Buffer.concat(outB))).toBe(true);
        expect(bytesOf(a).equals(bytesOf(b))).toBe(true);
      }),
    );
  });
});
