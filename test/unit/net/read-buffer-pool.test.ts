import { describe, expect, it } from 'vitest';
import { ReadBufferPool } from '../../../src/net/read-buffer-pool.js';

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
