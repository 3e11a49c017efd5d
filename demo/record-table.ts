// A compact, readable line per flow record for the demo's live view.
export const RECORD_TABLE_HEADER = [
  'TIME'.padEnd(12),
  'TYPE'.padEnd(10),
  'DIR'.padEnd(7),
  'SOURCE'.padEnd(21),
  'DESTINATION'.padEnd(21),
  'PROTO'.padEnd(6),
  'VERDICT'.padEnd(10),
  'RULE'.padEnd(18),
  'DETAIL',
].join(' ');

interface Endpoint {
  ip?: string;
  port?: number;
}

const COLOURS: Record<string, string> = { allowed: '\x1b[32m', denied: '\x1b[31m', 'would-deny': '\x1b[33m' };

function endpoint(e: unknown): string {
  const { ip = '?', port = 0 } = (e ?? {}) as Endpoint;
  return (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`).padEnd(21);
}

export function formatRecordRow(r: Record<string, unknown>): string {
  const verdict = String(r.verdict ?? '');
  const l7 = r.l7 as Record<string, unknown> | undefined;
  const tunnel = r.tunnel as Record<string, unknown> | undefined;
  const bytes = r.bytes as { sent: number; received: number } | undefined;
  const detail = [
    l7 ? Object.values(l7).filter((v) => typeof v === 'string' || typeof v === 'number').join(' ') : '',
    tunnel ? `TUNNEL ${String(tunnel.kind)}` : '',
    bytes ? `${bytes.sent}B→ ${bytes.received}B←` : '',
    r.reason !== undefined ? `(${String(r.reason)})` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return [
    String(r.time ?? '').slice(11, 23).padEnd(12),
    String(r.type ?? '').padEnd(10),
    String(r.direction ?? '').padEnd(7),
    endpoint(r.src),
    endpoint(r.dst),
    String(r.protocol ?? '').padEnd(6),
    `${COLOURS[verdict] ?? ''}${verdict.padEnd(10)}\x1b[0m`,
    String(r.ruleId ?? '-').padEnd(18),
    detail,
  ].join(' ');
}
