// Summarises a V8 .cpuprofile (what `node --cpu-prof` writes): self time per function and per
// file, so RESULTS.md can say where the sidecar's CPU goes without opening DevTools.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  percent: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** Shortens a script URL to what a reader recognises: src/net/connection.js, node:net, pkg name. */
function shortWhere(url: string): string {
  if (url === '') return '';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 6);
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + 14).split('/');
    return `${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]} (dependency)`;
  }
  return url.replace(/^file:\/\//, '');
}

export function summariseCpuProfile(path: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time between sample i-1 and sample i: it belongs to sample i-1.
  for (let i = 0; i + 1 < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] as number));
  }
  const functions = new Map<string, SelfTime>();
  const files = new Map<string, SelfTime>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const where = SPECIAL.has(frame.functionName) ? '' : `${shortWhere(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    const name = frame.functionName || '(anonymous)';
    const key = `${name} ${where}`;
    const f = functions.get(key) ?? { name, where, selfMs: 0, percent: 0 };
    f.selfMs += us / 1000;
    functions.set(key, f);
    const file = SPECIAL.has(frame.functionName) ? frame.functionName : shortWhere(frame.url) || '(native / builtins)';
    const g = files.get(file) ?? { name: file, where: '', selfMs: 0, percent: 0 };
    g.selfMs += us / 1000;
    files.set(file, g);
  }
  const rank = (m: Map<string, SelfTime>, n: number): SelfTime[] =>
    [...m.values()]
      .map((e) => ({ ...e, percent: busyUs > 0 ? (100 * e.selfMs * 1000) / busyUs : 0 }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, n);
  return { busyMs: busyUs / 1000, idleMs: idleUs / 1000, functions: rank(functions, top), files: rank(files, 15) };
}
