// DLP sensors: a hit for every real-format sensitive value, in every position and split, plain,
// chunked and gzip/deflate; no hit on realistic non-sensitive payloads; masked samples never
// carry the value; custom patterns in linear time; bombs refused.
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpHit, type DlpWhere } from '../../../src/content/dlp/index.js';
import { cardScheme, luhn, notCardField } from '../../../src/content/dlp/sensors.js';
import { chunkedEncode, cutAt } from './body-splits.js';

const ALL = ['pci-pan', 'us-ssn', 'aws-access-key', 'private-key', 'jwt', 'iban'];
const engine = new DlpEngine({ ...DEFAULT_DLP, sensors: ALL, patterns: [{ name: 'acme-customer-id', pattern: 'ACME-[0-9]{8}' }] });
const scope = engine.scope('egress', ['acme-customer-id'], false)!;

/** Published test card numbers of each scheme (the schemes' and processors' test ranges). */
export const CARDS: ReadonlyArray<[string, string]> = [
  ['visa', '4111111111111111'], ['visa', '4012888888881881'], ['visa', '4222222222222'], ['visa', '4111 1111 1111 1111'],
  ['visa', '4000-0566-5566-5556'], ['visa', '4000000000000002'],
  ['mastercard', '5555555555554444'], ['mastercard', '5105 1051 0510 5100'], ['mastercard', '2223003122003222'], ['mastercard', '2720990000000007'],
  ['amex', '378282246310005'], ['amex', '3714 496353 98431'], ['amex', '340000000000009'],
  ['discover', '6011111111111117'], ['discover', '6011000990139424'], ['discover', '6445644564456445'], ['discover', '6500000000000002'],
  ['jcb', '3530111333300000'], ['jcb', '3566002020360505'],
  ['diners', '30569309025904'], ['diners', '38520000023237'], ['diners', '3622 720627 1667'],
  ['unionpay', '6200000000000005'], ['unionpay', '6205500000000000004'],
  ['maestro', '6759649826438453'],
];
const SSNS = ['536-22-1234', '509 44 2837', '001-01-0001', '665-12-3456', '899-99-9998'];
const AWS = ['AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY1EXAMPLEKY"'];
const KEYS = ['-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA', '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA', '-----BEGIN PRIVATE KEY-----', '-----BEGIN EC PRIVATE KEY-----'];
const JWTS = [
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJl',
];
const IBANS = ['GB82 WEST 1234 5698 7654 32', 'DE89370400440532013000', 'FR1420041010050500013M02606', 'NL91ABNA0417164300', 'CH93 0076 2011 6238 5295 7'];

const SENSITIVE: ReadonlyArray<[string, string]> = [
  ...CARDS.map(([, v]): [string, string] => ['pci-pan', v]),
  ...SSNS.map((v): [string, string] => ['us-ssn', v]),
  ...AWS.map((v): [string, string] => ['aws-access-key', v]),
  ...KEYS.map((v): [string, string] => ['private-key', v]),
  ...JWTS.map((v): [string, string] => ['jwt', v]),
  ...IBANS.map((v): [string, string] => ['iban', v]),
  ['acme-customer-id', 'ACME-12345678'],
];

// ---- the clean corpus: realistic payloads that carry nothing sensitive ---------------------------

const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
const cleanValue: fc.Arbitrary<string> = fc.oneof(
  fc.uuid().map((u) => u), // UUIDs (v1–v8)
  fc.uuid().map((u) => u.toUpperCase()),
  fc.integer({ min: 1, max: 999_999 }).map((n) => `ORD-2026-${String(n).padStart(6, '0')}`), // order ids
  fc.integer({ min: 1, max: 9_999_999 }).map((n) => `INV${n}`),
  fc.date({ min: new Date('2000-01-01'), max: new Date('2040-01-01'), noInvalidDate: true }).map((d) => d.toISOString()), // timestamps
  fc.date({ min: new Date('2000-01-01'), max: new Date('2040-01-01'), noInvalidDate: true }).map((d) => String(d.getTime())), // epoch ms (13 digits)
  fc.bigInt({ min: 1_000_000_000_000_000_000n, max: 2_200_000_000_000_000_000n }).map(String), // epoch ns, snowflake ids (19 digits)
  fc.bigInt({ min: 100_000_000_000_000_000n, max: 199_999_999_999_999_999n }).map(String), // 18-digit ids starting 1
  fc.tuple(digits(3, 3), digits(3, 3), digits(4, 4)).map(([a, b, c]) => `+1 (${a}) ${b}-${c}`), // phones
  fc.tuple(digits(3, 3), digits(3, 3), digits(4, 4)).map(([a, b, c]) => `${a}-${b}-${c}`),
  fc.tuple(digits(2, 2), digits(4, 4), digits(4, 4)).map(([a, b, c]) => `+44 ${a} ${b} ${c}`),
  fc.tuple(digits(2, 2), digits(3, 4), digits(5, 6)).map(([a, b, c]) => `+49 ${a} ${b} ${c}`),
  // JSON doubles (0.30000000000000004, 1.5e-7, prices). Not any double: one of 1e15…1e21 prints as
  // a bare 16–22-digit integer, and such a number in an IIN range that passes Luhn is exactly
  // what a card number looks like (README, "What still gets through").
  fc.double({ min: -1e12, max: 1e12, noNaN: true }).map((d) => JSON.stringify(d)),
  fc.double({ min: -1e-3, max: 1e-3, noNaN: true }).map((d) => JSON.stringify(d)),
  fc.integer({ min: 0, max: 2 ** 31 }).map((n) => (n / 7).toFixed(12)), // long decimals
  fc.uint8Array({ minLength: 16, maxLength: 3000 }).map((b) => `data:image/png;base64,${Buffer.from(b).toString('base64')}`), // base64 images
  fc.uint8Array({ minLength: 8, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64url')), // tokens, nonces
  hex(40), // git commit ids
  hex(64), // sha256
  fc.constantFrom('9223372036854775807', '18446744073709551615', '3.141592653589793', '1Z999AA10123456784', 'SKU-0043-1182-77', 'v1.24.3', '192.168.100.200', 'fe80::1ff:fe23:4567:890a'),
);
const cleanDoc = fc.array(fc.tuple(fc.constantFrom('id', 'orderId', 'ts', 'phone', 'image', 'amount', 'trace', 'ref'), cleanValue), { minLength: 1, maxLength: 12 })
  .map((fields) => JSON.stringify(Object.fromEntries(fields.map(([k, v], i) => [`${k}${i}`, /^[0-9]+$/.test(v) && v.length < 16 ? Number(v) : v]))));

// ---- helpers -----------------------------------------------------------------------------------

function scanBody(raw: Buffer, cuts: number[], opts: { chunked?: boolean; encoding?: string } = {}, where: DlpWhere = 'request-body'): DlpHit[] {
  const headers: Array<[string, string]> = opts.encoding === undefined ? [] : [['content-encoding', opts.encoding]];
  const scanner = engine.body(scope, where as 'request-body', headers, opts.chunked === true)!;
  const hits: DlpHit[] = [];
  for (const piece of cutAt(raw, cuts)) scanner.push(piece, hits);
  scanner.end(hits);
  return hits;
}

describe('dlp sensors', () => {
  it('the test cards are valid numbers of their scheme (the corpus itself is right)', () => {
    for (const [scheme, card] of CARDS) expect(cardScheme(card.replace(/[ -]/g, '')), card).toBe(scheme);
  });

  it('each sensitive value is a hit of its sensor, alone and masked', () => {
    for (const [sensor, value] of SENSITIVE) {
      const hits = scanBody(Buffer.from(value), []);
      expect(hits.map((h) => h.sensor), value).toContain(sensor);
      for (const h of hits) {
        if (sensor !== 'private-key') expect(h.sample).not.toContain(value); // a PEM label is not the key
        // No run of the value's digits/characters longer than what the mask keeps.
        const compact = value.replace(/[ -]/g, '');
        if (compact.length >= 12 && sensor !== 'private-key') expect(h.sample.replace(/[ -]/g, '')).not.toContain(compact.slice(2, 12));
      }
    }
  });

  it('in every position and split, plain / chunked / gzip / deflate', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SENSITIVE), cleanDoc, cleanDoc, fc.array(fc.nat(), { maxLength: 24 }),
        fc.constantFrom('plain', 'chunked', 'gzip', 'deflate', 'gzip+chunked'), fc.constantFrom(' ', '\n', '"', ':', '=', ',', '&'),
        ([sensor, value], before, after, cuts, framing, sep) => {
          const body = Buffer.from(`${before}${sep}${value}${sep}${after}`, 'latin1');
          const encoded = framing.startsWith('gzip') ? gzipSync(body) : framing === 'deflate' ? deflateSync(body) : body;
          const encoding = framing.startsWith('gzip') ? 'gzip' : framing === 'deflate' ? 'deflate' : undefined;
          const raw = framing.includes('chunked') ? chunkedEncode(encoded, cuts.slice(0, 6)) : encoded;
          const hits = scanBody(raw, cuts, { chunked: framing.includes('chunked'), ...(encoding !== undefined ? { encoding } : {}) });
          const mine = hits.filter((h) => h.sensor === sensor);
          expect(mine.length, `${sensor} ${value} via ${framing}`).toBeGreaterThanOrEqual(1);
          expect(mine.some((h) => h.offset >= before.length && h.offset <= before.length + 1 + value.length)).toBe(true);
          expect(hits.filter((h) => h.sensor === 'undecodable')).toEqual([]);
        },
      ),
      { numRuns: 600 },
    );
  });

  it('byte by byte: a value split at every byte is still found once', () => {
    for (const [sensor, value] of SENSITIVE) {
      const body = Buffer.from(`{"x": "${value}", "n": 1}`);
      const cuts = [...Array(body.length).keys()];
      const hits = scanBody(body, cuts).filter((h) => h.sensor === sensor);
      expect(hits.length, value).toBe(1);
    }
  });

  it('the clean corpus gives no hit (fast-check, split anywhere)', () => {
    let docs = 0;
    let bytes = 0;
    fc.assert(
      fc.property(cleanDoc, fc.array(fc.nat(), { maxLength: 8 }), (doc, cuts) => {
        docs++;
        bytes += doc.length;
        const hits = scanBody(Buffer.from(doc, 'latin1'), cuts);
        expect(hits, doc.slice(0, 400)).toEqual([]);
      }),
      { numRuns: 3000 },
    );
    expect(docs).toBeGreaterThanOrEqual(3000);
    expect(bytes).toBeGreaterThan(100_000);
  });

  it('a large clean body read in TCP-sized pieces: long digit runs cut by the kept tail are not read from their middle', () => {
    const docs: string[] = [];
    for (let n = 0; docs.join('').length < 512 * 1024; n++) {
      docs.push(`{"orderId":"ORD-2026-${String(n).padStart(6, '0')}","epochNs":${1764767655123456789n + BigInt(n * 7919)},"snowflake":"${1864767655123456789n + BigInt(n * 104729)}","amount":${(n * 13.37).toFixed(2)},"blob":"${Buffer.alloc(96, n % 251).toString('base64')}"},`);
    }
    const body = Buffer.from(docs.join(''));
    for (const size of [1460, 1000, 4096, 65536]) {
      const cuts: number[] = [];
      for (let at = size; at < body.length; at += size) cuts.push(at);
      expect(scanBody(body, cuts), `pieces of ${size}`).toEqual([]);
    }
    // 2 MiB scanned with every sensor: 4-6 s idle, 11-18 s at load 15 on this shared machine.
  }, 120_000);

  it('a card next to other numbers: its CVV after a space, a reference before it', () => {
    for (const text of ['4111 1111 1111 1111 123', 'ref 12 4111 1111 1111 1111', 'card: 5555-5555-5555-4444 exp 12-26']) {
      expect(scanBody(Buffer.from(text), []).map((h) => h.sensor), text).toEqual(['pci-pan']);
    }
  });

  it('near misses are not hits: bad Luhn, wrong IIN, mixed separators, invalid SSN ranges, bad IBAN check', () => {
    const misses = ['4111111111111112', '1234567812345670', '4111 1111-1111 1111', '41111 1111 1111 111', '000-12-3456', '666-12-3456', '912-34-5678', '536-00-1234', '536-22-0000',
      '078-05-1120', 'GB82 WEST 1234 5698 7654 33', 'DE89370400440532013001', 'AKIAIOSFODNN7EXAMPL', 'eyJub3QiOiJqd3QifQ.eyJhIjoxMjM0NTY3ODkwfQ.sig', '0.4111111111111111', '14111111111111111'];
    for (const m of misses) expect(scanBody(Buffer.from(`x ${m} y`), []), m).toEqual([]);
  });

  it('query strings and header values', () => {
    const hits: DlpHit[] = [];
    engine.scanHead(scope, '/pay?card=4111%201111%201111%201111&x=1', [['x-card', '5555555555554444'], ['authorization', `Bearer ${JWTS[0]}`]], hits);
    expect(hits.map((h) => [h.sensor, h.where, h.field])).toEqual([['pci-pan', 'query', undefined], ['pci-pan', 'header', 'x-card']]);
  });

  it('custom patterns run in linear time (RE2): a catastrophic-backtracking pattern on 1 MB', () => {
    const slow = new DlpEngine({ ...DEFAULT_DLP, sensors: ['evil'], patterns: [{ name: 'evil', pattern: '(a+)+$' }] });
    const s = slow.scope('egress', [], false)!;
    const scanner = slow.body(s, 'request-body', [], false)!;
    const t0 = performance.now();
    const hits: DlpHit[] = [];
    for (let i = 0; i < 16; i++) scanner.push(Buffer.from(`${'a'.repeat(65535)}!`), hits);
    scanner.end(hits);
    // Backtracking would take longer than the age of the universe; RE2 takes a few ms per window.
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(() => new DlpEngine({ ...DEFAULT_DLP, sensors: [], patterns: [{ name: 'b', pattern: '(a)\\1' }] })).toThrow();
  });

  it('a decompression bomb is refused after its first MiB; the budget truncates', () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    const hits = scanBody(bomb, [100, 5000], { encoding: 'gzip' });
    expect(hits.map((h) => h.sample)).toEqual(['decompression bomb']);
    const scanner = engine.body(scope, 'request-body', [], false)!;
    const big: DlpHit[] = [];
    scanner.push(Buffer.alloc(2 * 1024 * 1024, 0x61), big);
    scanner.push(Buffer.from(' 4111111111111111 '), big);
    scanner.end(big);
    expect(big).toEqual([]);
    expect(scanner.truncated).toBe(true);
    expect(scanner.scanned).toBe(1024 * 1024);
  });

  it('unknown codings and broken framing are undecodable (the enforcer fails closed on them)', () => {
    expect(scanBody(Buffer.from('abc'), [], { encoding: 'br' }).map((h) => h.sensor)).toEqual(['undecodable']);
    expect(scanBody(Buffer.from('zz\r\nabc'), [], { chunked: true }).map((h) => h.sensor)).toEqual(['undecodable']);
    expect(scanBody(Buffer.from('not gzip at all'), [], { encoding: 'gzip' }).map((h) => h.sensor)).toEqual(['undecodable']);
  });
});

// ---- context: a bare number named as something else by its field is not a card ---------------

/** IIN prefixes and lengths of every scheme (the numbers below pass the checksum-only rule). */
const IINS: ReadonlyArray<[string, number]> = [['4', 16], ['4', 13], ['4', 19], ['51', 16], ['55', 16], ['2221', 16], ['2720', 16], ['34', 15], ['37', 15], ['6011', 16], ['644', 17], ['65', 19],
  ['622126', 16], ['3528', 16], ['3589', 18], ['300', 14], ['36', 14], ['38', 16], ['62', 17], ['5018', 13], ['6759', 19]];
/** A random number of a scheme's IIN and length with a valid Luhn digit: a card by the checksum alone. */
const cardShaped = fc.tuple(fc.constantFrom(...IINS), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 18, maxLength: 18 })).map(([[prefix, length], rest]) => {
  const body = (prefix + rest.join('')).slice(0, length - 1);
  for (let d = 0; d <= 9; d++) if (luhn(`${body}${d}`)) return `${body}${d}`;
  throw new Error('unreachable');
});
const ID_FIELDS = ['id', 'orderId', 'order_id', 'userId', 'accountId', 'invoiceNumber', 'trackingNumber', 'traceId', 'span_id', 'requestId', 'createdAt', 'timestamp', 'ts', 'seq', 'nonce', 'amount', 'sku', 'phone', 'hash', 'sessionid', 'X-Request-ID'];
/** Ways a field name is put before its value. */
const NAMED: ReadonlyArray<(k: string, v: string) => string> = [
  (k, v) => `{"ok":true,"${k}":${v},"n":2}`, (k, v) => `{"ok":true,"${k}" : "${v}"}`, (k, v) => `a=1&${k}=${v}&b=2`,
  (k, v) => `<r><${k} type="long">${v}</${k}></r>`, (k, v) => `level=info ${k}=${v} msg="x"`, (k, v) => `${k}: ${v}\n`, (k, v) => `{'${k}': '${v}'}`,
];

describe('dlp pci-pan context', () => {
  it('field names: ids, times, counts are not cards; any card word wins', () => {
    for (const k of [...ID_FIELDS, 'x-b3-traceid', 'parent_span_id', 'created_at', 'IDs']) expect(notCardField(k), k).toBe(true);
    for (const k of ['card', 'cardId', 'card_id', 'cardNumber', 'pan', 'PAN', 'cc', 'ccNum', 'cc_serial', 'creditCardNo', 'paymentcardid', 'visa_id', 'value', 'number', 'data', 'ref', 'accountNumber']) expect(notCardField(k), k).toBe(false);
  });

  it('a card-shaped number as the value of an id-like field is no hit, split anywhere; under a neutral name it is (the numbers are card-shaped)', () => {
    let numbers = 0;
    fc.assert(
      fc.property(cardShaped, fc.constantFrom(...ID_FIELDS), fc.constantFrom(...NAMED), cleanDoc, fc.array(fc.nat(), { maxLength: 8 }), (n, k, shape, doc, cuts) => {
        numbers++;
        expect(cardScheme(n) !== null && luhn(n), n).toBe(true);
        const body = Buffer.from(`${doc}\n${shape(k, n)}\n${doc}`, 'latin1');
        expect(scanBody(body, cuts), `${k} ${n}`).toEqual([]);
        expect(scanBody(Buffer.from(`${doc}\n${shape('value', n)}\n${doc}`, 'latin1'), cuts).map((h) => h.sensor), n).toEqual(['pci-pan']);
      }),
      { numRuns: 2000 },
    );
    expect(numbers).toBeGreaterThanOrEqual(2000);
    // A header named as an id, and the same value in a header that is not.
    const hits: DlpHit[] = [];
    engine.scanHead(scope, '/o?trace_id=4111111111111111', [['x-request-id', '4111111111111111'], ['x-b3-traceid', ' "5555555555554444"']], hits);
    expect(hits).toEqual([]);
    engine.scanHead(scope, '/o?card=4111111111111111', [['x-value', '4111111111111111']], hits);
    expect(hits.map((h) => [h.sensor, h.where])).toEqual([['pci-pan', 'query'], ['pci-pan', 'header']]);
  });

  it('every test card still hits: as the value of a card field, a neutral field, and printed in groups under an id-like name, split at every byte', () => {
    const grouped = CARDS.filter(([, v]) => /[ -]/.test(v)).map(([, v]) => v);
    const cases: string[] = [];
    for (const [, card] of CARDS) {
      const bare = card.replace(/[ -]/g, '');
      for (const k of ['cardNumber', 'pan', 'cc_num', 'card_id', 'value', 'payment_card']) for (const shape of NAMED) cases.push(shape(k, bare));
      cases.push(`${bare}`, `[1,${bare},2]`, `id: x ${bare}`);
    }
    for (const card of grouped) for (const k of ID_FIELDS) cases.push(NAMED[0]!(k, `"${card}"`), NAMED[2]!(k, card));
    for (const text of cases) {
      const body = Buffer.from(text, 'latin1');
      for (const cut of [...Array(body.length + 1).keys()]) {
        expect(scanBody(body, [cut]).map((h) => h.sensor), `${text} cut at ${cut}`).toEqual(['pci-pan']);
      }
    }
    // In a kept tail: a long body read in TCP-sized pieces, the field name far back in an earlier read.
    const long = Buffer.from(`${'x'.repeat(5000)} {"orderId": 4111111111111111, "cardNumber": 5555555555554444}`);
    for (const size of [1, 7, 64, 1460]) {
      const cuts: number[] = [];
      for (let at = size; at < long.length; at += size) cuts.push(at);
      expect(scanBody(long, cuts).map((h) => h.sample), `pieces of ${size}`).toEqual([expect.stringMatching(/^5555\*+4444$/)]);
    }
  });
});
