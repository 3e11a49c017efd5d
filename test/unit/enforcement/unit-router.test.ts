import { describe, expect, it } from 'vitest';
import { UnitRouter } from '../../../src/enforcement/unit-router.js';

/** A router that records each write as text. */
function router(options?: { injectAfterFirstUnit?: boolean }): { r: UnitRouter; writes: string[] } {
  const writes: string[] = [];
  const r = new UnitRouter((b) => writes.push(b.toString('latin1')), options);
  return { r, writes };
}

describe('UnitRouter', () => {
  it('forwards the units of one read in one write (a syscall per read, not per frame)', () => {
    const { r, writes } = router();
    const chunk = Buffer.from('AAABBBBCC');
    r.add(0, 3, 'forward');
    r.add(3, 7, 'forward');
    r.add(7, 9, 'forward');
    r.push(chunk);
    r.pump();
    expect(writes).toEqual(['AAABBBBCC']);
  });

  it('leaves a dropped unit out and writes what surrounds it in order', () => {
    const { r, writes } = router();
    r.add(0, 3, 'forward');
    r.add(3, 7, 'drop');
    r.add(7, 9, 'forward');
    r.push(Buffer.from('AAABBBBCC'));
    r.pump();
    expect(writes.join('')).toBe('AAACC');
    expect(writes).toEqual(['AAA', 'CC']);
  });

  it('writes an injection at its unit boundary, after the units before it', () => {
    const { r, writes } = router();
    r.add(0, 3, 'forward');
    r.add(3, 5, 'hold');
    r.add(5, 8, 'forward');
    r.inject(Buffer.from('<x>'), 3);
    r.push(Buffer.from('AAABBCCC'));
    r.pump();
    expect(writes.join('')).toBe('AAA<x>'); // the held unit stops routing; the injection sits at its start
    r.decide(3, 5, 'forward');
    r.pump();
    expect(writes.join('')).toBe('AAA<x>BBCCC');
  });

  it('forwards the bytes of separate reads in order', () => {
    const { r, writes } = router();
    r.add(0, 4, 'forward');
    r.add(4, 8, 'forward');
    r.push(Buffer.from('AAAA'));
    r.push(Buffer.from('BBBB'));
    r.pump();
    expect(writes.join('')).toBe('AAAABBBB');
  });

  it('holds a unit cut across reads until it is complete, then forwards it whole', () => {
    const { r, writes } = router();
    r.add(0, 6, 'hold');
    r.push(Buffer.from('AAA'));
    r.pump();
    expect(writes).toEqual([]);
    r.push(Buffer.from('AAA'));
    r.decide(0, 6, 'forward');
    r.pump();
    expect(writes.join('')).toBe('AAAAAA');
  });
});
