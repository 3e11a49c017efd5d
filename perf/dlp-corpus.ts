// The clean body both DLP benchmarks scan (dlp-bench.ts through the filter, dlp-scan-bench.ts the
// scanner alone), so their numbers describe the same bytes.

/** A realistic JSON body: orders with ids, timestamps, phone numbers, amounts, a base64 blob. */
export function cleanBody(size: number): Buffer {
  const parts: string[] = [];
  let n = 0;
  let len = 0;
  while (len < size) {
    const doc = `{"orderId":"ORD-2026-${String(n).padStart(6, '0')}","ts":"2026-12-03T13:14:${String(n % 60).padStart(2, '0')}.123456Z","epochNs":${1764767655123456789n + BigInt(n)},"phone":"+1 (415) 555-${String(1000 + (n % 9000))}","amount":${(n * 13.37).toFixed(2)},"blob":"${Buffer.alloc(96, n % 251).toString('base64')}"},`;
    parts.push(doc);
    len += doc.length;
    n++;
  }
  return Buffer.from(parts.join('').slice(0, size));
}
