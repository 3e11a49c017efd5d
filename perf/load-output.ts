// Parsers of the load generators' text output (wrk --latency, h2load), shared by the full bench
// (bench.ts) and the A/B comparison of two sidecar builds (ab-bench.ts).
import type { LoadResult } from './bench-tools.js';

function durationUs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const scale = { us: 1, ms: 1e3, s: 1e6, m: 60e6 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

function bytesPerSecond(text: string): number {
  const m = /^([\d.]+)([KMG]?B)$/.exec(text.trim());
  if (!m) return NaN;
  return Number(m[1]) * ({ B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] as 'B' | 'KB' | 'MB' | 'GB'] ?? NaN);
}

export interface ParsedLoad extends LoadResult {
  meanUs: number;
  bytesPerSecond: number;
}

export function parseWrk(out: string): ParsedLoad {
  const requests = Number(/(\d+) requests in ([\d.]+)(\w+)/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? Number(socket[1]) + Number(socket[3]) + Number(socket[4]) : 0;
  const latency = (p: string): number => durationUs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  return {
    requests,
    errors: non2xx + socketErrors,
    seconds: NaN,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50Us: latency('50'),
    p99Us: latency('99'),
    meanUs: durationUs(/Latency\s+(\S+)/.exec(out)?.[1] ?? ''),
    bytesPerSecond: bytesPerSecond(/Transfer\/sec:\s+(\S+)/.exec(out)?.[1] ?? ''),
  };
}

export function parseH2load(out: string): ParsedLoad {
  const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s, ([\d.]+[KMG]?B)\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const status = /status codes: (\d+) 2xx/.exec(out);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const succeeded = Number(req?.[4] ?? NaN);
  return {
    requests: succeeded,
    // Responses that were not 2xx count as errors (h2load counts them as succeeded).
    errors: Number(req?.[5] ?? 0) + Number(req?.[6] ?? 0) + Number(req?.[7] ?? 0) + (status ? Math.max(0, succeeded - Number(status[1])) : 0),
    seconds: Number(finished?.[1] ?? NaN),
    rps: Number(finished?.[2] ?? NaN),
    p50Us: NaN,
    p99Us: NaN,
    meanUs: durationUs(time?.[3] ?? ''),
    bytesPerSecond: bytesPerSecond(finished?.[3] ?? ''),
  };
}

