// Loads the captured streams in ./fixtures (see fixtures/capture-fixtures.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtocolName } from '../../../src/protocols/registry.js';
import type { ParseResult, ProtocolEvent, Side, StreamParser } from '../../../src/protocols/types.js';

export interface Segment {
  readonly side: Side;
  readonly bytes: Buffer;
}

export interface StreamFixture {
  readonly file: string;
  readonly protocol: ProtocolName;
  readonly name: string;
  readonly source: string;
  readonly segments: readonly Segment[];
}

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export function loadFixtures(): StreamFixture[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const raw = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as {
        protocol: ProtocolName; name: string; source: string; segments: Array<[Side, string]>;
      };
      return {
        file,
        protocol: raw.protocol,
        name: raw.name,
        source: raw.source,
        segments: raw.segments.map(([side, b64]) => ({ side, bytes: Buffer.from(b64, 'base64') })),
      };
    });
}

export interface RunOutcome {
  events: ProtocolEvent[];
  errors: NonNullable<ParseResult['error']>[];
  consumed: { client: number; server: number };
}

/** Feed segments (each optionally cut at `cuts` relative positions) and both ends. */
export function runStream(parser: StreamParser, segments: readonly Segment[], split?: (seg: Segment, index: number) => number[]): RunOutcome {
  const events: ProtocolEvent[] = [];
  const errors: RunOutcome['errors'] = [];
  const consumed = { client: 0, server: 0 };
  const take = (r: ParseResult, side: Side) => {
    events.push(...r.events);
    consumed[side] += r.consumed;
    if (r.error !== null) errors.push(r.error);
  };
  segments.forEach((seg, i) => {
    const cuts = split ? split(seg, i) : [];
    let prev = 0;
    for (const cut of [...cuts, seg.bytes.length]) {
      if (cut <= prev && cut !== seg.bytes.length) continue;
      take(parser.feed(seg.side, seg.bytes.subarray(prev, cut)), seg.side);
      prev = cut;
    }
  });
  take(parser.end('client'), 'client');
  take(parser.end('server'), 'server');
  return { events, errors, consumed };
}

/** A compact, comparable line per event (for snapshots in failure messages). */
export function describeEvent(e: ProtocolEvent): string {
  const { type, side, start, end } = e;
  return `${type} ${side} [${start},${end})`;
}
