// The memory the sidecar may use, and the limits derived from it so that no traffic pattern takes
// the process past it. The limit is the pod's: the container's memory cgroup (cgroup v2
// `memory.max`, cgroup v1 `memory.limit_in_bytes`; the smallest along the path from the
// process's own cgroup to the root, as the kernel enforces every ancestor), or `proxy.memoryLimitBytes`.
//
// What one connection can make us hold, at most: its own objects (two sockets, the relay, the
// filter and parser state: ~24 KiB measured with 9,000 idle connections), two read buffers, two
// write queues (each at most about one read: a write that does not complete pauses the other side),
// and the bytes held for a verdict (paused past a per-connection cap, shed past a global budget).
// Read buffers are smaller under small limits so that `maxConnections` of them fit.
import { readFileSync } from 'node:fs';

export interface MemoryLimits {
  /** The limit in bytes, or null when none was found (no cgroup limit, none configured). */
  limitBytes: number | null;
  /** Where the limit came from. */
  source: string;
  /** Resident memory at start, counted as not available to connections. */
  baselineBytes: number;
  maxConnections: number;
  readBufferBytes: number;
  /** Client (or server greeting) bytes one connection may hold for a verdict before it is paused. */
  heldBytesPerConnection: number;
  /** Held bytes of all connections together; past it, the connection holding bytes longest is closed. */
  heldBytesTotal: number;
  /** Bytes queued for writing on all sockets together; past it, the slowest reader is closed. */
  writeQueueTotal: number;
  /** Resident memory past which new connections are refused and offenders shed. */
  pressureBytes: number | null;
}

/** Per-connection cost besides buffers (sockets, relay, filter, parser), measured (README: Robustness). */
export const CONNECTION_OVERHEAD_BYTES = 24 * 1024;
/** Memory kept free of connection accounting for the garbage collector's slack and records in flight. */
const HEADROOM_BYTES = 32 * 1024 * 1024;
/** A cgroup limit this large means "no limit" (v1 reports 2^63 rounded down to a page). */
const UNLIMITED = 2 ** 60;

function readNumber(path: string): number | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (text === 'max') return null;
    const n = Number(text);
    return Number.isFinite(n) && n > 0 && n < UNLIMITED ? n : null;
  } catch {
    return null;
  }
}

/** `/proc/self/cgroup` → the memory cgroup path of this process (v1 'memory' controller, else v2). */
function cgroupPaths(procSelfCgroup: string): { v1?: string; v2?: string } {
  const out: { v1?: string; v2?: string } = {};
  for (const line of procSelfCgroup.split('\n')) {
    const [id, controllers, path] = [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1, line.lastIndexOf(':')), line.slice(line.lastIndexOf(':') + 1)];
    if (path === '' || id === '') continue;
    if (id === '0' && controllers === '') out.v2 = path;
    else if (controllers.split(',').includes('memory')) out.v1 = path;
  }
  return out;
}

function ancestors(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  const out: string[] = [];
  for (let i = parts.length; i >= 0; --i) out.push('/' + parts.slice(0, i).join('/'));
  return out;
}

/**
 * The smallest memory limit on this process's cgroup path, or null. `root` is where cgroupfs is
 * mounted (tests point it elsewhere). Inside a container with its own cgroup namespace the path
 * is '/', which is the container's cgroup: its limit is the pod's.
 */
export function readCgroupMemoryLimit(root = '/sys/fs/cgroup', procSelfCgroup?: string): { bytes: number; path: string } | null {
  let text = procSelfCgroup;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return null;
    }
  }
  const paths = cgroupPaths(text);
  const candidates: string[] = [];
  if (paths.v1 !== undefined) for (const p of ancestors(paths.v1)) candidates.push(`${root}/memory${p === '/' ? '' : p}/memory.limit_in_bytes`);
  if (paths.v2 !== undefined) {
    for (const p of ancestors(paths.v2)) {
      candidates.push(`${root}${p === '/' ? '' : p}/memory.max`);
      candidates.push(`${root}/unified${p === '/' ? '' : p}/memory.max`);
    }
  }
  let best: { bytes: number; path: string } | null = null;
  for (const file of candidates) {
    const bytes = readNumber(file);
    if (bytes !== null && (best === null || bytes < best.bytes)) best = { bytes, path: file };
  }
  return best;
}

export interface MemorySettings {
  /** proxy.memoryLimitBytes: overrides the cgroup's limit. */
  memoryLimitBytes?: number;
  /** proxy.maxConnections when set in the config: an upper bound on the derived value. */
  maxConnections?: number;
}

/** Derives the limits from the memory limit (or the defaults when there is none). */
export function deriveMemoryLimits(settings: MemorySettings, found: { bytes: number; path: string } | null, baselineBytes: number): MemoryLimits {
  const limitBytes = settings.memoryLimitBytes ?? found?.bytes ?? null;
  const source = settings.memoryLimitBytes !== undefined ? 'proxy.memoryLimitBytes' : (found?.path ?? 'none');
  if (limitBytes === null) {
    return {
      limitBytes: null,
      source,
      baselineBytes,
      maxConnections: settings.maxConnections ?? 20_000,
      readBufferBytes: 64 * 1024,
      heldBytesPerConnection: 256 * 1024,
      heldBytesTotal: 512 * 1024 * 1024,
      writeQueueTotal: 1024 * 1024 * 1024,
      pressureBytes: null,
    };
  }
  // What connections may use: the limit less what the process needed at start and the headroom.
  const usable = Math.max(16 * 1024 * 1024, limitBytes - baselineBytes - HEADROOM_BYTES);
  const readBufferBytes = limitBytes >= 1024 ** 3 ? 64 * 1024 : limitBytes >= 512 * 1024 ** 2 ? 32 * 1024 : 16 * 1024;
  // A quarter each for held bytes and write queues (budgets shared by all connections, enforced
  // by shedding), the rest for what every open connection costs at most: objects and read buffers.
  const heldBytesTotal = Math.floor(usable / 4);
  const writeQueueTotal = Math.floor(usable / 4);
  const perConnection = CONNECTION_OVERHEAD_BYTES + 2 * readBufferBytes;
  const derived = Math.max(64, Math.floor((usable / 2) / perConnection));
  return {
    limitBytes,
    source,
    baselineBytes,
    maxConnections: Math.min(derived, settings.maxConnections ?? derived),
    readBufferBytes,
    heldBytesPerConnection: Math.min(256 * 1024, Math.max(16 * 1024, Math.floor(heldBytesTotal / 64))),
    heldBytesTotal,
    writeQueueTotal,
    pressureBytes: Math.floor(limitBytes * 0.85),
  };
}
