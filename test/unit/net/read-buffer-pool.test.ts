import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ReadBufferPool, releasePages } from '../../../src/net/read-buffer-pool.js';

describe('ReadBufferPool', () => {
  it('hands a returned buffer to the next taker and allocates when empty', () => {
    const pool = new ReadBufferPool(1024, 2);
    const a = pool.take();
    expect(a.length).toBe(1024);
    pool.give(a);
    expect(pool.take()).toBe(a);
    expect(pool.take()).not.toBe(a);
  });

  it('keeps no more than it was told to, and never a buffer of another size', () => {
    const pool = new ReadBufferPool(1024, 2);
    const kept = [pool.take(), pool.take(), pool.take()];
    for (const b of kept) pool.give(b);
    pool.give(Buffer.alloc(512));
    const again = [pool.take(), pool.take(), pool.take()];
    expect(again.filter((b) => kept.includes(b))).toHaveLength(2);
    expect(again.every((b) => b.length === 1024)).toBe(true);
  });
});

const rssAnonBytes = (): number => Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;

describe('giving idle read buffers\' memory back', () => {
  it('releasePages drops a buffer\'s resident pages, and the buffer reads and writes as before', () => {
    const buffers = Array.from({ length: 32 }, () => Buffer.allocUnsafe(1024 * 1024).fill(7));
    const before = rssAnonBytes();
    let given = 0;
    for (const b of buffers) given += releasePages(b);
    const after = rssAnonBytes();
    expect(given).toBeGreaterThan(31 * 1024 * 1024); // all but the partial pages at each end
    expect(before - after).toBeGreaterThan(24 * 1024 * 1024);
    const b = buffers[0]!;
    expect(b[b.length >> 1]).toBe(0); // contents gone (zero pages), not some other memory
    b.write('next read', 4096 * 3);
    expect(b.toString('latin1', 4096 * 3, 4096 * 3 + 9)).toBe('next read');
  });

  it('releasePages leaves the bytes beside a view alone (pages it shares are kept)', () => {
    const whole = Buffer.alloc(5 * 4096, 1);
    const view = whole.subarray(100, 4 * 4096 + 100);
    expect(releasePages(view)).toBeGreaterThanOrEqual(3 * 4096);
    expect(whole.subarray(0, 100).every((x) => x === 1)).toBe(true);
    expect(whole.subarray(4 * 4096 + 100).every((x) => x === 1)).toBe(true);
    expect(view.includes(0)).toBe(true);
  });

  it('the pool gives back parked buffers only once no one took one for a whole sweep, and each once', () => {
    const pool = new ReadBufferPool(256 * 1024, 8);
    const taken = [pool.take(), pool.take(), pool.take()];
    for (const b of taken) pool.give(b.fill(1));
    expect(pool.releaseIdle()).toBe(0); // buffers were taken since the last sweep: in use
    expect(pool.releaseIdle()).toBeGreaterThan(3 * 240 * 1024); // quiet: all three
    expect(pool.releaseIdle()).toBe(0); // already given back
    const again = pool.take();
    pool.give(again.fill(2));
    expect(pool.releaseIdle()).toBe(0);
    expect(pool.releaseIdle()).toBeGreaterThan(240 * 1024); // only the one dirtied since
    expect(pool.releaseIdle()).toBe(0);
  });
});
