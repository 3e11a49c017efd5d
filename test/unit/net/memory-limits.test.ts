// The memory limit is read from the process's cgroup (v1 and v2) and the limits derived from it fit.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONNECTION_OVERHEAD_BYTES, deriveMemoryLimits, readCgroupMemoryLimit } from '../../../src/net/memory-limits.js';

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
    const worst = l.maxConnections * (CONNECTION_OVERHEAD_BYTES + 2 * l.readBufferBytes) + l.heldBytesTotal + l.writeQueueTotal;
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
