// llhttp's state lives in WASM memory, outside the JavaScript heap: it is freed when the
// connection closes (dispose), or else when its parser is collected. The second path must not
// keep the parser alive: V8's scavenger treats FinalizationRegistry targets as strong, so a
// registered parser kept its whole connection (sockets, filter, enforcer) alive into the old
// generation — ~9 KB promoted per HTTP/1 connection and 10-35 ms scavenges in the sidecar.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { Http1Parser } from '../../../src/protocols/http1/http1-parser.js';
import { Llhttp, LlhttpDisposedError, type LlhttpHandler } from '../../../src/protocols/http1/llhttp.js';

type Gc = (options?: { type: 'minor' | 'major' }) => void;

function gcFunction(): Gc {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as Gc;
}

function oldSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0;
}

const REQUEST = Buffer.from('GET /a HTTP/1.1\r\nHost: shop.internal\r\nX-Trace: 0123456789abcdef\r\n\r\n', 'latin1');

describe('llhttp state lifetime', () => {
  it('does not keep a dropped parser alive through scavenges (nothing of it reaches the old generation)', () => {
    const gc = gcFunction();
    gc({ type: 'major' });
    const before = oldSpaceBytes();
    const count = 5000;
    for (let i = 0; i < count; i++) {
      const parser = new Http1Parser();
      parser.feed('client', REQUEST);
      // A payload the parser's graph holds, as a connection's would: large enough to show.
      (parser as unknown as { ballast: number[] }).ballast = new Array(320).fill(i);
    }
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    const perParser = (oldSpaceBytes() - before) / count;
    // Registered parsers are promoted whole, ballast (2.5 KB) included: ≈ 3.5 KB each. What may stay
    // until a full GC is two small owners and their weak cells: < 400 bytes on a quiet machine,
    // up to ≈ 500 seen at load 14 (the parallel scavenger's buffers), so the line is drawn at 1,500.
    expect(perParser).toBeLessThan(1500);
  });

  it('frees its state on dispose and refuses to run afterwards', () => {
    const handler: LlhttpHandler = {
      onMessageBegin: () => 0,
      onUrl: () => 0,
      onStatus: () => 0,
      onHeaderField: () => 0,
      onHeaderValue: () => 0,
      onHeadersComplete: () => 0,
      onBody: () => 0,
      onMessageComplete: () => 0,
    };
    const ll = new Llhttp('request', handler);
    expect(ll.execute(REQUEST)).toBe(0);
    ll.dispose();
    ll.dispose(); // twice: no double free
    expect(() => ll.execute(REQUEST)).toThrow(LlhttpDisposedError);
    expect(() => ll.finish()).toThrow(LlhttpDisposedError);
  });

  it('an HTTP/1 parser disposes both directions', () => {
    const parser = new Http1Parser();
    expect(parser.feed('client', REQUEST).error).toBeNull();
    parser.dispose();
    parser.dispose();
  });
});
