// The proxy's default young-generation cap (src/cli/young-generation.ts): the flag it sets must
// still hold the semi-spaces at their initial size on this Node (a V8 upgrade that stops reading
// the growth factor at run time would otherwise quietly give back ≈ 25 MiB of idle RSS).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hasYoungGenerationFlag } from '../../../src/cli/young-generation.js';

const MODULE = fileURLToPath(new URL('../../../dist/src/cli/young-generation.js', import.meta.url));

/** new_space's size in MiB after allocating ≈ 300 MiB of short-lived objects with some survivors. */
function youngGenerationMiB(cap: boolean): number {
  const script = `
    const v8 = await import('node:v8');
    if (${cap}) (await import(${JSON.stringify(MODULE)})).capYoungGeneration([], undefined);
    const keep = [];
    for (let i = 0; i < 3e6; i++) { const o = { a: i, b: [i] }; if (i % 5 === 0) keep.push(o); if (keep.length > 50000) keep.length = 0; }
    console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  expect(r.stderr).toBe('');
  return Number(r.stdout.trim());
}

describe('young generation cap', () => {
  it('keeps the semi-spaces at their initial size under allocation (and they grow without it)', () => {
    expect(youngGenerationMiB(true)).toBeLessThanOrEqual(2);
    expect(youngGenerationMiB(false)).toBeGreaterThan(4);
  });

  it("leaves an operator's own semi-space flags alone", () => {
    expect(hasYoungGenerationFlag([], '--max-semi-space-size=4')).toBe(true);
    expect(hasYoungGenerationFlag(['--max_semi_space_size=8'], undefined)).toBe(true);
    expect(hasYoungGenerationFlag([], ' --max-old-space-size=192  --semi-space-growth-factor=2')).toBe(true);
    expect(hasYoungGenerationFlag([], '--max-old-space-size=192')).toBe(false);
    expect(hasYoungGenerationFlag(['--cpu-prof'], undefined)).toBe(false);
  });
});
