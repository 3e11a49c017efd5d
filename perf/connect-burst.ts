// Connect-burst latency and idle-sweep cost (issue 15): the relay (ProxyServer, real ConnectionGate
// with an allow-all policy, so every connection gets its L7 filter and detection) in a network
// namespace, iptables REDIRECT to its listener and SO_MARK on its dials, as in a pod. With N idle
// proxied keep-alive connections already open, a client (another process) opens a burst of new
// connections at once, each sending one HTTP/1.1 request and timing the response from an HTTP
// server (another process); one more connection starts amid the burst.
// The proxy times its accept handler (original destination, admission, dial), its idle sweep over
// all connections, and its event-loop delay while idle.
// Run as root after `npm run build`: node dist/perf/connect-burst.js [--idle 0,2000,5000,9000] [--burst 1000]
// (`node --cpu-prof --cpu-prof-dir DIR dist/perf/connect-burst.js ...` profiles the proxy's process too.)
// (20,000 descriptors allow ~9,900 proxied connections: each holds two in the proxy.)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { ConnectionGate } from '../src/enforcement/gate.js';
import { WorkloadDirectory } from '../src/identity/workload-directory.js';
import { ProxiedConnection } from '../src/net/connection.js';
import { ProxyServer } from '../src/net/proxy-server.js';
import { compilePolicy } from '../src/policy/index.js';

/** The namespace (machine-wide names: perf's topology name is pq). */
const NS = 'swpq-burst';
const MARK = 0x539;
const PROXY_PORT = 19101;
const ECHO_PORT = 9999;
const script = process.argv[1] as string;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? NaN;
};
const ms = (x: number): string => x.toFixed(1);

/** The upstream: an HTTP/1.1 server (its own process), so detection decides on the first read as it does for real clients. */
function echo(): void {
  const server = createHttpServer({ keepAliveTimeout: 3_600_000 }, (_req, res) => res.end('ok\n'));
  server.listen({ port: ECHO_PORT, host: '127.0.0.1', backlog: 8192 }, () => process.stdout.write('listening\n'));
}

const REQUEST = Buffer.from('GET /burst HTTP/1.1\r\nHost: echo\r\n\r\n');

/** The client (its own process): commands on stdin, one JSON answer per line. */
function client(): void {
  const idle: Socket[] = [];
  /** One connection through the proxy: connect, one request, its response; resolves with the milliseconds. */
  const once = (keep: boolean): Promise<number> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const s = connect({ port: ECHO_PORT, host: '127.0.0.1', noDelay: true });
      s.on('connect', () => s.write(REQUEST));
      s.once('data', () => {
        resolve(performance.now() - t0);
        if (keep) idle.push(s);
        else s.destroy();
      });
      s.on('error', () => resolve(Number.NaN));
    });
  createInterface({ input: process.stdin }).on('line', async (line) => {
    const [cmd, nText] = line.split(' ');
    const n = Number(nText);
    if (cmd === 'idle') {
      // In batches: the point is to have them open, not to measure their opening.
      for (let i = 0; i < n; i += 500) await Promise.all(Array.from({ length: Math.min(500, n - i) }, () => once(true)));
      process.stdout.write(`${JSON.stringify({ idle: idle.length })}\n`);
    } else if (cmd === 'burst') {
      const burst = Array.from({ length: n }, () => once(false));
      // One more, started just after the burst's connects were issued.
      const amid = await new Promise<number>((resolve) => setImmediate(() => void once(false).then(resolve)));
      const times = await Promise.all(burst);
      const failed = times.filter((t) => Number.isNaN(t)).length;
      const ok = times.filter((t) => !Number.isNaN(t));
      process.stdout.write(`${JSON.stringify({ p50: pct(ok, 50), p90: pct(ok, 90), p99: pct(ok, 99), max: pct(ok, 100), amid, failed })}\n`);
    } else if (cmd === 'close') {
      for (const s of idle.splice(0)) s.destroy();
      process.stdout.write(`${JSON.stringify({ idle: 0 })}\n`);
    }
  });
  process.stdout.write('ready\n');
}

function ask(child: ChildProcess, line: string): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (answer) => {
      rl.close();
      resolve(JSON.parse(answer) as Record<string, number>);
    });
    child.stdin!.write(`${line}\n`);
  });
}

function waitLine(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      if (l === text) {
        rl.close();
        resolve();
      }
    });
  });
}

async function inside(): Promise<void> {
  const compiled = compilePolicy({ clusterRules: [], workloadRules: [{ id: 'all', action: 'allow' }], defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in compiled)) throw new Error(JSON.stringify(compiled.issues));
  const policy = compiled.policy;
  const gate = new ConnectionGate(() => policy, new WorkloadDirectory(), {}, null, () => 'off');
  const proxy = new ProxyServer(
    {
      outboundPort: PROXY_PORT, inboundPort: PROXY_PORT + 1, dnsPort: PROXY_PORT + 2, connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, detectTimeoutMs: 1000,
      maxConnections: 20_000, ipv6: false, socketMark: MARK, heldBytesPerConnection: 256 * 1024, heldBytesTotal: 64 * 1024 * 1024, writeQueueTotal: 64 * 1024 * 1024,
      headTimeoutMs: 10_000, minHeadBytesPerSecond: 100, pressureBytes: null,
    },
    { onClose: () => {} },
    gate,
  );
  // Time the accept handler and the idle sweep (private methods, wrapped on this instance).
  const internals = proxy as unknown as Record<string, (...args: unknown[]) => unknown>;
  let acceptMs = 0;
  let accepts = 0;
  const accept = internals.accept!.bind(proxy);
  internals.accept = (...args: unknown[]) => {
    const t = performance.now();
    accept(...args);
    acceptMs += performance.now() - t;
    ++accepts;
  };
  let admitMs = 0;
  const admit = gate.admit.bind(gate);
  gate.admit = (...args: Parameters<typeof gate.admit>) => {
    const t = performance.now();
    const a = admit(...args);
    admitMs += performance.now() - t;
    return a;
  };
  let startMs = 0;
  const start = ProxiedConnection.prototype.start;
  ProxiedConnection.prototype.start = function (this: ProxiedConnection, ...args: Parameters<ProxiedConnection['start']>) {
    const t = performance.now();
    start.apply(this, args);
    startMs += performance.now() - t;
  };
  const sweeps: number[] = [];
  const sweep = internals.sweepIdle!.bind(proxy);
  internals.sweepIdle = () => {
    const t = performance.now();
    sweep();
    sweeps.push(performance.now() - t);
  };
  await proxy.listen();
  const echoProc = spawn(process.execPath, [script, 'echo'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitLine(echoProc, 'listening');
  const clientProc = spawn(process.execPath, [script, 'client'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await waitLine(clientProc, 'ready');
  const idleLevels = arg('idle', '0,2000,5000,9000').split(',').map(Number);
  const burst = Number(arg('burst', '1000'));
  const rows: string[] = [];
  let open = 0;
  for (const level of idleLevels) {
    if (level > open) {
      await ask(clientProc, `idle ${level - open}`);
      open = level;
    }
    // Settle, then the idle-time figures: sweep cost and event-loop delay over 3 s (3 sweeps).
    await new Promise((r) => setTimeout(r, 1500));
    sweeps.length = 0;
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    await new Promise((r) => setTimeout(r, 3200));
    delay.disable();
    const sweepMs = sweeps.length > 0 ? Math.max(...sweeps) : Number.NaN;
    acceptMs = 0;
    accepts = 0;
    admitMs = 0;
    startMs = 0;
    const r = await ask(clientProc, `burst ${burst}`);
    rows.push(`| ${level} | ${burst - (r.failed ?? 0)}/${burst} | ${ms(r.p50!)} / ${ms(r.p90!)} / ${ms(r.p99!)} / ${ms(r.max!)} | ${ms(r.amid!)} | ${((acceptMs * 1000) / Math.max(1, accepts)).toFixed(0)} µs (admission ${((admitMs * 1000) / Math.max(1, accepts)).toFixed(0)}, dial ${((startMs * 1000) / Math.max(1, accepts)).toFixed(0)}) | ${sweepMs.toFixed(2)} ms | ${ms(delay.percentile(99) / 1e6)} / ${ms(delay.max / 1e6)} ms |`);
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  console.log(`connect burst of ${burst} (each: connect, GET, its response) with N idle proxied connections open; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('| idle N | burst ok | burst latency p50 / p90 / p99 / max (ms) | one started amid it (ms) | accept handler per connection (of it: admission, dial) | idle sweep (max of 3) | event-loop delay idle p99 / max |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of rows) console.log(row);
  clientProc.kill();
  echoProc.kill();
  process.exit(0);
}

function outside(): void {
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'add', NS]);
  try {
    spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    // The pod's rule in small: connections to the echo port go to the proxy, except the proxy's own dials (marked).
    const ipt = spawnSync('ip', ['netns', 'exec', NS, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', String(ECHO_PORT), '-m', 'mark', '!', '--mark', String(MARK), '-j', 'REDIRECT', '--to-ports', String(PROXY_PORT)], { encoding: 'utf8' });
    if (ipt.status !== 0) throw new Error(`iptables: ${ipt.stderr}`);
    spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=10000 65000', 'net.core.somaxconn=8192']);
    // Node flags go to the proxy's process too (e.g. --cpu-prof --cpu-prof-dir DIR: its profile).
    const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, ...process.execArgv, script, 'inside', ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', NS]);
  }
}

const role = process.argv[2];
if (role === 'echo') echo();
else if (role === 'client') client();
else if (role === 'inside') void inside();
else outside();
