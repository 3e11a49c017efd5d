// Network-namespace test topology: a "pod" namespace with the sidecar installed exactly as the
// injected pod runs it (sidewall init, then sidewall proxy as uid 1337), and a "peer" namespace
// joined to it by a veth pair. "App containers" are processes of other uids in the pod namespace.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

/** The package root, whether this runs from test/harness (vitest) or dist/test/harness (demo, bench). */
export const REPO = ((): string => {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json')) || existsSync(join(dir, 'tsconfig.build.json')) === false) dir = dirname(dir);
  return dir;
})();
export const CLI = join(REPO, 'bin', 'sidewall.js');
export const TOOLS = join(REPO, 'test', 'harness', 'tools');
/** The node binary running us: processes started under other uids must be able to run it too. */
export const NODE = process.execPath;
export const PROXY_UID = 1337;
export const APP_UID = 1000;
/**
 * A uid standing for traffic the sidecar never sees: the benchmarks' direct path and baselines
 * (HAProxy, a plain relay) and test hops that are not under test. The pod's rules exempt only the
 * proxy's marked sockets, so Topology.exemptDirectUid() adds a nat exemption for this uid (tests
 * and benchmarks only; a real pod has none).
 */
export const DIRECT_UID = 1338;

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], input?: string): ExecResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 120_000, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export function asUser(uid: number | undefined, cmd: string, args: string[]): [string, string[]] {
  if (uid === undefined || uid === 0) return [cmd, args];
  // The sidecar holds CAP_NET_ADMIN in the pod's network namespace (as the injected container
  // does): it marks its sockets with SO_MARK, the identity the pod's iptables rules trust, and the
  // non-TCP guard binds its NFQUEUE with it.
  const caps = uid === PROXY_UID ? ['--inh-caps', '+net_admin', '--ambient-caps', '+net_admin'] : [];
  return ['setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...caps, cmd, ...args]];
}

export interface TopologyOptions {
  /** Short unique name: namespaces are `sw<name>-pod` / `sw<name>-peer`. */
  name: string;
  /** Third octet of 10.77.X.0/24 and the IPv6 fd77:X::/64; unique per concurrently running suite. */
  subnet: number;
}

export class Topology {
  readonly podNs: string;
  readonly peerNs: string;
  readonly podIp: string;
  readonly peerIp: string;
  readonly podIp6: string;
  readonly peerIp6: string;
  readonly dir: string;
  private readonly children = new Set<ChildProcess>();
  private readonly cleanups: Array<() => void> = [];
  private readonly peerDev: string;
  private readonly podDev: string;

  constructor(readonly options: TopologyOptions) {
    this.podNs = `sw${options.name}-pod`;
    this.peerNs = `sw${options.name}-peer`;
    this.podIp = `10.77.${options.subnet}.1`;
    this.peerIp = `10.77.${options.subnet}.2`;
    this.podIp6 = `fd77:${options.subnet}::1`;
    this.peerIp6 = `fd77:${options.subnet}::2`;
    this.podDev = `swv${options.name}p`.slice(0, 15);
    this.peerDev = `swv${options.name}q`.slice(0, 15);
    this.dir = mkdtempSync(join(tmpdir(), `sidewall-${options.name}-`));
    spawnSync('chmod', ['755', this.dir]);
  }

  /** Creates both namespaces and the veth pair (removing leftovers of an earlier run first). */
  create(): void {
    this.destroyNamespaces();
    const vp = this.podDev;
    const vq = this.peerDev;
    must('ip', ['netns', 'add', this.podNs]);
    must('ip', ['netns', 'add', this.peerNs]);
    must('ip', ['link', 'add', vp, 'type', 'veth', 'peer', 'name', vq]);
    must('ip', ['link', 'set', vp, 'netns', this.podNs]);
    must('ip', ['link', 'set', vq, 'netns', this.peerNs]);
    for (const [ns, dev, ip, ip6] of [
      [this.podNs, vp, this.podIp, this.podIp6],
      [this.peerNs, vq, this.peerIp, this.peerIp6],
    ] as const) {
      must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
      must('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', dev, 'nodad']);
      must('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
  }

  /**
   * Makes `ip` the pod's resolver: `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over
   * /etc/resolv.conf for everything started in the namespace (the sidecar's DNS proxy included).
   * Removed by destroy().
   */
  setPodResolver(ip: string): void {
    mkdirSync(this.resolverDir, { recursive: true });
    writeFileSync(join(this.resolverDir, 'resolv.conf'), `nameserver ${ip}\n`);
  }

  private get resolverDir(): string {
    return `/etc/netns/${this.podNs}`;
  }

  /**
   * Starts tools/l7-servers.mjs in the peer namespace (HTTP/1 :80, h2c :8080, gRPC :50051, TLS
   * :443 with a fresh self-signed certificate, DNS :53) and waits until it listens. `onSeen` gets
   * each request the servers saw ("seen <proto> <what>"), to prove what reached them.
   */
  async startL7Servers(onSeen?: (line: string) => void): Promise<ChildProcess> {
    const cert = join(this.dir, 'l7-cert.pem');
    const key = join(this.dir, 'l7-key.pem');
    must('ip', ['netns', 'exec', this.peerNs, 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=allowed.example.com', '-keyout', key, '-out', cert]);
    const servers = this.start(this.peerNs, NODE, [join(TOOLS, 'l7-servers.mjs'), '0.0.0.0', cert, key]);
    // Whole lines: a chunk may end mid-line.
    if (onSeen !== undefined && servers.stdout) {
      createInterface({ input: servers.stdout }).on('line', (line) => {
        if (line.startsWith('seen ')) onSeen(line);
      });
    }
    await waitForLine(servers, (l) => l === 'listening', 15_000, 'l7 servers');
    return servers;
  }

  /** Gives the peer one more address on the shared subnet (e.g. to stand for an excluded CIDR). */
  addPeerAddress(ip: string): void {
    must('ip', ['-n', this.peerNs, 'addr', 'add', ip.includes(':') ? `${ip}/64` : `${ip}/24`, 'dev', this.peerDev, ...(ip.includes(':') ? ['nodad'] : [])]);
  }

  /** Runs a command to completion inside a namespace (as root, or as `uid`). */
  exec(ns: string, cmd: string, args: string[], options: { uid?: number; input?: string } = {}): ExecResult {
    const [c, a] = asUser(options.uid, cmd, args);
    return sh('ip', ['netns', 'exec', ns, c, ...a], options.input);
  }

  /** Same as exec, but without blocking the event loop (needed while our own servers run). */
  execAsync(ns: string, cmd: string, args: string[], options: { uid?: number } = {}): Promise<ExecResult> {
    const [c, a] = asUser(options.uid, cmd, args);
    const child = spawn('ip', ['netns', 'exec', ns, c, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolveExec) => child.on('close', (status) => resolveExec({ status, stdout, stderr })));
  }

  /**
   * Starts a long-running process in a namespace; killed by destroy(). `cgroup`: a cgroup folder
   * the process is put in before it starts (its pid written to cgroup.procs, then exec), so it
   * sees that cgroup's limits from its first instruction on.
   */
  start(ns: string, cmd: string, args: string[], options: { uid?: number; env?: NodeJS.ProcessEnv; cgroup?: string } = {}): ChildProcess {
    const [c, a] = asUser(options.uid, cmd, args);
    const command = ['ip', 'netns', 'exec', ns, c, ...a];
    // `ip netns exec` mounts a fresh /sys, without the cgroup filesystems: they are mounted again
    // (in its private mount namespace) so the process sees its memory cgroup as in a container.
    const withCgroupfs = ['ip', 'netns', 'exec', ns, 'sh', '-c', 'mount -t tmpfs cgroup-root /sys/fs/cgroup && mkdir -p /sys/fs/cgroup/memory && mount -t cgroup -o memory memory /sys/fs/cgroup/memory && exec "$@"', 'sh', c, ...a];
    const [exe, argv] = options.cgroup === undefined ? ['ip', command.slice(1)] : ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', options.cgroup, ...withCgroupfs]];
    const child = spawn(exe as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** Starts a test peer (tools/peer.mjs) and waits until it listens; in the peer namespace as root (low ports). */
  async peer(ns: string, mode: string, host: string, ports: number[] | number, uid = ns === this.peerNs ? 0 : APP_UID): Promise<ChildProcess> {
    const child = this.start(ns, NODE, [join(TOOLS, 'peer.mjs'), mode, host, Array.isArray(ports) ? ports.join(',') : String(ports)], { uid });
    await waitForLine(child, (line) => line === 'listening', 10_000, 'peer');
    return child;
  }

  /** Runs tools/client.mjs in a namespace as an app uid. */
  client(ns: string, args: string[], uid = APP_UID): Promise<ExecResult> {
    return this.execAsync(ns, NODE, [join(TOOLS, 'client.mjs'), ...args], { uid });
  }

  /** Resolves once every one of `ports` has a TCP listener in namespace `ns` (a daemon just started is ready). */
  async listening(ns: string, ports: number[], timeoutMs = 10_000): Promise<void> {
    const out = () => this.exec(ns, 'ss', ['-ltn']).stdout;
    await until(() => {
      const text = out();
      return ports.every((p) => text.includes(`:${p} `));
    }, `ports ${ports.join(',')} listening in ${ns}: ${out()}`, timeoutMs);
  }

  writeFile(name: string, content: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, content, { mode: 0o644 });
    return path;
  }

  /** Lets DIRECT_UID's traffic leave the pod unredirected (after `sidewall init`; both families). */
  exemptDirectUid(): void {
    for (const tool of ['iptables', 'ip6tables']) must('ip', ['netns', 'exec', this.podNs, tool, '-t', 'nat', '-I', 'OUTPUT', '1', '-m', 'owner', '--uid-owner', String(DIRECT_UID), '-j', 'RETURN']);
  }

  iptablesSave(ns: string, family: 4 | 6 = 4): string {
    const out = this.exec(ns, family === 4 ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat']).stdout;
    return out
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'))
      .join('\n');
  }

  /** Runs `fn` in destroy(), before the namespaces go (e.g. removing the sidecar's container). */
  onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  private destroyNamespaces(): void {
    for (const ns of [this.podNs, this.peerNs]) sh('ip', ['netns', 'del', ns]);
  }

  async destroy(): Promise<void> {
    for (const fn of this.cleanups.splice(0)) fn();
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    // Processes started with `ip netns exec` keep the namespace busy until they are gone.
    await new Promise((r) => setTimeout(r, 100));
    for (const ns of [this.podNs, this.peerNs]) sh('ip', ['netns', 'pids', ns]).stdout.split('\n').filter(Boolean).forEach((pid) => sh('kill', ['-9', pid]));
    this.destroyNamespaces();
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.resolverDir, { recursive: true, force: true });
  }
}

/**
 * Polls `check` until it holds (for events that show only in another process's state or output):
 * 20 ms apart, failing with `what` after `timeoutMs`.
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolveLine, reject) => {
    if (!child.stdout) return reject(new Error(`${what}: no stdout`));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${what}: timed out after ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    rl.on('line', (line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolveLine(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what}: exited (${code}) before it was ready; stderr: ${stderr}`));
    });
  });
}
