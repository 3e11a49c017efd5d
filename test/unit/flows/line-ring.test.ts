import { describe, expect, it } from 'vitest';
import { LineRing } from '../../../src/flows/line-ring.js';

function all(ring: LineRing): string[] {
  const lines: string[] = [];
  ring.newestFirst((line) => {
    lines.push(line);
    return true;
  });
  return lines;
}

describe('LineRing', () => {
  it('allocates a segment when the ring first reaches it: an idle sidecar holds none (issue 18 memory)', () => {
    const ring = new LineRing(8 * 4096, 8);
    expect(ring.allocatedBytes).toBe(0);
    const seen: string[] = [];
    ring.newestFirst((l) => (seen.push(l), true));
    expect(seen).toEqual([]);
    ring.append('x'.repeat(100));
    expect(ring.allocatedBytes).toBe(4096);
    for (let i = 0; i < 400; i++) ring.append('y'.repeat(100));
    expect(ring.allocatedBytes).toBe(8 * 4096);
  });

  it('returns lines newest first, byte-exact, multi-byte characters included', () => {
    const ring = new LineRing(64 * 1024);
    ring.append('{"a":1}');
    ring.append('{"path":"/café/日本"}');
    ring.append('{"c":3}');
    expect(all(ring)).toEqual(['{"c":3}', '{"path":"/café/日本"}', '{"a":1}']);
  });

  it('forgets the oldest lines once full, keeping at least all but one segment of the newest', () => {
    const ring = new LineRing(8 * 4096, 8); // 8 segments of 4 KiB
    const line = (i: number): string => `{"seq":${i},"pad":"${'x'.repeat(90)}"}`;
    for (let i = 1; i <= 2000; i++) ring.append(line(i));
    const kept = all(ring);
    expect(kept[0]).toBe(line(2000));
    const seqs = kept.map((l) => (JSON.parse(l) as { seq: number }).seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] as number) - 1); // no gaps
    const perSegment = Math.floor(4096 / (line(2000).length * 3)); // worst-case budget per line
    expect(kept.length).toBeGreaterThanOrEqual(7 * perSegment);
    expect(kept.length).toBeLessThan(2000);
  });

  it('stops when the visitor says so, and skips a line too long to keep', () => {
    const ring = new LineRing(8 * 4096, 8);
    ring.append('first');
    ring.append('y'.repeat(5000)); // longer than a segment's worst case: not kept
    ring.append('last');
    const seen: string[] = [];
    ring.newestFirst((l) => {
      seen.push(l);
      return false;
    });
    expect(seen).toEqual(['last']);
    expect(all(ring)).toEqual(['last', 'first']);
  });
});
