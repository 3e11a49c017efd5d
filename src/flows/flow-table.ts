// The compact human view of flow records printed by `sidewall observe` (one line per record).
import type { EndpointRecord, FlowRecord } from './types.js';

const COLUMNS = [
  ['TIME', 12],
  ['TYPE', 5],
  ['DIR', 7],
  ['SOURCE', 30],
  ['DESTINATION', 30],
  ['PROTO', 6],
  ['VERDICT', 10],
  ['RULE', 16],
] as const;

const TYPE_LABEL = { connection: 'conn', request: 'req', alert: 'ALERT' } as const;

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

export function flowTableHeader(): string {
  return COLUMNS.map(([name, width]) => pad(name, width)).join(' ') + ' DETAIL';
}

function endpoint(e: EndpointRecord): string {
  const host = e.ip.includes(':') ? `[${e.ip}]` : e.ip;
  const w = e.workload;
  // A Service's cluster IP: the Service names the destination (which pod kube-proxy chose is not known here).
  if (e.service !== undefined) return `svc/${e.service.namespace}/${e.service.name}:${e.port}`;
  return w?.namespace !== undefined && w.pod !== undefined ? `${w.namespace}/${w.pod}:${e.port}` : `${host}:${e.port}`;
}

function field(l7: Record<string, unknown>, key: string): string {
  const value = l7[key];
  return value === undefined || value === null ? '' : String(value);
}

/** One-phrase summary of what happened: the L7 request, the tunnel, or the connection's totals. */
export function flowDetail(record: FlowRecord): string {
  const parts: string[] = [];
  const l7 = record.l7;
  if (l7 !== undefined) {
    switch (record.protocol) {
      case 'http':
      case 'http2':
        parts.push(`${field(l7, 'method')} ${field(l7, 'host')}${field(l7, 'path')} ${field(l7, 'status')}`.trim());
        break;
      case 'grpc':
        parts.push(`${field(l7, 'service')}/${field(l7, 'method')} status=${field(l7, 'status')}`);
        break;
      case 'tls':
        parts.push(`sni=${field(l7, 'sni')}`);
        break;
      case 'dns':
        parts.push(`${field(l7, 'name')} ${field(l7, 'type')} ${field(l7, 'rcode')}`.trim());
        break;
      default:
        parts.push(
          Object.entries(l7)
            .filter(([, v]) => typeof v !== 'object')
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(' '),
        );
    }
  }
  if (record.tunnel !== undefined) {
    const t = record.tunnel;
    parts.push(`TUNNEL ${t.kind}${t.detected !== undefined ? ` (${t.detected}` : ''}${t.expected !== undefined ? ` on ${t.expected}` : ''}${t.detected !== undefined ? ')' : ''}${t.blocked === true ? ' blocked' : ''}`);
  }
  if (record.type === 'connection') {
    if (record.bytes !== undefined) parts.push(`sent=${record.bytes.sent}B recv=${record.bytes.received}B`);
    if (record.durationMs !== undefined) parts.push(`${Math.round(record.durationMs)}ms`);
    if (record.interim === true) parts.push('(open)');
  }
  if (record.reason !== undefined) parts.push(record.reason);
  return parts.filter((p) => p !== '').join(' ');
}

export function flowTableRow(record: FlowRecord): string {
  const time = record.time.slice(11, 23); // HH:MM:SS.mmm, UTC
  const verdict = record.verdict === 'allowed' ? 'allowed' : record.verdict.toUpperCase();
  const cells = [time, TYPE_LABEL[record.type], record.direction, endpoint(record.src), endpoint(record.dst), record.protocol, verdict, record.ruleId ?? '(default)'];
  return cells.map((cell, i) => pad(cell, COLUMNS[i]?.[1] ?? 0)).join(' ') + ' ' + flowDetail(record);
}
