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
  /** The open-files limit (RLIMIT_NOFILE) the process runs under, or null when unknown. */
  fdLimit: { soft: number; hard: number } | null;
  /** What set maxConnections: the memory limit, the open-files limit or proxy.maxConnections. */
  maxConnectionsBy: 'memory' | 'file descriptors' | 'proxy.maxConnections' | 'default';
  /** Parser state (HTTP/2 HPACK tables, streams, header blocks) one connection may keep before it is closed. */
  statePerConnection: number;
  /** Parser state of all connections together; past it, the connection keeping the most is closed. */
  stateTotal: number;
}

/** Per-connection cost besides buffers (sockets, relay, filter, parser), measured (README: Robustness). */
export const CONNECTION_OVERHEAD_BYTES = 24 * 1024;
/**
 * Parser state one connection may keep: HTTP/2's two HPACK tables (64 KiB each at most, see
 * hpack-decoder.ts), a header block being assembled (256 KiB at most) and per-stream state for a
 * few thousand open streams. An ordinary connection keeps a few KiB.
 */
export const STATE_PER_CONNECTION = 1024 * 1024;
/** Memory kept free of connection accounting for the garbage collector's slack and records in flight. */
const HEADROOM_BYTES = 32 * 1024 * 1024;
/** A cgroup limit this large means "no limit" (v1 reports 2^63 rounded down to a page). */
const UNLIMITED = 2 ** 60;
/**
 * Descriptors kept out of the connection count: listeners (6), the admin and metrics server, the
 * identity and OTLP clients, DNS sockets, log and capture files, stdio, and Node's own (epoll,
 * eventfds, the libuv thread pool's pipes); measured ~40 at start, the rest is margin.
 */
export const FD_RESERVE = 200;
/** Each proxied connection holds two descriptors: the accepted socket and the one we dial. */
const FDS_PER_CONNECTION = 2;

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

/**
 * RLIMIT_NOFILE of this process from `/proc/self/limits` ("Max open files  SOFT  HARD  files"),
 * or null (not Linux, unreadable, or "unlimited" both ways). Node has no getrlimit().
 */
export function readFdLimit(procSelfLimits?: string): { soft: number; hard: number } | null {
  let text = procSelfLimits;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (m === null) return null;
  const num = (v: string): number => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  const soft = num(m[1] as string);
  const hard = num(m[2] as string);
  if (!Number.isFinite(soft) && !Number.isFinite(hard)) return null;
  if (Number.isNaN(soft) || Number.isNaN(hard)) return null;
  return { soft, hard };
}

/** Connections the soft open-files limit leaves room for (the soft limit is what accept() and connect() hit). */
export function connectionsForFds(fd: { soft: number; hard: number }): number {
  const soft = Math.min(fd.soft, fd.hard);
  if (!Number.isFinite(soft)) return Number.POSITIVE_INFINITY;
  return Math.max(16, Math.floor((soft - FD_RESERVE) / FDS_PER_CONNECTION));
}

export interface MemorySettings {
  /** proxy.memoryLimitBytes: overrides the cgroup's limit. */
  memoryLimitBytes?: number;
  /** proxy.maxConnections when set in the config: an upper bound on the derived value. */
  maxConnections?: number;
}

/** Derives the limits from the memory limit (or the defaults when there is none). */
/**
 * The smallest of the connection counts memory, descriptors and the config allow, and which one
 * it was (an accept past the descriptor limit fails with EMFILE, and a dial with no descriptor
 * left fails a connection the client already had: the count must stop first).
 */
function pickMaxConnections(byMemory: number | null, fd: { soft: number; hard: number } | null, configured: number | undefined): Pick<MemoryLimits, 'maxConnections' | 'maxConnectionsBy'> {
  const candidates: Array<[number, MemoryLimits['maxConnectionsBy']]> = [];
  if (byMemory !== null) candidates.push([byMemory, 'memory']);
  if (fd !== null) candidates.push([connectionsForFds(fd), 'file descriptors']);
  if (configured !== undefined) candidates.push([configured, 'proxy.maxConnections']);
  if (candidates.length === 0) candidates.push([20_000, 'default']);
  // Ties go to the earlier entry (memory, then descriptors, then the config): it names the real constraint.
  let best = candidates[0] as [number, MemoryLimits['maxConnectionsBy']];
  for (const c of candidates) if (c[0] < best[0]) best = c;
  return { maxConnections: best[0], maxConnectionsBy: best[1] };
}

export function deriveMemoryLimits(settings: MemorySettings, found: { bytes: number; path: string } | null, baselineBytes: number, fdLimit: { soft: number; hard: number } | null = null): MemoryLimits {
  const limitBytes = settings.memoryLimitBytes ?? found?.bytes ?? null;
  const source = settings.memoryLimitBytes !== undefined ? 'proxy.memoryLimitBytes' : (found?.path ?? 'none');
  if (limitBytes === null) {
    const heldBytesTotal = 512 * 1024 * 1024;
    return {
      limitBytes: null,
      source,
      baselineBytes,
      ...pickMaxConnections(null, fdLimit, settings.maxConnections),
      readBufferBytes: 64 * 1024,
      heldBytesPerConnection: 256 * 1024,
      heldBytesTotal,
      writeQueueTotal: 1024 * 1024 * 1024,
      pressureBytes: null,
      fdLimit,
      statePerConnection: STATE_PER_CONNECTION,
      stateTotal: heldBytesTotal / 2,
    };
  }
  // What connections may use: the limit less what the process needed at start and the headroom.
  const usable = Math.max(16 * 1024 * 1024, limitBytes - baselineBytes - HEADROOM_BYTES);
  const readBufferBytes = limitBytes >= 1024 ** 3 ? 64 * 1024 : limitBytes >= 512 * 1024 ** 2 ? 32 * 1024 : 16 * 1024;
  // A quarter each for held bytes (with parser state: a sixteenth of it all) and write queues
  // (budgets shared by all connections, enforced by shedding), the rest for what every open
  // connection costs at most: objects and read buffers.
  const stateTotal = Math.floor(usable / 16);
  const heldBytesTotal = Math.floor(usable / 4) - stateTotal;
  const writeQueueTotal = Math.floor(usable / 4);
  const perConnection = CONNECTION_OVERHEAD_BYTES + 2 * readBufferBytes;
  const derived = Math.max(64, Math.floor((usable / 2) / perConnection));
  return {
    limitBytes,
    source,
    baselineBytes,
    ...pickMaxConnections(derived, fdLimit, settings.maxConnections),
    readBufferBytes,
    heldBytesPerConnection: Math.min(256 * 1024, Math.max(16 * 1024, Math.floor(heldBytesTotal / 64))),
    heldBytesTotal,
    writeQueueTotal,
    pressureBytes: Math.floor(limitBytes * 0.85),
    fdLimit,
    statePerConnection: STATE_PER_CONNECTION,
    stateTotal,
  };
}
