// DLP false positives of pci-pan on a large random corpus: uniformly random 16-digit numbers (and
// 13–19-digit ones), each placed where numbers sit in real traffic — the value of a JSON field,
// a query parameter, an XML element, a log field, a header — under field names that say what the
// number is (ids, timestamps, order numbers, hashes…) and under neutral ones (`value`, an array
// element, free text). For each context: the share the checksum alone flags (IIN range + length +
// Luhn: what the sensor did before it read context) and the share the sensor flags now. Seeded,
// so a run is repeatable; no sockets, the engine only.
//   npm run build && node dist/perf/dlp-fp.js [--numbers 200000] [--seed 19]
import { DEFAULT_DLP, DlpEngine, type DlpHit } from '../src/content/dlp/index.js';
import { cardScheme, luhn } from '../src/content/dlp/sensors.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const NUMBERS = arg('--numbers', 200_000);
let seed = arg('--seed', 19) >>> 0;
/** mulberry32: a small seeded PRNG (the corpus must be the same on every run). */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
function digits(n: number): string {
  let s = String(1 + Math.floor(random() * 9));
  while (s.length < n) s += String(Math.floor(random() * 10));
  return s;
}

/** Field names APIs and logs give numbers that are not cards. */
const ID_NAMES = ['id', 'orderId', 'order_id', 'userId', 'user_id', 'accountId', 'customerId', 'invoiceNumber', 'invoice_no', 'trackingNumber', 'traceId', 'trace_id', 'spanId', 'requestId', 'x_request_id', 'createdAt', 'updated_at', 'timestamp', 'ts', 'seq', 'nonce', 'amount', 'total', 'sku', 'phone', 'hash', 'version', 'snowflake', 'messageId', 'sessionid', 'eventId', 'productId', 'shipmentId', 'correlationId', 'parent_span_id', 'serialNumber', 'imei', 'ean', 'gtin', 'offset', 'cursor'];
const HEADER_NAMES = ['x-request-id', 'x-b3-traceid', 'x-correlation-id', 'x-amzn-trace-id', 'x-order-id'];
const NEUTRAL_NAMES = ['value', 'n', 'data', 'number', 'ref', 'code', 'x'];

type Context = { name: string; named: boolean; text: (n: string) => { text: string; field?: string } };
const CONTEXTS: Context[] = [
  { name: 'JSON number, id-like field', named: true, text: (n) => ({ text: `{"status":"ok","${pick(ID_NAMES)}":${n},"items":3}` }) },
  { name: 'JSON string, id-like field', named: true, text: (n) => ({ text: `{"status":"ok","${pick(ID_NAMES)}": "${n}","items":3}` }) },
  { name: 'query parameter, id-like name', named: true, text: (n) => ({ text: `page=2&${pick(ID_NAMES)}=${n}&sort=asc` }) },
  { name: 'XML element, id-like name', named: true, text: (n) => { const k = pick(ID_NAMES); return { text: `<order><${k}>${n}</${k}></order>` }; } },
  { name: 'log line key=value, id-like key', named: true, text: (n) => ({ text: `level=info msg="done" ${pick(ID_NAMES)}=${n} took=3ms` }) },
  { name: 'header value, id-like header', named: true, text: (n) => ({ text: n, field: pick(HEADER_NAMES) }) },
  { name: 'JSON, neutral field name', named: false, text: (n) => ({ text: `{"status":"ok","${pick(NEUTRAL_NAMES)}":${n}}` }) },
  { name: 'JSON array element', named: false, text: (n) => ({ text: `{"list":[7,${n},9]}` }) },
  { name: 'free text', named: false, text: (n) => ({ text: `the number is ${n} today` }) },
];

const engine = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan'], patterns: [] });
const scope = engine.scope('egress', [], false)!;

function sensorHits(text: string, field: string | undefined): boolean {
  const hits: DlpHit[] = [];
  if (field !== undefined) engine.scanHead(scope, null, [[field, text]], hits);
  else {
    const scanner = engine.body(scope, 'request-body', [], false)!;
    scanner.push(Buffer.from(text, 'latin1'), hits);
    scanner.end(hits);
  }
  return hits.some((h) => h.sensor === 'pci-pan');
}

console.log(`pci-pan false positives, ${NUMBERS.toLocaleString('en')} random numbers per row (seed ${arg('--seed', 19)}), node ${process.version}`);
console.log(`${'context'.padEnd(38)} ${'length'.padEnd(7)} ${'checksum only'.padStart(14)} ${'sensor'.padStart(10)}`);
const totals = { named: [0, 0, 0], neutral: [0, 0, 0] };
for (const lengths of [[16], [13, 14, 15, 16, 17, 18, 19]]) {
  for (const ctx of CONTEXTS) {
    let before = 0;
    let after = 0;
    for (let i = 0; i < NUMBERS; i++) {
      const n = digits(pick(lengths));
      if (cardScheme(n) !== null && luhn(n)) before++;
      const { text, field } = ctx.text(n);
      if (sensorHits(text, field)) after++;
    }
    const t = ctx.named ? totals.named : totals.neutral;
    t[0]! += NUMBERS;
    t[1]! += before;
    t[2]! += after;
    const pct = (k: number): string => `${((100 * k) / NUMBERS).toFixed(3)}%`;
    console.log(`${ctx.name.padEnd(38)} ${(lengths.length === 1 ? '16' : '13-19').padEnd(7)} ${pct(before).padStart(14)} ${pct(after).padStart(10)}`);
  }
}
for (const [label, t] of [['all id-like contexts', totals.named], ['all neutral contexts', totals.neutral]] as const) {
  console.log(`${label.padEnd(46)} ${`${((100 * t[1]!) / t[0]!).toFixed(3)}%`.padStart(14)} ${`${((100 * t[2]!) / t[0]!).toFixed(3)}%`.padStart(10)}  (${t[0]!.toLocaleString('en')} numbers)`);
}
