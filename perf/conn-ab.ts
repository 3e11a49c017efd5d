// Per-connection A/B of two builds (issue 18 "per connection", issue 15's connect burst): the
// relay of each build (its own ProxyServer and ConnectionGate, allow-all policy, so each
// connection gets detection and the HTTP/1 filter; SO_MARK on its dials) runs in a process of its
// own in one network namespace, each behind an iptables REDIRECT of its own port. One client
// process sends bursts of new connections (connect, one HTTP/1.1 GET, its response, close) to
// the two proxies in turn, a burst at a time, and the CPU each proxy process spent on its burst
// is read from /proc (schedstat of all its threads, ns). Bursts of the two builds alternate
// about every second, so a machine whose load swings (other jobs) weighs on both alike — why
// this exists: ab-bench's rounds are minutes apart, and its CPU per request of one build moved
// by 2x from round to round at load 15.
//
//   node dist/perf/conn-ab.js --baseline DIR [--bursts 30] [--size 300]
// DIR: a built checkout (dist/src present). Root (namespace, iptables). Prints medians and
// quartiles of CPU per connection and of the burst's latency for both builds.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const NS = 'swpq-cab';
const MARK = 0x539;
/** What the client dials (redirected), and each build's listener. */
const PORTS = { before: { app: 9998, proxy: 19201 }, after: { app: 9999, proxy: 19211 } };
const script = process.argv[1] as string;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const quantile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
};

function lines(child: ChildProcess): AsyncIterableIterator<string> {
  return createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}

/** The upstream: an HTTP/1.1 server on both app ports (the proxies dial the original destination). */
function upstream(): void {
  let listening = 0;
  for (const port of [PORTS.before.app, PORTS.after.app]) {
    createHttpServer({ keepAliveTimeout: 60_000 }, (_req, res) => res.end('ok\n')).listen({ port, host: '127.0.0.1', backlog: 8192 }, () => {
      if (++listening === 2) process.stdout.write('listening\n');
    });
  }
}

const REQUEST = Buffer.from('GET /conn-ab HTTP/1.1\r\nHost: upstream\r\n\r\n');

/** The client: `burst PORT N` opens N connections at once, one GET each; answers {p50, max, failed}. */
function client(): void {
  const once = (port: number): Promise<number> =>
    new Promise((done) => {
      const t0 = performance.now();
      const s = connect({ port, host: '127.0.0.1', noDelay: true });
      s.on('connect', () => s.write(REQUEST));
      s.once('data', () => {
        done(performance.now() - t0);
        s.destroy();
      });
      s.on('error', () => done(Number.NaN));
    });
  createInterface({ input: process.stdin }).on('line', async (line) => {
    const [, portText, nText] = line.split(' ');
    const times = await Promise.all(Array.from({ length: Number(nText) }, () => once(Number(portText))));
    const ok = times.filter((t) => !Number.isNaN(t));
    process.stdout.write(`${JSON.stringify({ p50: quantile(ok, 0.5), max: quantile(ok, 1), failed: times.length - ok.length })}\n`);
  });
  process.stdout.write('ready\n');
}

/** One build's relay: its own modules, loaded from its checkout. */
async function proxy(dir: string, port: number): Promise<void> {
  const from = (path: string): string => pathToFileURL(join(dir, 'dist', path)).href;
  const { ConnectionGate } = (await import(from('src/enforcement/gate.js'))) as typeof import('../src/enforcement/gate.js');
  const { WorkloadDirectory } = (await import(from('src/identity/workload-directory.js'))) as typeof import('../src/identity/workload-directory.js');
  const { ProxyServer } = (await import(from('src/net/proxy-server.js'))) as typeof import('../src/net/proxy-server.js');
  const { compilePolicy } = (await import(from('src/policy/index.js'))) as typeof import('../src/policy/index.js');
  const compiled = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'all', action: 'allow' }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in compiled)) throw new Error(JSON.stringify(compiled.issues));
  const policy = compiled.policy;
  const gate = new ConnectionGate(() => policy, new WorkloadDirectory(), {}, null, () => 'off');
  const server = new ProxyServer(
    {
      outboundPort: port, inboundPort: port + 1, dnsPort: port + 2, connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, detectTimeoutMs: 1000,
      maxConnections: 20_000, ipv6: false, socketMark: MARK, heldBytesPerConnection: 256 * 1024, heldBytesTotal: 64 * 1024 * 1024, writeQueueTotal: 64 * 1024 * 1024,
      headTimeoutMs: 10_000, minHeadBytesPerSecond: 100, pressureBytes: null,
    },
    { onClose: () => {} },
    gate,
  );
  await server.listen();
  process.stdout.write('listening\n');
}

/** CPU time of a process in µs, all its threads: schedstat's run time (ns resolution; /proc/PID/stat counts 10 ms ticks). */
function cpuUs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between readdir and read
    }
  }
  return ns / 1000;
}

async function inside(): Promise<void> {
  const baseline = resolve(arg('baseline', ''));
  const bursts = Number(arg('bursts', '30'));
  const size = Number(arg('size', '300'));
  const repo = resolve(script, '..', '..', '..');
  const start = (role: string, ...args: string[]): ChildProcess => spawn(process.execPath, [script, role, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const up = start('upstream');
  const proxies = { before: start('proxy', baseline, String(PORTS.before.proxy)), after: start('proxy', repo, String(PORTS.after.proxy)) };
  const cl = start('client');
  const readers = new Map<ChildProcess, AsyncIterableIterator<string>>();
  const next = async (child: ChildProcess): Promise<string> => {
    let it = readers.get(child);
    if (it === undefined) readers.set(child, (it = lines(child)));
    const r = await it.next();
    if (r.done === true) throw new Error('a child process ended');
    return r.value;
  };
  await Promise.all([next(up), next(proxies.before), next(proxies.after), next(cl)]);
  const samples = { before: [] as number[], after: [] as number[] };
  const latency = { before: [] as number[], after: [] as number[] };
  const burst = async (which: 'before' | 'after'): Promise<void> => {
    const pid = proxies[which].pid as number;
    const t0 = cpuUs(pid);
    cl.stdin!.write(`burst ${PORTS[which].app} ${size}\n`);
    const r = JSON.parse(await next(cl)) as { p50: number; max: number; failed: number };
    // The last closes reach the proxy just after the client's last response.
    await new Promise((done) => setTimeout(done, 100));
    const us = cpuUs(pid) - t0;
    if (r.failed > 0) process.stderr.write(`${which}: ${r.failed} connections failed\n`);
    samples[which].push(us / (size - r.failed));
    latency[which].push(r.max);
  };
  // Warm-up (JIT) of both, not counted.
  for (let i = 0; i < 3; i++) for (const which of ['before', 'after'] as const) await burst(which);
  samples.before.length = samples.after.length = latency.before.length = latency.after.length = 0;
  for (let i = 0; i < bursts; i++) for (const which of i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const)) await burst(which);
  const f = (x: number): string => x.toFixed(0);
  const loads = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`conn-ab: ${bursts} bursts of ${size} new connections per build, alternating; baseline ${baseline}; load average ${loads}`);
  console.log('| build | proxy CPU µs per connection: p25 / median / p75 | burst: slowest connection ms, median |');
  console.log('| --- | ---: | ---: |');
  for (const which of ['before', 'after'] as const) {
    const s = samples[which];
    console.log(`| ${which} | ${f(quantile(s, 0.25))} / ${f(quantile(s, 0.5))} / ${f(quantile(s, 0.75))} | ${f(quantile(latency[which], 0.5))} |`);
  }
  // Paired: each burst of this build against the baseline's burst next to it.
  const ratios = samples.after.map((a, i) => a / (samples.before[i] as number));
  console.log(`\nafter/before CPU per connection, paired bursts: median ${quantile(ratios, 0.5).toFixed(3)}× (p25 ${quantile(ratios, 0.25).toFixed(3)}, p75 ${quantile(ratios, 0.75).toFixed(3)})`);
  for (const child of [up, proxies.before, proxies.after, cl]) child.kill();
  process.exit(0);
}

function outside(): void {
  if (arg('baseline', '') === '') {
    process.stderr.write('usage: node dist/perf/conn-ab.js --baseline DIR [--bursts 30] [--size 300]\n');
    process.exitCode = 2;
    return;
  }
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'add', NS]);
  try {
    spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    for (const which of ['before', 'after'] as const) {
      // The pod's rule in small: the app port goes to that build's proxy, except the proxies' own (marked) dials.
      const ipt = spawnSync('ip', ['netns', 'exec', NS, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', String(PORTS[which].app), '-m', 'mark', '!', '--mark', String(MARK), '-j', 'REDIRECT', '--to-ports', String(PORTS[which].proxy)], { encoding: 'utf8' });
      if (ipt.status !== 0) throw new Error(`iptables: ${ipt.stderr}`);
    }
    spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=10000 65000', 'net.core.somaxconn=8192', 'net.ipv4.tcp_tw_reuse=1']);
    const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, script, 'inside', ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', NS]);
  }
}

const role = process.argv[2];
if (role === 'upstream') upstream();
else if (role === 'client') client();
else if (role === 'proxy') void proxy(process.argv[3] as string, Number(process.argv[4]));
else if (role === 'inside') void inside();
else outside();
