// The DLP tail hold (MessageScanner.holdRaw): bytes that may be the beginning of a sensitive value
// are not released to the receiver until the next bytes (or the end) decide them. Checked as the
// receiver would see it: whatever it can decode from the raw bytes released so far — plain,
// chunked, or gzip inflated as far as a prefix allows (zlib with Z_SYNC_FLUSH, as eager as any
// client's inflater) — never reaches the first character of a value before the value's hit.
import { constants, gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpHit } from '../../../src/content/dlp/index.js';
import { chunkedEncode, cutAt } from './body-splits.js';

const ALL = ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'];
const engine = new DlpEngine({ ...DEFAULT_DLP, sensors: [...ALL, 'acme-customer-id'], patterns: [{ name: 'acme-customer-id', pattern: 'ACME-[0-9]{8}' }] });
const scope = engine.scope('egress', [], false)!;
/** Built-ins only: a custom pattern holds any trailing run of non-blank characters (custom.ts). */
const builtins = new DlpEngine({ ...DEFAULT_DLP, sensors: ALL, patterns: [] });
const builtinScope = builtins.scope('egress', [], false)!;

/** [sensor, text, offset of the secret part in text] (a secret key's name is not the secret). */
const VALUES: ReadonlyArray<[string, string, number]> = [
  ['pci-pan', '4111 1111 1111 1111', 0], ['pci-pan', '4111111111111111', 0], ['pci-pan', '378282246310005', 0], ['pci-pan', '3714 496353 98431', 0],
  ['pci-pan', '5105-1051-0510-5100', 0], ['pci-pan', '6205500000000000004', 0],
  ['us-ssn', '536-22-1234', 0], ['us-ssn', '509 44 2837', 0],
  ['aws-access-key', 'AKIAIOSFODNN7EXAMPLE', 0], ['aws-access-key', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 24],
  ['jwt', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c', 0],
  ['iban', 'GB82 WEST 1234 5698 7654 32', 0], ['iban', 'DE89370400440532013000', 0],
  ['acme-customer-id', 'ACME-12345678', 0],
];

/** How many body bytes a receiver decodes from a prefix of the chunked raw body. */
function chunkedDecodedLength(prefix: Buffer): number {
  let i = 0;
  let out = 0;
  for (;;) {
    const lf = prefix.indexOf('\r\n', i);
    if (lf < 0) return out;
    const size = parseInt(prefix.subarray(i, lf).toString(), 16);
    if (size === 0) return out;
    const data = lf + 2;
    const have = Math.min(size, prefix.length - data);
    out += Math.max(0, have);
    if (have < size) return out;
    i = data + size + 2;
  }
}

function decodedLength(framing: string, prefix: Buffer): number {
  if (framing === 'plain') return prefix.length;
  if (framing === 'chunked') return chunkedDecodedLength(prefix);
  if (prefix.length < 10) return 0;
  try {
    return gunzipSync(prefix, { finishFlush: constants.Z_SYNC_FLUSH }).length;
  } catch {
    return 0;
  }
}

describe('DLP tail hold', () => {
  it('the receiver never decodes the first character of a value before its hit (every split, plain / chunked / gzip)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...VALUES), fc.string({ maxLength: 300 }).map((s) => s.replace(/[^a-z ]/g, 'x')), fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
        fc.constantFrom('plain', 'chunked', 'gzip'), fc.constantFrom(' ', '"', '=', '\n'),
        ([sensor, value, secretAt], pad, cuts, framing, sep) => {
          const body = Buffer.from(`{"pad": "${pad}", "v":${sep}${value}${sep}, "n": 1}`, 'latin1');
          const secret = body.indexOf(value) + secretAt;
          const raw = framing === 'gzip' ? gzipSync(body) : framing === 'chunked' ? chunkedEncode(body, cuts.slice(0, 4)) : body;
          const scanner = engine.body(scope, 'response-body', framing === 'gzip' ? [['content-encoding', 'gzip']] : [], framing === 'chunked')!;
          const hits: DlpHit[] = [];
          let pushed = 0;
          for (const piece of cutAt(raw, cuts)) {
            scanner.push(piece, hits);
            pushed += piece.length;
            if (hits.some((h) => h.sensor === sensor)) break; // the enforcer cuts here: nothing more is released
            expect(scanner.holdRaw).toBeLessThanOrEqual(pushed);
            const seen = decodedLength(framing, raw.subarray(0, scanner.holdRaw));
            expect(seen, `${framing} ${value} released ${scanner.holdRaw} of ${pushed}`).toBeLessThanOrEqual(secret);
          }
          if (!hits.some((h) => h.sensor === sensor)) scanner.end(hits);
          expect(hits.map((h) => h.sensor)).toContain(sensor);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('at every single split of a card in a body, the first part is held from the card on', () => {
    const body = Buffer.from(`{"note": "${'x'.repeat(100)}", "card": "4111 1111 1111 1111", "n": 1}`);
    const at = body.indexOf('4111');
    for (let cut = at + 1; cut <= at + 19; cut++) {
      const scanner = builtins.body(builtinScope, 'response-body', [], false)!;
      const hits: DlpHit[] = [];
      scanner.push(body.subarray(0, cut), hits);
      expect(hits).toEqual([]);
      expect(scanner.holdRaw, String(cut)).toBe(at);
      scanner.push(body.subarray(cut), hits);
      expect(hits.map((h) => h.sensor)).toEqual(['pci-pan']);
    }
  });

  it('nothing is held when the read ends outside any value, and all of it at the end', () => {
    const scanner = builtins.body(builtinScope, 'response-body', [], false)!;
    const hits: DlpHit[] = [];
    scanner.push(Buffer.from('{"name": "Ann", "city": "Oslo"'), hits);
    expect(scanner.holdRaw).toBe(30);
    scanner.push(Buffer.from(', "zip": 0461'), hits);
    expect(scanner.holdRaw).toBe(30 + 9);
    scanner.end(hits);
    expect(scanner.holdRaw).toBe(30 + 13);
    expect(hits).toEqual([]);
  });

  it('settle (the sender paused): a complete value at the end hits; only a beginning is released without a hit', () => {
    let scanner = engine.body(scope, 'request-body', [], false)!;
    const hits: DlpHit[] = [];
    scanner.push(Buffer.from('card=4111111111111111'), hits);
    expect(hits).toEqual([]); // a 17th digit would make it no card
    expect(scanner.pending).toBe(true);
    scanner.settle(hits);
    expect(hits.map((h) => h.sensor)).toEqual(['pci-pan']);
    expect(scanner.holdRaw).toBe(21);
    // The same value is not reported twice once more bytes come.
    scanner.push(Buffer.from('&x=1'), hits);
    scanner.end(hits);
    expect(hits.length).toBe(1);

    scanner = engine.body(scope, 'request-body', [], false)!;
    const none: DlpHit[] = [];
    scanner.push(Buffer.from('card=4111 1111 1111'), none);
    expect(scanner.holdRaw).toBe(5);
    scanner.settle(none);
    expect(none).toEqual([]);
    expect(scanner.holdRaw).toBe(19);
    scanner.push(Buffer.from(' 1111 and more'), none);
    expect(none.map((h) => h.sensor)).toEqual(['pci-pan']);
  });
});
