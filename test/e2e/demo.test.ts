// `npm run demo` (dist/demo/demo.js) leaves nothing behind on any way out: the time is up,
// Ctrl-C twice through `| tee` (the terminal signals the whole process group: tee dies at once, the
// demo then writes into a closed pipe and gets the second SIGINT mid-teardown), SIGTERM, and a
// reader that stops early (`| head`). After each: no demo namespace, resolver folder or container
// is left. `--json` prints only JSON lines on stdout. Runs whichever sidecar runtime the harness
// chose (the image in CI), so the container's removal is covered there.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { REPO } from '../harness/netns.js';

const DEMO = join(REPO, 'dist', 'demo', 'demo.js');
const NAMESPACES = ['swdemo-pod', 'swdemo-peer'];

/** The demo in a shell pipeline, as its own process group (a terminal's foreground job). */
function pipeline(command: string): { child: ChildProcess; lines: string[]; stderr: () => string; exited: Promise<number | null>; firstRow: Promise<void> } {
  const child = spawn('bash', ['-c', command], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEMO: DEMO } });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : 128))));
  const firstRow = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      // A flow record (JSON) or a table row: the sidecar is up and traffic flows.
      if (line.startsWith('{') || /\b(allowed|DENIED)\b/.test(line)) resolve();
    });
    void exited.then(() => reject(new Error(`the demo ended before its first flow:\n${stderr}`)));
  });
  return { child, lines, stderr: () => stderr, exited, firstRow };
}

function leftovers(): string[] {
  const found: string[] = [];
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const ns of NAMESPACES) {
    if (new RegExp(`^${ns}\\b`, 'm').test(netns)) found.push(`namespace ${ns}`);
    if (existsSync(`/etc/netns/${ns}`)) found.push(`/etc/netns/${ns}`);
  }
  const containers = spawnSync('podman', ['ps', '--all', '--format', '{{.Names}}'], { encoding: 'utf8' });
  for (const name of (containers.stdout ?? '').split('\n')) if (name.startsWith('swdemo-')) found.push(`container ${name}`);
  const pids = spawnSync('pgrep', ['-f', DEMO], { encoding: 'utf8' }).stdout.trim();
  if (pids !== '') found.push(`demo processes ${pids}`);
  return found;
}

describe('npm run demo', () => {
  it('-- --json: only JSON lines on stdout, and it ends by itself after --duration with nothing left', async () => {
    const demo = pipeline('exec node "$DEMO" --json --duration 6');
    await demo.firstRow;
    expect(await demo.exited).toBe(0);
    expect(demo.lines.length).toBeGreaterThan(3);
    for (const line of demo.lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(demo.stderr()).toContain('6 s are up');
    expect(leftovers()).toEqual([]);
  }, 90_000);

  it('Ctrl-C twice through `| tee`: the second one during the teardown does not cut it short', async () => {
    const demo = pipeline('node "$DEMO" --duration 0 | tee /dev/null');
    await demo.firstRow;
    process.kill(-demo.child.pid!, 'SIGINT');
    await new Promise((r) => setTimeout(r, 100));
    process.kill(-demo.child.pid!, 'SIGINT');
    await demo.exited;
    expect(demo.stderr()).toContain('still tearing down');
    expect(leftovers()).toEqual([]);
  }, 90_000);

  it('SIGTERM to the demo alone tears down', async () => {
    const demo = pipeline('exec node "$DEMO" --duration 0');
    await demo.firstRow;
    demo.child.kill('SIGTERM');
    expect(await demo.exited).toBe(0);
    expect(demo.stderr()).toContain('SIGTERM; tearing down');
    expect(leftovers()).toEqual([]);
  }, 90_000);

  it('a reader that goes away (`| head -n 3`, EPIPE) tears down', async () => {
    const demo = pipeline('node "$DEMO" --duration 0 | head -n 3');
    expect(await demo.exited).toBe(0);
    expect(demo.lines).toHaveLength(3);
    expect(demo.stderr()).toContain('stdout closed; tearing down');
    expect(leftovers()).toEqual([]);
  }, 90_000);
});
