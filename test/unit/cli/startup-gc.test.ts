// The proxy's one collection after start-up (src/cli/startup-gc.ts): V8 must still hand out gc()
// at run time on this Node, and it must free what start-up left (else ≈ 3 MiB stay idle).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MODULE = fileURLToPath(new URL('../../../dist/src/cli/startup-gc.js', import.meta.url));

describe('start-up garbage collection', () => {
  it('collects garbage the old generation holds, without --expose-gc and without exposing gc() to our code', () => {
    const script = `
      const { collectStartupGarbage } = await import(${JSON.stringify(MODULE)});
      // ≈ 8 MiB that reaches the old generation, then is dropped (as start-up's work is).
      let junk = []; for (let i = 0; i < 2e5; i++) junk.push({ s: 'x'.repeat(20) + i });
      for (let i = 0; i < 20; i++) { const t = []; for (let j = 0; j < 1e4; j++) t.push([j]); }
      junk = null;
      const before = process.memoryUsage().heapUsed;
      const ran = collectStartupGarbage();
      console.log(JSON.stringify({ ran, freedMiB: (before - process.memoryUsage().heapUsed) / 1048576, gcGlobal: typeof globalThis.gc }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim()) as { ran: boolean; freedMiB: number; gcGlobal: string };
    expect(out.ran).toBe(true);
    expect(out.freedMiB).toBeGreaterThan(4);
    expect(out.gcGlobal).toBe('undefined');
  });
});
