// The compact human view of flow records printed by `sidewall observe` (one line per record).
import { pluginForRecord } from '../protocols/registry.js';
import type { EndpointRecord, FlowRecord } from './types.js';

/** How a table is laid out: the terminal's width (undefined: no limit) and whether to colour verdicts. */
export interface FlowTableOptions {
  width?: number;
  color?: boolean;
}

type Column = 'TIME' | 'TYPE' | 'DIR' | 'SOURCE' | 'DESTINATION' | 'PROTO' | 'VERDICT' | 'RULE';
const NAMES: readonly Column[] = ['TIME', 'TYPE', 'DIR', 'SOURCE', 'DESTINATION', 'PROTO', 'VERDICT', 'RULE'];
const WIDE: Readonly<Record<Column, number>> = { TIME: 12, TYPE: 5, DIR: 7, SOURCE: 30, DESTINATION: 30, PROTO: 6, VERDICT: 10, RULE: 16 };
/** Below this width the wide layout's fixed columns alone (and some detail) would not fit. */
const WIDE_MIN = 160;

/**
 * Column widths for a terminal `width` columns wide: the wide layout when it fits, else a compact
 * one (seconds, short direction and verdict) whose endpoints share what is left with the detail.
 */
function layout(width: number | undefined): Record<Column, number> {
  if (width === undefined || width >= WIDE_MIN) return WIDE;
  // No TYPE column (alerts are marked '!' in VERDICT; requests and connections differ in DETAIL).
  // Below 90 columns no TIME either: a live table's rows are now; the endpoints need the room.
  const fixed: Record<Column, number> = { TIME: width >= 90 ? 8 : 0, TYPE: 0, DIR: 5, SOURCE: 0, DESTINATION: 0, PROTO: 5, VERDICT: 7, RULE: width >= 100 ? 14 : 10 };
  const used = NAMES.reduce((sum, name) => sum + (fixed[name] > 0 ? fixed[name] + 1 : 0), 0) + 2; // + the spaces after each column
  // The two endpoints and the detail share what is left, a third each.
  const endpointWidth = Math.max(12, Math.min(24, Math.floor((width - used) / 3)));
  return { ...fixed, SOURCE: endpointWidth, DESTINATION: endpointWidth };
}

const TYPE_LABEL = { connection: 'conn', request: 'req', alert: 'ALERT' } as const;
const DIR_SHORT: Record<string, string> = { egress: 'out', ingress: 'in', intra: 'intra' };
const VERDICT_SHORT: Record<string, string> = { allowed: 'allowed', denied: 'DENIED', 'would-deny': 'WOULD-D' };
/** SGR colours (ECMA-48): green allowed, red denied, yellow would-deny; bold red alerts. */
const VERDICT_COLOR: Record<string, string> = { allowed: '32', denied: '31', 'would-deny': '33' };

/** Cuts `text` to `width` characters, marking the cut with '…'. */
function fit(text: string, width: number): string {
  if (text.length <= width) return text + ' '.repeat(width - text.length);
  return width <= 1 ? text.slice(0, width) : text.slice(0, width - 1) + '…';
}

/** Cuts from the left: an endpoint's port and the end of its name are what tell flows apart. */
function fitLeft(text: string, width: number): string {
  if (text.length <= width) return text + ' '.repeat(width - text.length);
  return width <= 1 ? text.slice(-width) : '…' + text.slice(text.length - width + 1);
}

function paint(text: string, sgr: string | undefined, color: boolean): string {
  return color && sgr !== undefined ? `\x1b[${sgr}m${text}\x1b[0m` : text;
}

export function flowTableHeader(options: FlowTableOptions = {}): string {
  const widths = layout(options.width);
  const line = NAMES.filter((name) => widths[name] > 0).map((name) => fit(name, widths[name])).join(' ') + ' DETAIL';
  return options.width === undefined ? line : line.slice(0, options.width);
}

/** `compact`: the pod without its namespace; `noPort`: a client's ephemeral port left out. */
function endpoint(e: EndpointRecord, compact = false, noPort = false): string {
  if (noPort) return endpoint(e, compact).replace(/:\d+$/, '');
  const host = e.ip.includes(':') ? `[${e.ip}]` : e.ip;
  const w = e.workload;
  // A Service's cluster IP: the Service names the destination (which pod kube-proxy chose is not known here).
  if (e.service !== undefined) return compact ? `svc/${e.service.name}:${e.port}` : `svc/${e.service.namespace}/${e.service.name}:${e.port}`;
  if (w?.namespace === undefined || w.pod === undefined) return `${host}:${e.port}`;
  return compact ? `${w.pod}:${e.port}` : `${w.namespace}/${w.pod}:${e.port}`;
}

/** One-phrase summary of what happened: the L7 request, the tunnel, or the connection's totals. */
export function flowDetail(record: FlowRecord, compact = false): string {
  const parts: string[] = [];
  const l7 = record.l7;
  if (l7 !== undefined) {
    // The protocol that produced the record says how to put it in a phrase (its `describe`).
    const describe = pluginForRecord(record.protocol)?.describe;
    if (describe !== undefined) parts.push(describe(l7, compact));
    else {
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

export function flowTableRow(record: FlowRecord, options: FlowTableOptions = {}): string {
  const widths = layout(options.width);
  const compact = widths !== WIDE;
  // (the compact layout is only ever chosen for a given width)
  const time = compact ? record.time.slice(11, 19) : record.time.slice(11, 23); // UTC
  const verdict = compact ? `${record.type === 'alert' ? '!' : ''}${VERDICT_SHORT[record.verdict] ?? record.verdict}` : record.verdict === 'allowed' ? 'allowed' : record.verdict.toUpperCase();
  const direction = compact ? (DIR_SHORT[record.direction] ?? record.direction) : record.direction;
  const cells: Record<Column, string> = {
    TIME: time,
    TYPE: TYPE_LABEL[record.type],
    DIR: direction,
    SOURCE: endpoint(record.src, compact, compact),
    DESTINATION: endpoint(record.dst, compact),
    PROTO: record.protocol,
    VERDICT: verdict,
    RULE: record.ruleId ?? '(default)',
  };
  const color = options.color === true;
  // Padding is computed on the plain text, so colour codes never shift the columns.
  const columns = NAMES.filter((name) => widths[name] > 0).map((name) => {
    // No width given (`sidewall observe` into a pipe): nothing is cut, long cells push the rest right.
    const cut = name === 'SOURCE' || name === 'DESTINATION' ? fitLeft : fit;
    const text = options.width === undefined ? fit(cells[name], Math.max(widths[name], cells[name].length)) : cut(cells[name], widths[name]);
    if (name === 'VERDICT') return paint(text, record.type === 'alert' ? '1;' + (VERDICT_COLOR[record.verdict] ?? '31') : VERDICT_COLOR[record.verdict], color);
    if (name === 'TYPE' && record.type === 'alert') return paint(text, '1;31', color);
    return text;
  });
  let detail = flowDetail(record, compact);
  if (options.width !== undefined) {
    const room = options.width - NAMES.reduce((sum, name) => sum + (widths[name] > 0 ? widths[name] + 1 : 0), 0);
    detail = room <= 0 ? '' : detail.length > room ? detail.slice(0, room - 1) + '…' : detail;
  }
  return (columns.join(' ') + ' ' + detail).trimEnd();
}

/**
 * The table options for an output stream: a terminal's width and colour (none when NO_COLOR is
 * set to anything non-empty, https://no-color.org); nothing for a pipe or a file, which get the
 * uncut, uncoloured lines. `fallback`: a terminal to take the width from when `out` is a pipe
 * (`npm run demo | tee log` still fits the screen it is watched on); else COLUMNS if set.
 */
export function terminalTableOptions(out: { isTTY?: boolean; columns?: number }, fallback?: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv = process.env): FlowTableOptions {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  const options: FlowTableOptions = {};
  const fromEnv = Number(env.COLUMNS);
  const width = out.isTTY === true ? out.columns : fallback?.isTTY === true ? fallback.columns : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : undefined;
  if (width !== undefined && width > 0) options.width = width;
  if (out.isTTY === true && !noColor) options.color = true;
  return options;
}
