// The injected sidewall-proxy holds CAP_NET_ADMIN as uid 1337 through the launcher the injector
// puts in front of `sidewall` (README "Security", "The proxy's capability"). Proved against this
// kernel: a runc-like launch (test/harness/runtime-launch.c) of the injected command, with the
// launcher built as the image builds it (a copy of setpriv with cap_net_admin=p), and node in
// place of `sidewall`, reporting its own capability sets from /proc/self/status.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultInjectorSettings, injectedContainers, mutatePod, type Pod } from '../../injector/index.js';
import { PROXY_CAPS_LAUNCHER } from '../../injector/settings.js';
import { replicaSetPod } from './fixtures.js';

const CAP_NET_ADMIN = 1n << 12n;
const REPORT = "const s = require('fs').readFileSync('/proc/self/status', 'utf8'); const cap = (k) => BigInt('0x' + s.match(new RegExp('^' + k + ':\\\\s*([0-9a-f]+)', 'm'))[1]); console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), eff: String(cap('CapEff')), prm: String(cap('CapPrm')), amb: String(cap('CapAmb')) }))";
const root = process.getuid?.() === 0;
let dir = '';
let launch = '';
let launcher = '';

interface Caps { uid: number; gid: number; eff: bigint; prm: bigint; amb: bigint }

function run(mode: 'keep' | 'clear', command: string[]): { status: number | null; caps?: Caps; stderr: string } {
  const result = spawnSync(launch, [mode, ...command], { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) return { status: result.status, stderr: result.stderr };
  const parsed = JSON.parse(result.stdout.trim()) as Record<string, string | number>;
  return { status: 0, stderr: result.stderr, caps: { uid: Number(parsed.uid), gid: Number(parsed.gid), eff: BigInt(parsed.eff!), prm: BigInt(parsed.prm!), amb: BigInt(parsed.amb!) } };
}

/** The injected proxy command, with the launcher at its test path and node in place of `sidewall`. */
function injectedCommand(): string[] {
  const proxy = injectedContainers(mutatePod(replicaSetPod() as Pod, defaultInjectorSettings()))!.proxy;
  const command = proxy.command!;
  expect(command[0]).toBe(PROXY_CAPS_LAUNCHER);
  expect(command.at(-1)).toBe('sidewall');
  return [launcher, ...command.slice(1, -1), process.execPath, '-e', REPORT];
}

describe.skipIf(!root)("sidewall-proxy's CAP_NET_ADMIN as uid 1337 (needs root, g++ and setcap)", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sidewall-caps-'));
    chmodSync(dir, 0o755);
    launch = join(dir, 'runtime-launch');
    execFileSync('g++', ['-x', 'c', '-O', '-o', launch, join(import.meta.dirname, '../harness/runtime-launch.c')]);
    launcher = join(dir, 'sidewall-caps');
    copyFileSync('/usr/bin/setpriv', launcher);
    chmodSync(launcher, 0o755);
    execFileSync('setcap', ['cap_net_admin=p', launcher]);
  });
  afterAll(() => { if (dir !== '') rmSync(dir, { recursive: true, force: true }); });

  it('without the launcher, a non-root container that adds NET_ADMIN has no capability at all (why it exists)', () => {
    const { caps } = run('keep', [process.execPath, '-e', REPORT]);
    expect(caps).toMatchObject({ uid: 1337, gid: 1337, eff: 0n, prm: 0n, amb: 0n });
  });

  it('through the injected launcher, the proxy process holds NET_ADMIN and nothing else, under no_new_privs', () => {
    const { caps, stderr } = run('keep', injectedCommand());
    expect(stderr).toBe('');
    expect(caps).toEqual({ uid: 1337, gid: 1337, eff: CAP_NET_ADMIN, prm: CAP_NET_ADMIN, amb: CAP_NET_ADMIN });
  });

  it('where the runtime clears the permitted set of non-root processes, the launcher stops with a reason: the proxy never starts (fail closed)', () => {
    const { status, stderr } = run('clear', injectedCommand());
    expect(status).not.toBe(0);
    expect(stderr).toMatch(/apply capabilities: Operation not permitted/);
  });
});
