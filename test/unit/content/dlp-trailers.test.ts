// DLP of trailer fields (RFC 9110 §6.5): HTTP/1.1 chunked trailer sections (RFC 9112 §7.1.2) are
// scanned as the head's fields are, and the line that may carry a value is held until it ends.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpHit } from '../../../src/content/dlp/index.js';
import { MAX_TRAILER_SECTION } from '../../../src/content/dlp/decoders.js';
import { chunkedEncode, cutAt } from './body-splits.js';

const engine = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn', 'jwt'], patterns: [] });
const scope = engine.scope('egress', [], false)!;
const headersOff = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan'], patterns: [], scan: ['request-body', 'response-body'] });

/** A chunked body whose trailer section holds `trailers` (field lines). */
function withTrailers(body: string, trailers: string[], cuts: number[] = []): Buffer {
  const chunked = chunkedEncode(Buffer.from(body), cuts);
  // chunkedEncode ends with the last chunk and an empty trailer section: "0\r\n\r\n".
  return Buffer.concat([chunked.subarray(0, chunked.length - 2), Buffer.from(trailers.map((t) => `${t}\r\n`).join('')), Buffer.from('\r\n')]);
}

describe('DLP: trailer fields of a chunked body', () => {
  it('a card number in a trailer field is a hit named by its field, at any split of the body into reads', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 3 }), (cuts, chunkCuts) => {
        const raw = withTrailers('{"order": 17, "note": "no secrets here"}', ['x-checksum: abc', 'x-card: 4111 1111 1111 1111', 'x-end: 1'], chunkCuts);
        const lineAt = raw.indexOf('x-card');
        const lineEnd = raw.indexOf('\r\n', lineAt);
        const scanner = engine.body(scope, 'request-body', [], true)!;
        const hits: DlpHit[] = [];
        let pushed = 0;
        for (const piece of cutAt(raw, cuts)) {
          scanner.push(piece, hits);
          pushed += piece.length;
          if (hits.length > 0) {
            // The read that completed the line hit: the enforcer cuts before releasing it.
            expect(pushed).toBeGreaterThan(lineEnd);
            break;
          }
          // Never released past the unfinished line's start: the server does not get the value.
          if (pushed > lineAt) expect(scanner.holdRaw).toBeLessThanOrEqual(lineAt);
        }
        if (hits.length === 0) scanner.end(hits);
        expect(hits).toEqual([expect.objectContaining({ sensor: 'pci-pan', where: 'header', field: 'x-card' })]);
      }),
      { numRuns: 400 },
    );
  });

  it('a trailer line cut by a pause (the hold timer) is decided as it stands: a whole value hits, a beginning does not', () => {
    const whole = engine.body(scope, 'request-body', [], true)!;
    const hits: DlpHit[] = [];
    whole.push(Buffer.from('5\r\nhello\r\n0\r\nx-ssn: 536-22-1234'), hits);
    expect(hits).toEqual([]);
    expect(whole.holdRaw).toBe('5\r\nhello\r\n0\r\n'.length);
    whole.settle(hits);
    expect(hits.map((h) => [h.sensor, h.field])).toEqual([['us-ssn', 'x-ssn']]);

    const beginning = engine.body(scope, 'request-body', [], true)!;
    const none: DlpHit[] = [];
    beginning.push(Buffer.from('0\r\nx-ssn: 536-2'), none);
    beginning.settle(none);
    expect(none).toEqual([]);
    beginning.push(Buffer.from('2-1234\r\n\r\n'), none);
    expect(none.map((h) => h.sensor)).toEqual(['us-ssn']);
  });

  it('credential fields keep their exemption from the jwt sensor in trailers too', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
    for (const [field, expected] of [['authorization', []], ['x-token', ['jwt']]] as const) {
      const scanner = engine.body(scope, 'response-body', [], true)!;
      const hits: DlpHit[] = [];
      scanner.push(withTrailers('ok', [`${field}: Bearer ${jwt}`]), hits);
      scanner.end(hits);
      expect(hits.map((h) => h.sensor), field).toEqual(expected);
    }
  });

  it('trailers are not scanned when the config does not scan header fields; bodies still are', () => {
    const scanner = headersOff.body(headersOff.scope('egress', [], false)!, 'request-body', [], true)!;
    const hits: DlpHit[] = [];
    scanner.push(withTrailers('card 4111111111111111 ', ['x-card: 4111111111111111']), hits);
    scanner.end(hits);
    expect(hits.map((h) => h.where)).toEqual(['request-body']);
  });

  it(`a trailer section over ${MAX_TRAILER_SECTION} bytes is refused (undecodable), not kept`, () => {
    const scanner = engine.body(scope, 'request-body', [], true)!;
    const hits: DlpHit[] = [];
    scanner.push(Buffer.from('0\r\n'), hits);
    for (let i = 0; i < 20 && hits.length === 0; i++) scanner.push(Buffer.from(`x-pad-${i}: ${'a'.repeat(1000)}\r\n`), hits);
    expect(hits).toEqual([expect.objectContaining({ sensor: 'undecodable' })]);
    expect(hits[0]!.sample).toContain('trailer section larger than');
  });
});
