// The memory limit is read from the process's cgroup (v1 and v2) and the limits derived from it fit.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONNECTION_OVERHEAD_BYTES, connectionsForFds, deriveMemoryLimits, readCgroupMemoryLimit, readFdLimit } from '../../../src/net/memory-limits.js';

function fakeCgroupfs(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'sidewall-cgroup-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const MiB = 1024 * 1024;

describe('readCgroupMemoryLimit', () => {
  it('cgroup v1: the smallest limit on the path from the process cgroup to the root', () => {
    const root = fakeCgroupfs({
      'memory/memory.limit_in_bytes': '9223372036854771712\n',
      'memory/kubepods/memory.limit_in_bytes': String(1024 * MiB),
      'memory/kubepods/pod1/ctr/memory.limit_in_bytes': String(256 * MiB),
    });
    expect(readCgroupMemoryLimit(root, '12:pids:/kubepods/pod1/ctr\n4:memory:/kubepods/pod1/ctr\n0::/\n')).toEqual({ bytes: 256 * MiB, path: `${root}/memory/kubepods/pod1/ctr/memory.limit_in_bytes` });
  });

  it('cgroup v2: memory.max, "max" meaning none', () => {
    const root = fakeCgroupfs({ 'memory.max': 'max\n', 'pod/memory.max': String(128 * MiB), 'pod/ctr/memory.max': 'max\n' });
    expect(readCgroupMemoryLimit(root, '0::/pod/ctr\n')?.bytes).toBe(128 * MiB);
    expect(readCgroupMemoryLimit(fakeCgroupfs({ 'memory.max': 'max\n' }), '0::/\n')).toBeNull();
  });

  it('no cgroup file at all: no limit', () => {
    expect(readCgroupMemoryLimit('/nonexistent', '0::/x\n4:memory:/y\n')).toBeNull();
  });
});

describe('deriveMemoryLimits', () => {
  it('256 MiB: connections, their read buffers and the held and write budgets fit in what the baseline leaves', () => {
    const baseline = 64 * MiB;
    const l = deriveMemoryLimits({ maxConnections: 20_000 }, { bytes: 256 * MiB, path: 'x' }, baseline);
    expect(l.readBufferBytes).toBe(16 * 1024);
    const worst = l.maxConnections * (CONNECTION_OVERHEAD_BYTES + 2 * l.readBufferBytes) + l.heldBytesTotal + l.writeQueueTotal + l.stateTotal;
    expect(baseline + worst).toBeLessThan(256 * MiB);
    expect(l.maxConnections).toBeGreaterThan(1000);
    expect(l.pressureBytes).toBeLessThan(256 * MiB);
  });

  it('the configured limit wins over the cgroup, maxConnections caps the derived value, none: the defaults', () => {
    expect(deriveMemoryLimits({ memoryLimitBytes: 2048 * MiB }, { bytes: 256 * MiB, path: 'x' }, 60 * MiB)).toMatchObject({ limitBytes: 2048 * MiB, source: 'proxy.memoryLimitBytes', readBufferBytes: 64 * 1024 });
    expect(deriveMemoryLimits({ maxConnections: 100 }, { bytes: 256 * MiB, path: 'x' }, 60 * MiB).maxConnections).toBe(100);
    expect(deriveMemoryLimits({ maxConnections: 20_000 }, null, 60 * MiB)).toMatchObject({ limitBytes: null, maxConnections: 20_000, readBufferBytes: 64 * 1024, pressureBytes: null });
  });
});

describe('maxConnections from the open-files limit', () => {
  const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

  it('reads RLIMIT_NOFILE from /proc/self/limits', () => {
    expect(readFdLimit(LIMITS)).toEqual({ soft: 20_000, hard: 20_000 });
    expect(readFdLimit(LIMITS.replace('20000                20000', '1024                 524288'))).toEqual({ soft: 1024, hard: 524_288 });
    expect(readFdLimit('Max cpu time unlimited unlimited seconds\n')).toBeNull();
    expect(readFdLimit(LIMITS.replace('20000                20000', 'unlimited            unlimited'))).toBeNull();
    // This process's own (Linux): whatever it is, a positive pair.
    const own = readFdLimit();
    expect(own === null || (own.soft > 0 && own.hard >= own.soft)).toBe(true);
  });

  it('nofile 20,000: two descriptors a connection after the reserve, ~9,900 connections', () => {
    expect(connectionsForFds({ soft: 20_000, hard: 20_000 })).toBe(9_900);
    // The soft limit is the one accept() and connect() hit.
    expect(connectionsForFds({ soft: 1024, hard: 524_288 })).toBe(412);
  });

  it('the smallest of memory, open files and the config wins, and the limits say which', () => {
    const fd = { soft: 20_000, hard: 20_000 };
    // 4 GiB of memory would allow far more than the descriptors do.
    expect(deriveMemoryLimits({ maxConnections: 20_000 }, { bytes: 4096 * MiB, path: 'x' }, 60 * MiB, fd)).toMatchObject({ maxConnections: 9_900, maxConnectionsBy: 'file descriptors', fdLimit: fd });
    // No memory limit at all: the descriptors still bound it below the default 20,000.
    expect(deriveMemoryLimits({ maxConnections: 20_000 }, null, 60 * MiB, fd)).toMatchObject({ maxConnections: 9_900, maxConnectionsBy: 'file descriptors' });
    // 256 MiB allows fewer than 9,900: memory decides.
    expect(deriveMemoryLimits({ maxConnections: 20_000 }, { bytes: 256 * MiB, path: 'x' }, 60 * MiB, fd).maxConnectionsBy).toBe('memory');
    // A configured value below both.
    expect(deriveMemoryLimits({ maxConnections: 500 }, { bytes: 4096 * MiB, path: 'x' }, 60 * MiB, fd)).toMatchObject({ maxConnections: 500, maxConnectionsBy: 'proxy.maxConnections' });
    // Unknown descriptor limit: as before.
    expect(deriveMemoryLimits({ maxConnections: 20_000 }, null, 60 * MiB, null)).toMatchObject({ maxConnections: 20_000, maxConnectionsBy: 'proxy.maxConnections' });
  });
});
