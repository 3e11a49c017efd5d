// Conformance suite every registered parser passes: for real captured streams, any split into
// chunks yields the same events and offsets; hostile input (random, truncated, mutated) never
// throws out of feed/end and always yields well-formed results.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/protocols/errors.js';
import { createParser, PARSED_PROTOCOLS } from '../../../src/protocols/registry.js';
import type { ProtocolEvent, Side } from '../../../src/protocols/types.js';
import { loadFixtures, runStream, type Segment, type StreamFixture } from './fixtures.js';

const fixtures = loadFixtures();
const RUNS = Number(process.env.CONFORMANCE_RUNS ?? 40);

function byProtocol(protocol: string): StreamFixture[] {
  return fixtures.filter((f) => f.protocol === protocol);
}

/** Announced when their header is read: `end` is where the frame/message will end. */
const ANNOUNCED = new Set<ProtocolEvent['type']>(['http2.frame', 'postgres.message', 'postgres.backend', 'mysql.server-packet', 'mysql.continuation']);

/** Events must lie inside what was fed (announced ones must start inside it), start ≤ end. */
function expectWellFormed(events: readonly ProtocolEvent[], fed: { client: number; server: number }): void {
  for (const e of events) {
    expect(e.start).toBeLessThanOrEqual(e.end);
    expect(e.start).toBeGreaterThanOrEqual(0);
    if (ANNOUNCED.has(e.type)) expect(e.start).toBeLessThanOrEqual(fed[e.side]);
    else expect(e.end).toBeLessThanOrEqual(fed[e.side]);
  }
}

function totalBytes(segments: readonly Segment[]): { client: number; server: number } {
  const t = { client: 0, server: 0 };
  for (const s of segments) t[s.side] += s.bytes.length;
  return t;
}

describe('every registered parser has captured streams', () => {
  for (const protocol of PARSED_PROTOCOLS) {
    it(`${protocol} has fixtures that parse without error`, () => {
      const mine = byProtocol(protocol);
      expect(mine.length, `add a fixture for ${protocol} in test/unit/protocols/fixtures`).toBeGreaterThan(0);
      for (const f of mine) {
        const out = runStream(createParser(protocol), f.segments);
        expect(out.errors.map((e) => e.message), f.file).toEqual([]);
        expect(out.events.length, f.file).toBeGreaterThan(0);
        expectWellFormed(out.events, totalBytes(f.segments));
      }
    });
  }
});

describe.each(fixtures.map((f) => [f.file, f] as const))('%s', (_file, fixture) => {
  const baseline = runStream(createParser(fixture.protocol), fixture.segments);

  it('gives the same events for 1-byte chunks', () => {
    const out = runStream(createParser(fixture.protocol), fixture.segments, (seg) =>
      Array.from({ length: seg.bytes.length }, (_, i) => i + 1),
    );
    expect(out.errors).toEqual([]);
    expect(out.events).toEqual(baseline.events);
  });

  it('gives the same events for any split of each segment', () => {
    const cutsArb = fc.array(fc.array(fc.nat(), { maxLength: 8 }), {
      minLength: fixture.segments.length,
      maxLength: fixture.segments.length,
    });
    fc.assert(
      fc.property(cutsArb, (cutsPerSegment) => {
        const out = runStream(createParser(fixture.protocol), fixture.segments, (seg, i) =>
          [...new Set(cutsPerSegment[i]!.map((c) => c % (seg.bytes.length + 1)))].sort((a, b) => a - b),
        );
        expect(out.errors).toEqual([]);
        expect(out.events).toEqual(baseline.events);
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on a truncated stream; a cut inside a message is ERR_TRUNCATED', () => {
    const total = fixture.segments.reduce((n, s) => n + s.bytes.length, 0);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: total }), (keep) => {
        const segments: Segment[] = [];
        let left = keep;
        for (const s of fixture.segments) {
          if (left <= 0) break;
          segments.push({ side: s.side, bytes: s.bytes.subarray(0, Math.min(left, s.bytes.length)) });
          left -= s.bytes.length;
        }
        const out = runStream(createParser(fixture.protocol), segments);
        for (const e of out.errors) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect(['ERR_TRUNCATED', 'ERR_PROTOCOL_VIOLATION']).toContain(e.code);
        }
        expectWellFormed(out.events, totalBytes(segments));
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on mutated bytes, and is inert after an error', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (mutations) => {
          const segments = fixture.segments.map((s) => ({ side: s.side, bytes: Buffer.from(s.bytes) }));
          for (const [segIndex, at, value] of mutations) {
            const seg = segments[segIndex % segments.length]!;
            if (seg.bytes.length > 0) seg.bytes[at % seg.bytes.length] = value;
          }
          const parser = createParser(fixture.protocol);
          const out = runStream(parser, segments);
          expectWellFormed(out.events, totalBytes(segments));
          if (parser.error !== null) {
            expect(parser.error.code).toMatch(/^ERR_[A-Z_]+$/);
            expect(parser.error.code).not.toBe('ERR_INTERNAL');
            const again = parser.feed('client', Buffer.from('more'));
            expect(again).toEqual({ consumed: 0, events: [], error: parser.error });
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('random bytes', () => {
  for (const protocol of PARSED_PROTOCOLS) {
    it(`${protocol}: never throws, errors carry code and an offset inside the input`, () => {
      const chunkArb = fc.tuple(fc.constantFrom<Side>('client', 'server'), fc.uint8Array({ maxLength: 300 }));
      fc.assert(
        fc.property(fc.array(chunkArb, { maxLength: 12 }), (chunks) => {
          const parser = createParser(protocol);
          const fed = { client: 0, server: 0 };
          const events: ProtocolEvent[] = [];
          for (const [side, bytes] of chunks) {
            const before = fed[side];
            fed[side] += bytes.length;
            const r = parser.feed(side, Buffer.from(bytes));
            events.push(...r.events);
            expect(r.consumed).toBeLessThanOrEqual(bytes.length);
            if (r.error !== null) {
              expect(r.error.code).not.toBe('ERR_INTERNAL');
              if (r.consumed > 0 || r.error.side === side) expect(r.error.offset).toBeLessThanOrEqual(Math.max(fed[r.error.side], before + bytes.length));
            }
          }
          parser.end('client');
          parser.end('server');
          expectWellFormed(events, fed);
        }),
        { numRuns: RUNS * 5 },
      );
    });
  }
});
