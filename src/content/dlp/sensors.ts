// The DLP sensors (PRODUCT.md "Content: DLP and capture"): what each built-in looks for, how a
// candidate is checked (a regular expression finds candidates, a checksum or table confirms
// them), and how a hit is shown — masked, never the value itself.
//
// Built-in patterns are fixed, written here and reviewed for backtracking: each is a bounded
// run of one character class with fixed anchors (no nested quantifiers over overlapping
// classes), so V8's irregexp runs them in time linear in the window. Users' own patterns go
// through re2js (RE2's automata in JavaScript: no backtracking, linear time whatever the
// pattern), see custom.ts.
//
// Specifications the checks follow:
// - pci-pan: ISO/IEC 7812 (IIN ranges as the schemes publish them: Visa, Mastercard incl. the
//   2221–2720 range, American Express, Discover incl. 622126–622925/644–649/65, JCB 3528–3589,
//   Diners Club 300–305/36/38–39, UnionPay 62, Maestro) and the Luhn check digit (ISO/IEC 7812-1
//   Annex B). Separators: none, or one kind (space or dash) between groups printed as on cards
//   (4-4-4-4[-3], Amex/Diners 4-6-5 / 4-6-4).
// - us-ssn: SSA "Social Security Number Randomization" (2011) — never issued: area 000, 666,
//   900–999; group 00; serial 0000; plus the numbers the SSA voided after they were published
//   (078-05-1120, 219-09-9999). Only the printed forms AAA-GG-SSSS and AAA GG SSSS: a bare
//   9-digit number is every other order id.
// - aws-access-key: AWS IAM "unique identifiers" prefixes (AKIA, ASIA, ...) + 16 upper-case
//   alphanumerics; a secret access key (40 base64 characters) only when named as one
//   (aws_secret_access_key, SecretAccessKey) — 40 base64 characters alone are every image.
// - private-key: RFC 7468 PEM "-----BEGIN … PRIVATE KEY-----" labels (PKCS#1, PKCS#8, SEC1,
//   OpenSSH, PGP).
// - jwt: RFC 7519/7515 compact serialisation: base64url header that decodes to a JSON object
//   with "alg", a second segment that is a base64url JSON object, then a third segment.
// - iban: ISO 13616 (country code, two check digits, BBAN of the length that country uses)
//   and the ISO 7064 MOD 97-10 check.

export interface SensorMatch {
  /** Offset of the match in the scanned text. */
  index: number;
  length: number;
  sample: string;
}

export interface Sensor {
  readonly name: string;
  /** Longest text one match can span: the scanner keeps this much of the previous window. */
  readonly maxLength: number;
  /**
   * Characters before a match the sensor reads as its context (pci-pan: the field name the value
   * belongs to). The scanner keeps them too, so the decision is the same however the text is split.
   */
  readonly lookbehind?: number;
  /**
   * Matches in `text` starting at or after `from`. `field`: the header name when `text` is one
   * header's value (a field name the value's own text does not carry).
   */
  find(text: string, from: number, field?: string): Generator<SensorMatch>;
  /**
   * Where, at or after `from`, a value of this sensor that the end of `text` may have cut short
   * begins (-1: nowhere): the bytes from there are held from the receiver until the next bytes
   * decide them, so a peer never gets the first digits of a card the next read completes. Only
   * the secret part counts (a PEM label or a key name is not the secret; what follows it is).
   */
  partial?(text: string, from: number): number;
}

/** Start of the run of characters `ok` accepts that ends `text`, at most `max` long and not before `from`. */
function trailingRun(text: string, from: number, max: number, ok: (c: number) => boolean): number {
  const stop = Math.max(from, text.length - max);
  let i = text.length;
  while (i > stop && ok(text.charCodeAt(i - 1))) i--;
  return i;
}

// ---- helpers -----------------------------------------------------------------------------------

export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** The card scheme whose IIN range and length the number fits, or null. */
export function cardScheme(digits: string): string | null {
  const n = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p3 = Number(digits.slice(0, 3));
  const p4 = Number(digits.slice(0, 4));
  const p6 = Number(digits.slice(0, 6));
  if (digits[0] === '4' && (n === 13 || n === 16 || n === 19)) return 'visa';
  if (((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) && n === 16) return 'mastercard';
  if ((p2 === 34 || p2 === 37) && n === 15) return 'amex';
  if ((p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65 || (p6 >= 622126 && p6 <= 622925)) && n >= 16 && n <= 19) return 'discover';
  if (p4 >= 3528 && p4 <= 3589 && n >= 16 && n <= 19) return 'jcb';
  if (((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) && n >= 14 && n <= 19) return 'diners';
  if (p2 === 62 && n >= 16 && n <= 19) return 'unionpay';
  if ([5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].includes(p4) && n >= 13 && n <= 19) return 'maestro';
  return null;
}

/** Group sizes printed on cards (groups[a..b]): all groups of 4 (last may be shorter), or 4-6-5 / 4-6-4. */
function cardGrouping(groups: readonly number[], a: number, b: number): boolean {
  if (a === b) return true;
  if (b - a === 2 && groups[a] === 4 && groups[a + 1] === 6 && (groups[b] === 5 || groups[b] === 4)) return true;
  for (let i = a; i < b; i++) if (groups[i] !== 4) return false;
  const last = groups[b]!;
  return last >= 1 && last <= 4;
}

/** Masks all but the first and last `keep` characters that are not separators. */
function maskMiddle(text: string, keepStart: number, keepEnd: number, isSep: (c: string) => boolean): string {
  let total = 0;
  for (const c of text) if (!isSep(c)) total++;
  let seen = 0;
  let out = '';
  for (const c of text) {
    if (isSep(c)) {
      out += c;
      continue;
    }
    out += seen < keepStart || seen >= total - keepEnd ? c : '*';
    seen++;
  }
  return out;
}

function* regexMatches(re: RegExp, text: string, from: number): Generator<RegExpExecArray> {
  re.lastIndex = from;
  for (;;) {
    const m = re.exec(text);
    if (m === null) return;
    yield m;
    re.lastIndex = m.index + 1; // overlapping candidates: a rejected one must not hide the next
  }
}

// ---- pci-pan ---------------------------------------------------------------------------------

// A run is digits with single spaces or dashes between groups (found by one regular
// expression: irregexp's compiled scan is ~10x faster than a JavaScript character loop here);
// a card is a window of whole groups of a run (13–19 digits, one kind of separator) — so
// `4111 1111 1111 1111 123` (a card and its CVV) and `ref 12 4111 1111 1111 1111` still show
// the card. A group glued to a letter, a digit, a decimal point or a sign (`0.4111…`,
// `ID4111…`, `-62568116945237590`) is not part of a card.
//
// Cost (the sensor dominates DLP on digit-heavy bodies, perf/dlp-bench.ts): a run is only begun
// at four digits in a row — every card window begins with a group of at least four (a bare
// number, or 4-…/4-6-…), so the run the expression finds from there still holds it, and a
// shorter group before it (`ref 12 4111 …`) only ever counted as context. Without it, a failed
// attempt in `2026-12-03…` or a 12-digit amount was retried from every digit of it (6x the time on
// digit-heavy JSON). A window is only built and checked when its first digit can begin an IIN
// (2–6): 19-digit epoch nanoseconds and snowflakes, which start with 1, cost one comparison.
const PAN_RUN_RE = /[0-9]{4}(?:[0-9]|[ -](?=[0-9])){9,}/g;
/** No IIN of the schemes above begins with 0, 1, 7, 8 or 9. */
const mayStartCard = (c: number): boolean => c >= 50 && c <= 54;

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isAlnum = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

// Context (the false positives of a checksum alone: 1 in 33 uniformly random 16-digit numbers is
// in an IIN range and passes Luhn). What card-scanning products do (Microsoft Purview's and
// Symantec's credit-card detectors, Google's hotword rules) is weigh the number's surroundings;
// this sensor uses one signal that cannot hide a card printed as a card: a bare, unseparated
// number that is the value of a field whose name says what else it is — an id, a timestamp, an
// order or invoice number, a count, a hash, a phone — is that, not a card (`"orderId": 4539…`,
// `?trace_id=4539…`, `<invoiceNo>4539…`, a header `x-request-id: 4539…`). Not excluded: a number
// printed in card groups (`4539 1488 …`: ids are not printed so), and any field whose name also
// names a card (`cardId`, `pan`, `cc_number`, `credit…`, a scheme). The name is read from a fixed
// window before the number (PAN_CONTEXT characters, which the scanner keeps), so the verdict does
// not depend on where the body was split. An app that labels card numbers as ids gets them
// through (as base64 would: DLP stops leaks, not an app that hides them; README "What still gets
// through").
const PAN_CONTEXT = 64;
/** `name": `, `name=`, `'name' : "` directly before the value (JSON, query strings, forms, logs, YAML). */
const KEY_BEFORE_RE = /(?:^|[^A-Za-z0-9_.-])([A-Za-z_][A-Za-z0-9_.-]{0,47})["']?[ \t]{0,4}[:=][ \t]{0,4}["']?$/;
/** `<name attr="…">` directly before the value (XML). */
const XML_BEFORE_RE = /<([A-Za-z_][A-Za-z0-9_.:-]{0,47})(?:[ \t][^<>]{0,40})?>[ \t]{0,4}$/;
/** A header value's own start: optional quote or blank before the number. */
const VALUE_START_RE = /^[ \t"']{0,4}$/;
/** Name words that say a number is something other than a card. */
const NOT_CARD_WORDS = new Set([
  'id', 'ids', 'uid', 'uuid', 'guid', 'oid', 'pid', 'ts', 'timestamp', 'time', 'date', 'created', 'updated', 'modified',
  'epoch', 'ns', 'ms', 'us', 'nanos', 'micros', 'millis', 'seq', 'sequence', 'nonce', 'order', 'invoice', 'receipt',
  'tracking', 'shipment', 'trace', 'span', 'request', 'correlation', 'serial', 'version', 'rev', 'revision', 'build',
  'count', 'total', 'amount', 'price', 'qty', 'quantity', 'size', 'bytes', 'length', 'offset', 'index', 'idx', 'cursor',
  'phone', 'tel', 'mobile', 'msisdn', 'fax', 'imei', 'imsi', 'iccid', 'isbn', 'issn', 'ean', 'gtin', 'upc', 'sku',
  'hash', 'checksum', 'crc', 'seed', 'snowflake', 'lat', 'lng', 'lon', 'port',
]);
/** Name words that say it may be a card: these override the above (`cardId`, `cc_serial`). */
const CARD_WORDS = new Set(['card', 'cards', 'pan', 'cc', 'ccn', 'ccnum', 'cardnumber', 'cardno', 'credit', 'debit', 'visa', 'mastercard', 'amex', 'discover', 'jcb', 'diners', 'unionpay', 'maestro']);

/** Written inside one word (`creditcardno`, `ccnumber`), these still say card. */
const CARD_INFIXES = /card|credit|debit|ccnum|visa|mastercard|amex|unionpay|maestro/;

/**
 * Whether a field name says its value is something other than a card (an id, a time, a count…)
 * and nothing says card. Words split at `_ - . :`, blanks and camelCase; a one-word name ending
 * in `id`/`ids` (`userid`, `x-b3-traceid`) is an id.
 */
export function notCardField(name: string): boolean {
  const lower = name.toLowerCase();
  if (CARD_INFIXES.test(lower)) return false;
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(/[^a-z0-9]+/);
  let notCard = false;
  for (const w of words) {
    if (CARD_WORDS.has(w)) return false;
    if (NOT_CARD_WORDS.has(w) || (w.length > 3 && (w.endsWith('id') || w.endsWith('ids')))) notCard = true;
  }
  return notCard;
}

/** The field a bare number at `at` is the value of names it as something else (see PAN_CONTEXT). */
function notCardContext(text: string, at: number, field: string | undefined): boolean {
  const before = text.slice(Math.max(0, at - PAN_CONTEXT), at);
  const key = KEY_BEFORE_RE.exec(before)?.[1] ?? XML_BEFORE_RE.exec(before)?.[1];
  if (key !== undefined) return notCardField(key);
  return field !== undefined && VALUE_START_RE.test(before) && notCardField(field);
}

function* findPan(text: string, from: number, field?: string): Generator<SensorMatch> {
  const n = text.length;
  const groups: number[] = [];
  const starts: number[] = [];
  const seps: number[] = [];
  PAN_RUN_RE.lastIndex = from;
  for (;;) {
    const m = PAN_RUN_RE.exec(text);
    if (m === null) return;
    const runStart = m.index;
    const j = runStart + m[0].length;
    groups.length = starts.length = seps.length = 0;
    let count = 0;
    let total = 0;
    starts.push(runStart);
    for (let k = runStart; k < j; k++) {
      const d = text.charCodeAt(k);
      if (isDigit(d)) count++;
      else {
        groups.push(count);
        total += count;
        seps.push(d);
        count = 0;
        starts.push(k + 1);
      }
    }
    groups.push(count);
    total += count;
    if (total < 13) continue;
    const before = runStart > 0 ? text.charCodeAt(runStart - 1) : 32;
    const beforeSign = (before === 45 || before === 43) && !(runStart > 1 && isDigit(text.charCodeAt(runStart - 2)));
    const after = j < n ? text.charCodeAt(j) : 32;
    const firstFree = isAlnum(before) || before === 46 || beforeSign ? 1 : 0;
    const lastFree = isAlnum(after) || (after === 46 && j + 1 < n && isDigit(text.charCodeAt(j + 1))) ? groups.length - 2 : groups.length - 1;
    for (let a = firstFree; a <= lastFree; ) {
      if (!mayStartCard(text.charCodeAt(starts[a]!))) {
        a++;
        continue;
      }
      // Windows of whole groups from `a` with 13–19 digits and one kind of separator, the
      // longest first; the first that is a card is the hit.
      const ends: number[] = [];
      let digits = 0;
      for (let b = a; b <= lastFree; b++) {
        if (b > a && seps[b - 1] !== seps[a]) break;
        digits += groups[b]!;
        if (digits > 19) break;
        if (digits >= 13 && cardGrouping(groups, a, b)) ends.push(b);
      }
      let hit = -1;
      for (let k = ends.length - 1; k >= 0 && hit < 0; k--) {
        const b = ends[k]!;
        const compact = text.slice(starts[a]!, starts[b]! + groups[b]!).replace(/[ -]/g, '');
        if (cardScheme(compact) !== null && luhn(compact)) hit = b;
      }
      // A bare number (one group, the run's first) named as something else by its field.
      if (hit === a && a === 0 && notCardContext(text, starts[0]!, field)) hit = -1;
      if (hit < 0) {
        a++;
        continue;
      }
      const s0 = starts[a]!;
      const e0 = starts[hit]! + groups[hit]!;
      yield { index: s0, length: e0 - s0, sample: maskMiddle(text.slice(s0, e0), 4, 4, (c) => c === ' ' || c === '-') };
      a = hit + 1;
    }
  }
}

const isPanChar = (c: number): boolean => isDigit(c) || c === 32 || c === 45;

/** Digits (and the separators between them) that end the text: the next read may make them a card or an SSN. */
function digitTail(max: number): (text: string, from: number) => number {
  return (text, from) => {
    let i = trailingRun(text, from, max, isPanChar);
    while (i < text.length && !isDigit(text.charCodeAt(i))) i++;
    return i < text.length ? i : -1;
  };
}

// ---- us-ssn ----------------------------------------------------------------------------------

const SSN_RE = /(?<![0-9A-Za-z-])([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![0-9A-Za-z]|-[0-9])/g;
const SSN_VOID = new Set(['078051120', '219099999', '123456789']);

function* findSsn(text: string, from: number): Generator<SensorMatch> {
  for (const m of regexMatches(SSN_RE, text, from)) {
    const area = Number(m[1]);
    if (area === 0 || area === 666 || area >= 900) continue;
    if (m[3] === '00' || m[4] === '0000') continue;
    if (SSN_VOID.has(`${m[1]}${m[3]}${m[4]}`)) continue;
    yield { index: m.index, length: m[0].length, sample: `***${m[2]}**${m[2]}${m[4]}` };
  }
}

// ---- aws-access-key --------------------------------------------------------------------------

const AWS_PREFIXES = ['AKIA', 'ASIA', 'ABIA', 'ACCA', 'AGPA', 'AIDA', 'AIPA', 'ANPA', 'ANVA', 'AROA', 'APKA', 'ASCA'];
const AWS_ID_RE = new RegExp(`(?<![A-Za-z0-9])(?:${AWS_PREFIXES.join('|')})[A-Z0-9]{16}(?![A-Za-z0-9])`, 'g');
const AWS_SECRET_RE = /(?:aws_?secret_?access_?key|secretaccesskey|aws_?secret)["']?\s{0,4}[:=]\s{0,4}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi;

function* findAws(text: string, from: number): Generator<SensorMatch> {
  for (const m of regexMatches(AWS_ID_RE, text, from)) {
    yield { index: m.index, length: m[0].length, sample: `${m[0].slice(0, 4)}${'*'.repeat(16)}` };
  }
  for (const m of regexMatches(AWS_SECRET_RE, text, from)) {
    const secret = m[1]!;
    const at = m.index + m[0].length - secret.length;
    // A key name can be any case; the secret must look random (mixed case and digits).
    if (!/[a-z]/.test(secret) || !/[A-Z]/.test(secret) || !/[0-9]/.test(secret)) continue;
    yield { index: at, length: secret.length, sample: `secret-access-key:${'*'.repeat(40)}` };
  }
}

const isUpperAlnum = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90);
/** A secret key's name and separator, then the first (at most 39) characters of its value, ending the text. */
const AWS_SECRET_TAIL_RE = /(?:aws_?secret_?access_?key|secretaccesskey|aws_?secret)["']?\s{0,4}[:=]\s{0,4}["']?([A-Za-z0-9/+]{0,39})$/i;

function awsPartial(text: string, from: number): number {
  let at = -1;
  // An access key id begun: a prefix of one of the id prefixes, not glued to a letter or digit.
  const s = trailingRun(text, from, 19, isUpperAlnum);
  if (s < text.length && !(s > 0 && isAlnum(text.charCodeAt(s - 1)))) {
    const head = text.slice(s, s + 4);
    if (AWS_PREFIXES.some((p) => p.startsWith(head))) at = s;
  }
  // A secret key's value begun after its name (written secret, Secret or SECRET: a name in
  // other mixed case still hits once complete, only its beginning is not held).
  const w = Math.max(from, text.length - 120);
  if (text.indexOf('ecret', w) < 0 && text.indexOf('ECRET', w) < 0) return at;
  const m = AWS_SECRET_TAIL_RE.exec(w === 0 ? text : text.slice(w));
  if (m !== null && m[1]!.length > 0) {
    const v = w + m.index + m[0].length - m[1]!.length;
    if (at < 0 || v < at) at = v;
  }
  return at;
}

// ---- private-key -----------------------------------------------------------------------------

const PEM_RE = /-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----/g;

function* findPem(text: string, from: number): Generator<SensorMatch> {
  for (const m of regexMatches(PEM_RE, text, from)) {
    // The label is not secret; what follows it is, and is never shown.
    yield { index: m.index, length: m[0].length, sample: `-----BEGIN ${m[1]}----- ****` };
  }
}

// ---- jwt -------------------------------------------------------------------------------------

const JWT_HEADER_MAX = 1024;
const JWT_RE = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,1024}\.eyJ[A-Za-z0-9_-]{8}[A-Za-z0-9_-]*\.[A-Za-z0-9_-]/g;

function base64urlJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function* findJwt(text: string, from: number): Generator<SensorMatch> {
  for (const m of regexMatches(JWT_RE, text, from)) {
    const dot = m[0].indexOf('.');
    const header = base64urlJson(m[0].slice(0, dot));
    if (header === null || typeof header !== 'object' || typeof (header as { alg?: unknown }).alg !== 'string') continue;
    yield { index: m.index, length: m[0].length, sample: `${m[0].slice(0, 6)}…(jwt alg=${String((header as { alg: string }).alg).slice(0, 10)})` };
    // The rest of this token (payload, signature) contains no second token.
    JWT_RE.lastIndex = m.index + m[0].length;
  }
}

const isB64url = (c: number): boolean => isAlnum(c) || c === 45 || c === 95;

/** A token begun (`eyJ` not glued to base64url, then base64url and dots), ending the text. */
function jwtPartial(text: string, from: number): number {
  // Most windows hold no `eyJ` at all: one native search decides that.
  const first = text.indexOf('eyJ', Math.max(from, text.length - JWT_HEADER_MAX - 32));
  if (first < 0) return -1;
  const s = Math.max(first, trailingRun(text, first, JWT_HEADER_MAX + 32, (c) => isB64url(c) || c === 46));
  for (let i = text.indexOf('eyJ', s); i >= 0; i = text.indexOf('eyJ', i + 1)) {
    if (i === 0 || !isB64url(text.charCodeAt(i - 1))) return i;
  }
  return -1;
}

// ---- iban ------------------------------------------------------------------------------------

/** ISO 13616 IBAN lengths by country (SWIFT IBAN registry). */
const IBAN_LENGTH: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21,
  CR: 22, CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27,
  GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26,
  IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24,
  ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29,
  RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24,
  TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};

const IBAN_RE = /(?<![A-Za-z0-9])([A-Z]{2})([0-9]{2})((?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])/g;

function mod97(iban: string): number {
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const c of rearranged) {
    const code = c.charCodeAt(0);
    const v = code >= 65 ? code - 55 : code - 48;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem;
}

function* findIban(text: string, from: number): Generator<SensorMatch> {
  for (const m of regexMatches(IBAN_RE, text, from)) {
    const raw = m[0];
    if (raw.includes(' ') && !/^[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4})*(?: [A-Z0-9]{1,4})?$/.test(raw)) continue;
    const compact = raw.replaceAll(' ', '');
    if (IBAN_LENGTH[m[1]!] !== compact.length) continue;
    if (mod97(compact) !== 1) continue;
    yield { index: m.index, length: raw.length, sample: maskMiddle(raw, 4, 4, (c) => c === ' ') };
  }
}

/** A country code and a check digit begun (not glued to a letter or digit), then the BBAN's characters, ending the text. */
function ibanPartial(text: string, from: number): number {
  const s = trailingRun(text, from, 42, (c) => isUpperAlnum(c) || c === 32);
  for (let i = s; i + 2 < text.length; i++) {
    if (i > 0 && isAlnum(text.charCodeAt(i - 1))) continue;
    const a = text.charCodeAt(i);
    const b = text.charCodeAt(i + 1);
    if (a >= 65 && a <= 90 && b >= 65 && b <= 90 && isDigit(text.charCodeAt(i + 2))) return i;
  }
  return -1;
}

export const BUILTIN_SENSORS: ReadonlyMap<string, Sensor> = new Map<string, Sensor>([
  ['pci-pan', { name: 'pci-pan', maxLength: 19 + 18, lookbehind: PAN_CONTEXT, find: findPan, partial: digitTail(19 + 18) }],
  ['us-ssn', { name: 'us-ssn', maxLength: 11, find: findSsn, partial: digitTail(11) }],
  ['aws-access-key', { name: 'aws-access-key', maxLength: 120, find: findAws, partial: awsPartial }],
  // The label is not the secret, and a hit on it cuts the read that completes it, before the key.
  ['private-key', { name: 'private-key', maxLength: 64, find: findPem }],
  ['jwt', { name: 'jwt', maxLength: JWT_HEADER_MAX + 32, find: findJwt, partial: jwtPartial }],
  ['iban', { name: 'iban', maxLength: 42, find: findIban, partial: ibanPartial }],
]);

export const BUILTIN_SENSOR_NAMES: readonly string[] = [...BUILTIN_SENSORS.keys()];
