// HPACK (RFC 7541): Appendix C vectors, Huffman, dynamic table eviction, spans, hostile blocks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HpackDecodeFailure, HpackDecoder } from '../../../src/protocols/http2/hpack-decoder.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';
import { decodeHuffman, encodeHuffman } from '../../../src/protocols/http2/hpack-huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeOk(decoder: HpackDecoder, block: Buffer) {
  const out = decoder.decode(block);
  if (out instanceof HpackDecodeFailure) throw new Error(`decode failed: ${out.detail}`);
  return out;
}

const pairs = (d: ReturnType<typeof decodeOk>) => d.fields.filter((f) => f.representation !== 'size-update').map((f) => [f.name, f.value]);

describe('Huffman (RFC 7541 Appendix B)', () => {
  it('decodes the RFC example "www.example.com"', () => {
    const b = hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff');
    expect(decodeHuffman(b, 0, b.length)).toBe('www.example.com');
  });

  it('refuses padding that is not all ones, padding of 8+ bits, and EOS inside the string', () => {
    const good = hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff');
    const badPadding = Buffer.from(good);
    badPadding[badPadding.length - 1] = 0xfe;
    expect(decodeHuffman(badPadding, 0, badPadding.length)).toBeNull();
    const longPadding = Buffer.concat([good, Buffer.from([0xff])]);
    expect(decodeHuffman(longPadding, 0, longPadding.length)).toBeNull();
    const eos = hex('ffff ffff');
    expect(decodeHuffman(eos, 0, eos.length)).toBeNull();
  });

  it('round-trips any byte string through encode and decode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = Buffer.from(bytes).toString('latin1');
        const coded = encodeHuffman(text);
        expect(decodeHuffman(coded, 0, coded.length)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});

describe('HPACK decoder', () => {
  it('decodes RFC 7541 C.4 (requests with Huffman) and keeps the dynamic table across blocks', () => {
    const d = new HpackDecoder();
    const first = decodeOk(d, hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'));
    expect(pairs(first)).toEqual([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
    expect(d.tableSize).toBe(57);
    const second = decodeOk(d, hex('8286 84be 5886 a8eb 1064 9cbf'));
    expect(pairs(second)[3]).toEqual([':authority', 'www.example.com']); // from the dynamic table
    expect(pairs(second)[4]).toEqual(['cache-control', 'no-cache']);
    expect(d.tableSize).toBe(110);
    const third = decodeOk(d, hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'));
    expect(pairs(third)[4]).toEqual(['custom-key', 'custom-value']);
    expect(d.tableSize).toBe(164);
  });

  it('evicts oldest entries when the table is full (RFC 7541 C.6, table size 256)', () => {
    const d = new HpackDecoder();
    // A size update to 256 (§6.3) at the start of the first block, then C.6.1.
    const first = decodeOk(d, Buffer.concat([hex('3fe101'), hex('4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3')]));
    expect(first.fields[0]).toMatchObject({ representation: 'size-update', mutatesTable: true, start: 0, end: 3 });
    expect(pairs(first)).toEqual([[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']]);
    expect(d.tableSize).toBe(222);
    const second = decodeOk(d, hex('4883 640e ffc1 c0bf'));
    expect(pairs(second)).toEqual([[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']]);
    expect(d.tableSize).toBe(222);
    const third = decodeOk(d, hex('88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07'));
    expect(pairs(third)).toEqual([
      [':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ['location', 'https://www.example.com'], ['content-encoding', 'gzip'],
      ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ]);
    expect(d.tableSize).toBe(215);
    expect(d.tableEntries).toBe(3);
  });

  it('keeps its dynamic table like a plain model over long runs of inserts, evictions and lookups', () => {
    // §5.1 integer with an N-bit prefix, §5.2 raw (non-Huffman) string.
    const int = (value: number, prefix: number, first: number): number[] => {
      const max = (1 << prefix) - 1;
      if (value < max) return [first | value];
      const out = [first | max];
      let rest = value - max;
      while (rest >= 128) {
        out.push((rest % 128) + 128);
        rest = Math.floor(rest / 128);
      }
      out.push(rest);
      return out;
    };
    const str = (text: string): number[] => [...int(text.length, 7, 0), ...Buffer.from(text, 'latin1')];
    type Op = { kind: 'insert'; name: string; value: string } | { kind: 'lookup'; pick: number };
    const op = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), name: fc.stringMatching(/^[a-z-]{1,12}$/), value: fc.string({ maxLength: 120 }).map((v) => v.replace(/[^ -~]/g, 'x')) }),
      fc.record({ kind: fc.constant('lookup' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 60 }), (blocks: Op[][]) => {
        const decoder = new HpackDecoder();
        const model: Array<[string, string]> = []; // newest first
        let size = 0;
        for (const ops of blocks) {
          const bytes: number[] = [];
          const expected: Array<[string, string]> = [];
          for (const o of ops) {
            if (o.kind === 'insert') {
              bytes.push(0x40, ...str(o.name), ...str(o.value)); // §6.2.1 literal, incremental indexing, new name
              expected.push([o.name, o.value]);
              model.unshift([o.name, o.value]);
              size += o.name.length + o.value.length + 32;
              while (size > 4096) {
                const [n, v] = model.pop() as [string, string];
                size -= n.length + v.length + 32;
              }
            } else if (model.length > 0) {
              const i = o.pick % model.length;
              bytes.push(...int(62 + i, 7, 0x80)); // §6.1 indexed field: dynamic index i + 1
              expected.push(model[i] as [string, string]);
            }
          }
          if (bytes.length === 0) continue;
          expect(pairs(decodeOk(decoder, Buffer.from(bytes)))).toEqual(expected);
          expect(decoder.tableSize).toBe(size);
          expect(decoder.tableEntries).toBe(model.length);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('reports each representation\'s byte span and whether it changed the table', () => {
    const d = new HpackDecoder();
    const block = hex('8286 84be 5886 a8eb 1064 9cbf');
    decodeOk(d, hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'));
    const out = decodeOk(d, block);
    expect(out.fields.map((f) => [f.start, f.end, f.representation, f.mutatesTable])).toEqual([
      [0, 1, 'indexed', false],
      [1, 2, 'indexed', false],
      [2, 3, 'indexed', false],
      [3, 4, 'indexed', false],
      [4, 12, 'literal-incremental', true],
    ]);
    expect(out.mutatesTable).toBe(true);
    // The spans tile the block: cutting out a span leaves the other fields decodable.
    expect(out.fields.reduce((n, f) => n + (f.end - f.start), 0)).toBe(block.length);
  });

  it('refuses index 0, unknown indexes, late size updates, oversize updates and truncation', () => {
    expect(new HpackDecoder().decode(hex('80'))).toBeInstanceOf(HpackDecodeFailure);
    expect(new HpackDecoder().decode(hex('be'))).toBeInstanceOf(HpackDecodeFailure); // 62: empty dynamic table
    expect(new HpackDecoder().decode(hex('82 20'))).toBeInstanceOf(HpackDecodeFailure);
    expect(new HpackDecoder().decode(hex('3fe21f'))).toBeInstanceOf(HpackDecodeFailure); // 4097 > the 4096 allowed
    expect(new HpackDecoder().decode(hex('4005 61'))).toBeInstanceOf(HpackDecodeFailure);
    expect(new HpackDecoder().decode(hex('ff ff ff ff ff ff 7f'))).toBeInstanceOf(HpackDecodeFailure); // integer overflow
  });

  it('refuses a small block that expands into a huge header list', () => {
    const d = new HpackDecoder(64 * 1024);
    // Insert one 4000-byte value, then reference it (index 62) many times.
    const insert = Buffer.concat([hex('40'), hex('01'), Buffer.from('x'), hex('7f'), Buffer.from([0xa1, 0x1e]), Buffer.alloc(4000, 0x61)]);
    const block = Buffer.concat([insert, Buffer.alloc(100, 0xbe)]);
    const out = d.decode(block);
    expect(out).toBeInstanceOf(HpackDecodeFailure);
    expect((out as HpackDecodeFailure).kind).toBe('too-large');
  });

  it('never throws on random blocks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const out = new HpackDecoder().decode(Buffer.from(bytes));
        expect(out instanceof HpackDecodeFailure || Array.isArray(out.fields)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('HPACK encoder (literal without indexing)', () => {
  it('encodes fields any decoder reads back without touching its dynamic table', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(':status', 'content-type', 'grpc-status', 'x-custom', 'grpc-message'), fc.string({ maxLength: 300 })), { maxLength: 8 }),
        (fields) => {
          const latin1 = fields.map(([n, v]) => [n, Buffer.from(v, 'latin1').toString('latin1')] as const);
          const d = new HpackDecoder();
          const out = decodeOk(d, encodeLiteralHeaderBlock(latin1));
          expect(pairs(out)).toEqual(latin1.map(([n, v]) => [n, v]));
          expect(out.mutatesTable).toBe(false);
          expect(d.tableSize).toBe(0);
          expect(out.fields.every((f) => f.representation === 'literal-without-indexing')).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
