// What the benchmarks read about a process from /proc (proc(5)), and the median they report:
// one copy for `npm run bench` (bench.ts, bench-report.ts) and the A/B comparison (ab-bench.ts).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second, the unit of utime/stime. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface CpuTicks {
  user: number;
  sys: number;
}

function ticksOf(stat: string): CpuTicks {
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), sys: Number(fields[12]) };
}

export function procCpu(pid: number): CpuTicks {
  return ticksOf(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU ticks per thread name (main thread "node (main thread)", "V8 DefaultWorke", "libuv-worker", …). */
export function threadCpu(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const { user, sys } = ticksOf(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      const name = tid === String(pid) ? `${comm} (main thread)` : comm;
      byName.set(name, (byName.get(name) ?? 0) + user + sys);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return byName;
}

export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}
