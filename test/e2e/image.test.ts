// The OCI image `npm run image` builds (localhost/sidewall:<version>), run by a real OCI runtime
// (podman with runc) the way a pod runs it: `--version` as any user with nothing granted, and
// sidewall-init and sidewall-proxy with the command, user, read-only root filesystem,
// capabilities and mounts of the webhook's own patch (mutatePod), so a patch the image cannot
// run under fails here. The kernel's view (iptables-save in the pod's namespace, /proc status of
// the proxy) is the proof, not the container's exit code alone.
//
// Needs root, podman and the image. When the image is not there the suite is skipped and says
// why; CI (.ci/run) builds the image first and sets SIDEWALL_IMAGE_TESTS=required, so there a
// missing image fails instead of skipping.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Container, Pod } from '../../injector/kube-types.js';
import { mutatePod } from '../../injector/mutate.js';
import { defaultInjectorSettings } from '../../injector/settings.js';
import { replicaSetPod } from '../injector/fixtures.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const IMAGE = `localhost/sidewall:${pkg.version}`;
const REQUIRED = process.env.SIDEWALL_IMAGE_TESTS === 'required';
// Flags this machine's podman needs (runc: crun is not installed; the ulimits: podman's
// defaults exceed this container's hard limits).
const PODMAN_RUN = ['run', '--rm', '--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  if (spawnSync('podman', ['--version']).status !== 0) return 'podman is not installed (scripts/install-debian-deps.sh image)';
  if (spawnSync('podman', ['image', 'exists', IMAGE]).status !== 0) return `${IMAGE} is not in the podman store (build it: npm run image)`;
  return null;
}
const reason = unavailable();
if (reason !== null && !REQUIRED) process.stderr.write(`test/e2e/image.test.ts: SKIPPED, ${reason}\n`);

/** The webhook's patch for an ordinary pod: its sidewall-init and sidewall-proxy containers. */
function injectedContainers(): { init: Container; proxy: Container } {
  const { patch } = mutatePod(replicaSetPod() as Pod, defaultInjectorSettings());
  const containers = patch.flatMap((op) => {
    if (op.op !== 'add' || !op.path.startsWith('/spec/initContainers')) return [];
    return (Array.isArray(op.value) ? op.value : [op.value]) as Container[];
  });
  const find = (name: string): Container => {
    const container = containers.find((c) => c.name === name);
    if (container === undefined) throw new Error(`the patch has no ${name}`);
    return container;
  };
  return { init: find('sidewall-init'), proxy: find('sidewall-proxy') };
}

/** podman flags for a container's securityContext, as a kubelet with runc would apply it. */
function securityFlags(container: Container): string[] {
  const sc = container.securityContext;
  if (sc === undefined) throw new Error(`${container.name} has no securityContext`);
  const flags = ['--user', `${sc.runAsUser ?? 0}:${sc.runAsGroup ?? 0}`];
  if (sc.readOnlyRootFilesystem === true) flags.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) flags.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) flags.push('--cap-add', cap);
  expect(sc.privileged ?? false).toBe(false);
  return flags;
}

/** The container's command and args as podman --entrypoint (JSON) and arguments. */
function commandFlags(container: Container): { entrypoint: string[]; args: string[] } {
  return { entrypoint: ['--entrypoint', JSON.stringify(container.command ?? [])], args: container.args ?? [] };
}

function podman(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('podman', args, { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.skipIf(reason !== null && !REQUIRED)(`the image ${IMAGE} under podman (runc)`, () => {
  it('is there (CI builds it with npm run image before the tests)', () => {
    expect(reason).toBeNull();
  });

  it('--version as uid 1337 with a read-only root and no capabilities prints the version and the image it installs', () => {
    const result = podman([...PODMAN_RUN, '--network', 'none', '--read-only', '--user', '1337:1337', '--cap-drop', 'ALL', IMAGE, '--version']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe(`sidewall ${pkg.version}`);
    expect(lines[1]).toBe(`image ${IMAGE}`);
    const [major, minor] = /^node v(\d+)\.(\d+)\./.exec(lines[2] ?? '')!.slice(1).map(Number) as [number, number];
    expect(major > 20 || (major === 20 && minor >= 19), lines[2]).toBe(true);
  });

  it("carries the proxy's launcher with cap_net_admin permitted only, and no compiler, npm or tests", () => {
    const mount = execFileSync('podman', ['image', 'mount', IMAGE], { encoding: 'utf8' }).trim();
    try {
      expect(execFileSync('getcap', [join(mount, 'usr/local/bin/sidewall-caps')], { encoding: 'utf8' })).toContain('cap_net_admin=p');
      for (const absent of ['usr/bin/gcc', 'usr/bin/g++', 'usr/bin/make', 'usr/local/bin/npm', 'usr/bin/npm', 'opt/sidewall/test', 'opt/sidewall/dist/test', 'opt/sidewall/node_modules/typescript', 'opt/sidewall/node_modules/vitest', 'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease']) {
        expect(spawnSync('test', ['-e', join(mount, absent)]).status, `${absent} is in the image`).not.toBe(0);
      }
    } finally {
      execFileSync('podman', ['image', 'unmount', IMAGE]);
    }
  });

  it("sidewall-init --dry-run from the image prints the webhook's redirection", () => {
    const { init } = injectedContainers();
    const { entrypoint, args } = commandFlags(init);
    const result = podman([...PODMAN_RUN, '--network', 'none', ...securityFlags(init), ...entrypoint, IMAGE, ...args, '--dry-run']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('*nat');
    expect(result.stdout).toContain('--uid-owner 1337 -j RETURN');
    expect(result.stdout).toContain('REDIRECT --to-ports 15001');
    expect(result.stdout).toContain('REDIRECT --to-ports 15006');
  });

  describe("in a pod's network namespace", () => {
    const ns = 'im-image';
    let dir = '';
    beforeAll(() => {
      spawnSync('ip', ['netns', 'del', ns]);
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      dir = mkdtempSync(join(tmpdir(), 'sidewall-image-'));
    });
    afterAll(() => {
      spawnSync('ip', ['netns', 'del', ns]);
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it("sidewall-init with the patch's securityContext (root, NET_ADMIN and NET_RAW only) writes the rules the kernel then holds", () => {
      const { init } = injectedContainers();
      const { entrypoint, args } = commandFlags(init);
      const result = podman([...PODMAN_RUN, '--network', `ns:/run/netns/${ns}`, ...securityFlags(init), ...entrypoint, IMAGE, ...args]);
      expect(result.status, result.stderr).toBe(0);
      // What the kernel holds in that namespace, read with the host's tools (either back end).
      const saved = ['iptables-nft-save', 'iptables-legacy-save']
        .map((tool) => spawnSync('ip', ['netns', 'exec', ns, tool, '-t', 'nat'], { encoding: 'utf8' }).stdout ?? '')
        .join('\n');
      expect(saved).toMatch(/-A SIDEWALL_OUTPUT .*--uid-owner 1337 -j RETURN/);
      expect(saved).toMatch(/-A OUTPUT -p tcp -j SIDEWALL_OUTPUT/);
      expect(saved).toContain('--to-ports 15001');
    });

    it("sidewall-proxy with the patch's command, user, read-only root, capabilities and mounts becomes ready and holds NET_ADMIN", async () => {
      const { proxy } = injectedContainers();
      const { entrypoint, args } = commandFlags(proxy);
      // The patch's volumes: the config ConfigMap, cluster rules, the downward API folder, /tmp.
      const mounts: string[] = [];
      for (const mount of proxy.volumeMounts ?? []) {
        if (mount.mountPath === '/tmp') {
          mounts.push('--tmpfs', '/tmp:rw,size=16m');
          continue;
        }
        const host = join(dir, mount.name);
        mkdirSync(host, { recursive: true });
        mounts.push('--volume', `${host}:${mount.mountPath}${mount.readOnly === true ? ':ro' : ''}`);
      }
      const configMount = (proxy.volumeMounts ?? []).find((m) => m.mountPath === '/etc/sidewall/config');
      expect(configMount).toBeDefined();
      writeFileSync(join(dir, configMount!.name, 'config.yaml'), 'mode: monitor\n');
      const env = (proxy.env ?? []).filter((e) => e.value !== undefined).flatMap((e) => ['--env', `${e.name}=${e.value}`]);
      const name = `im-proxy-${process.pid}`;
      const child: ChildProcess = spawn('podman', [...PODMAN_RUN, '--name', name, '--network', `ns:/run/netns/${ns}`, ...securityFlags(proxy), ...mounts, ...env, '--env', 'POD_NAME=cart-0', '--env', 'POD_NAMESPACE=shop', ...entrypoint, IMAGE, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      const stderr: string[] = [];
      try {
        // The proxy's own log line on readiness (stderr, pino JSON) is the event to wait for.
        await new Promise<void>((resolve, reject) => {
          const lines = createInterface({ input: child.stderr! });
          lines.on('line', (line) => {
            stderr.push(line);
            if (line.includes('sidewall proxy ready')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`sidewall-proxy exited (${code}) before it was ready:\n${stderr.join('\n')}`)));
        });
        const ready = spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '5', 'http://127.0.0.1:15000/ready'], { encoding: 'utf8' });
        expect(ready.status, ready.stderr).toBe(0);
        expect(JSON.parse(ready.stdout)).toMatchObject({ ready: true });
        const pid = execFileSync('podman', ['inspect', '--format', '{{.State.Pid}}', name], { encoding: 'utf8' }).trim();
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        expect(status).toMatch(/^Uid:\s+1337\s+1337\s+1337\s+1337$/m);
        expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('node');
        const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]}`);
        expect(capEff, 'effective capabilities are exactly CAP_NET_ADMIN (12)').toBe(1n << 12n);
      } finally {
        const exited = new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
        spawnSync('podman', ['stop', '--time', '5', name]);
        await exited;
      }
    }, 60_000);
  });
});
