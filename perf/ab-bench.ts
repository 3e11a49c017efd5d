// A/B comparison of two sidecar builds in the bench topology (issue 7: "each change goes in with
// its before/after numbers"). The baseline is another checkout of the repository, built (e.g.
// `git archive <commit> | tar -x -C /tmp/base`, node_modules linked, build/ copied, `npm run
// build`); the candidate is this checkout. Each round runs every workload through: the baseline
// sidecar, this sidecar, HAProxy (http and tcp mode) and the plain Node relay, in a rotating
// order, so the ratios that matter (after/before, against HAProxy and the relay) come from runs
// interleaved on the same noisy machine. Prints a Markdown table of medians; raw samples to /tmp.
//
//   node dist/perf/ab-bench.js --baseline DIR[,DIR...] [--rounds N] [--duration S] [--workloads keepalive,connclose,serial,mib,h2c,grpc,tls-mib,tls-keepalive,memory,upload,dlp-upload,capture,udp-flow] [--cpu-prof DIR] [--node-flags-after FLAGS] [--topo NAME:SUBNET]
//
// Several baselines (comma-separated) run in the same interleaved rounds: one run bisects a range
// of commits (each dir a built checkout of one commit; variants are named after the dirs). Each
// build's own `sidewall init` writes the pod's iptables before its sidecar starts (the identity
// those rules trust changed from uid to socket mark in b97872c: a sidecar older than that, under
// today's rules, has its own dials redirected back to itself). A build whose /ready does not
// answer (older admin access rules) counts as ready once it logged 'ready' and a request through
// it gets 200.
//
// tls-mib / tls-keepalive: HTTPS to nginx (1 MiB responses / 100-byte ones), allowed by a `protocol:
// tls` rule: opaque to the sidecar after the ClientHello (the kernel relay's case); compared with
// HAProxy tcp mode and the Node relay (HAProxy http mode does not relay TLS).
//
// --node-flags-after FLAGS gives this checkout's sidecar extra node flags (space-separated, e.g.
// "--max-semi-space-size=1"): with the baseline a copy of the same build, it measures a V8 setting.
//
// --cpu-prof DIR runs this checkout's sidecar under `node --cpu-prof` (the .cpuprofile appears in
// DIR when it stops; summarise with cpu-profile-summary.ts).
//
// memory (a workload): for each build, a fresh sidecar's VmRSS 1 s after it is ready (no warm-up),
// then after a keep-alive run (-c50) and 1 s idle, then with 1,000 open keep-alive connections
// (bench-tools hold, 1 s after the last answered), then 1,000 that each fetched 1 MiB (3 s at rest)
// — the figures of bench.ts's memory table, interleaved between builds so that a V8 setting or a
// lazy module is measured A/B.
//
// upload / dlp-upload: 1 MiB POSTs (wrk -c4 with a Lua script; nginx reads and drops each body),
// the builds' sidecars without DLP (upload) or with all six built-in sensors scanning request
// bodies, action block (dlp-upload: each build's sidecar restarted with that config, and shown to
// block a card number 200 bytes before the end of a 1 MiB body first); beside HAProxy and the relay.
//
// capture: keep-alive /small (-c50) with an on-demand capture of the peer's flows running (POST
// /captures?peer=… before the run, DELETE after: its packet count must cover the requests); builds
// only (compare with the keepalive workload in the same run).
//
// udp-flow: a new UDP flow per exchange (bench-tools udp-flows, 20 in flight: a fresh socket on the
// next source port, one datagram to a UDP echo in the peer on port 7000, the echo awaited): through
// each build's NFQUEUE guard (first packet decided by the rules, then conntrack) and 'direct' (uid
// 1338, exempted from the queue by a bench-only mangle rule). Each build must record every answered
// flow and drop a flow to port 7001, which no rule allows. Problems of these workloads' setup are
// printed as findings, not left as numbers.
//
// --gc-log FILE runs this checkout's sidecar with --trace-gc; its GC lines (prefixed with the
// bench's clock, s) are appended to FILE (what reaches the old generation, and how often).
//
// Root only (namespaces, iptables). The sidecar runs exactly as in `npm run bench` (10 rules,
// protect, stdout export on); its stdout is counted in lines (records), not parsed.
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { basename, join } from 'node:path';
import { APP_UID, CLI, DIRECT_UID, NODE, PROXY_UID, REPO, Topology, waitForLine } from '../test/harness/netns.js';
import { exemptDirectUidNonTcp, HAPROXY_PORTS, haproxyConfig, nginxConfig, PEER_PORTS, sidecarConfig, tlsCertificateArgs, uploadBody, uploadScript, UPLOAD_BYTES, UDP_CONNTRACK_TIMEOUT_S } from './bench-setup.js';
import type { LoadResult, UdpFlowsResult } from './bench-tools.js';
import { parseH2load, parseWrk, type ParsedLoad } from './load-output.js';
import { CLK_TCK, median, procCpu, rssMiB, threadCpu } from './proc-stats.js';

const TOOLS_JS = join(REPO, 'dist', 'perf', 'bench-tools.js');
const RELAY_PORT = 18200;
/** The Node relay's listener toward the peer's TLS port. */
const TLS_RELAY_PORT = 18201;

type Workload = 'keepalive' | 'connclose' | 'serial' | 'mib' | 'h2c' | 'grpc' | 'tls-mib' | 'tls-keepalive' | 'memory' | 'upload' | 'dlp-upload' | 'capture' | 'udp-flow';
/** wrk shapes as in bench.ts; h2c (h2load) and grpc (bench-tools grpc-client) run as there too. */
const WORKLOAD_ARGS: Record<Workload, { args: string[]; path: string }> = {
  keepalive: { args: ['-c50'], path: '/small' },
  connclose: { args: ['-c10', '-H', 'Connection: close'], path: '/small' },
  serial: { args: ['-c1'], path: '/small' },
  mib: { args: ['-c4'], path: '/1m' },
  h2c: { args: ['-t1', '-c10', '-m10'], path: '/small' },
  grpc: { args: ['20'], path: '' },
  'tls-mib': { args: ['-c4'], path: '/1m' },
  'tls-keepalive': { args: ['-c50'], path: '/small' },
  memory: { args: ['-c50'], path: '/small' },
  upload: { args: ['-c4'], path: '/upload' },
  'dlp-upload': { args: ['-c4'], path: '/upload' },
  capture: { args: ['-c50'], path: '/small' },
  'udp-flow': { args: ['20'], path: '' },
};

function isUpload(workload: Workload): boolean {
  return workload === 'upload' || workload === 'dlp-upload';
}

function isTls(workload: Workload): boolean {
  return workload === 'tls-mib' || workload === 'tls-keepalive';
}

type Reference = 'haproxy-http' | 'haproxy-tcp' | 'node-relay' | 'direct';
/** 'after' (this checkout), a baseline's name (its dir's basename; 'before' when there is one), or a reference. */
type VariantName = string;
/** direct (uid 1338, not redirected) runs udp-flow only. */
const REFERENCES: Reference[] = ['haproxy-http', 'haproxy-tcp', 'node-relay', 'direct'];

interface Build {
  name: string;
  /** Checkout root (bin/sidewall.js, dist/). */
  dir: string;
}

interface AbOptions {
  baselines: Build[];
  /** Topology name and subnet (third octet): namespaces are machine-wide. */
  topoName: string;
  topoSubnet: number;
  rounds: number;
  durationS: number;
  workloads: Workload[];
  /** Run this checkout's sidecar under `node --cpu-prof` writing into this folder. */
  cpuProfDir: string | undefined;
  /** Extra node flags for this checkout's sidecar. */
  nodeFlagsAfter: string[];
  /** Run this checkout's sidecar with --trace-gc and append its GC lines (stdout lines that are not records) here. */
  gcLog: string | undefined;
}

interface AbSample {
  round: number;
  variant: VariantName;
  workload: Workload;
  rps: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerRequest: number;
  /** CPU of threads other than the main one (thread pool, GC helpers), per request. */
  otherThreadsUsPerRequest: number;
  mibPerSecond: number;
  /** VmRSS of the proxy right after the run. */
  rssMiB: number;
  records: number;
  requests: number;
  errors: number;
  /** memory workload: VmRSS fresh (1 s after ready), after the keep-alive run, with 1,000 connections. */
  freshMiB?: number;
  afterLoadMiB?: number;
  with1000MiB?: number;
  /** The same 1,000 after each fetched 1 MiB, 3 s at rest. */
  bulkIdleMiB?: number;
}

class AbUsageError extends Error {
  readonly code = 'AB_BENCH_USAGE';
}

const USAGE = 'usage: node dist/perf/ab-bench.js --baseline DIR[,DIR...] [--rounds N] [--duration S] [--workloads keepalive,connclose,serial,mib,h2c,grpc,tls-mib,tls-keepalive,memory,upload,dlp-upload,capture,udp-flow] [--cpu-prof DIR] [--gc-log FILE] [--node-flags-after FLAGS] [--topo NAME:SUBNET]\n';

function parseOptions(argv: string[]): AbOptions {
  const options: AbOptions = { baselines: [], topoName: 'ab', topoSubnet: 61, rounds: 3, durationS: 2, workloads: ['keepalive', 'connclose'], cpuProfDir: undefined, nodeFlagsAfter: [], gcLog: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new AbUsageError(`${arg}: missing value\n${USAGE}`);
    if (arg === '--baseline') {
      const dirs = value.split(',').filter((d) => d !== '');
      options.baselines = dirs.map((dir) => ({ name: dirs.length === 1 ? 'before' : basename(dir.replace(/\/+$/, '')), dir }));
    } else if (arg === '--topo') {
      const m = /^([a-z0-9]{1,6}):(\d{1,3})$/.exec(value);
      if (!m) throw new AbUsageError(`--topo: expected NAME:SUBNET (e.g. pq:178), got '${value}'`);
      options.topoName = m[1] as string;
      options.topoSubnet = Number(m[2]);
    }
    else if (arg === '--rounds') options.rounds = Math.max(1, Math.round(Number(value)));
    else if (arg === '--duration') options.durationS = Number(value);
    else if (arg === '--cpu-prof') options.cpuProfDir = value;
    else if (arg === '--gc-log') options.gcLog = value;
    else if (arg === '--node-flags-after') options.nodeFlagsAfter = value.split(' ').filter((f) => f !== '');
    else if (arg === '--workloads') {
      options.workloads = value.split(',').map((w) => {
        if (!(w in WORKLOAD_ARGS)) throw new AbUsageError(`--workloads: unknown workload '${w}' (${Object.keys(WORKLOAD_ARGS).join(', ')})`);
        return w as Workload;
      });
    } else throw new AbUsageError(`unknown argument '${arg}'\n${USAGE}`);
  }
  if (options.baselines.length === 0) throw new AbUsageError(`--baseline is required\n${USAGE}`);
  for (const b of options.baselines) {
    if (!existsSync(join(b.dir, 'bin', 'sidewall.js'))) throw new AbUsageError(`--baseline must name built checkouts (bin/sidewall.js and dist/ present), got '${b.dir}'\n${USAGE}`);
  }
  if (new Set(options.baselines.map((b) => b.name)).size !== options.baselines.length) throw new AbUsageError('--baseline: two dirs with the same basename');
  if (!Number.isFinite(options.rounds) || !(options.durationS > 0)) throw new AbUsageError(`--rounds and --duration must be positive numbers\n${USAGE}`);
  return options;
}

function cpuTicks(pid: number): number {
  const { user, sys } = procCpu(pid);
  return user + sys;
}

/** CPU ticks of the threads other than the main one (libuv pool, V8 GC and compiler). */
function otherThreadTicks(pid: number): number {
  let other = 0;
  for (const [name, ticks] of threadCpu(pid)) if (!name.endsWith('(main thread)')) other += ticks;
  return other;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class AbBench {
  private readonly topo: Topology;
  private readonly subnet: string;
  /** The build whose `sidewall init` wrote the pod's iptables. */
  private initBy: string | undefined;
  private haproxy: ChildProcess | undefined;
  private relay: ChildProcess | undefined;
  private tlsRelay: ChildProcess | undefined;
  private sidecar: { proc: ChildProcess; which: string; dlp: boolean; lines: number; stderr: () => string } | undefined;
  readonly samples: AbSample[] = [];
  /** Setup of a workload that did not take effect (no records, a capture that wrote nothing, …). */
  readonly findings = new Set<string>();
  /** udp-flow: the source port the next run starts from (bench-tools udp-flows). */
  private udpPort = 20000;
  private uploadScriptFile = '';
  private probeBodyFile = '';
  private readonly captureDir: string;
  private readonly builds: Build[];

  constructor(private readonly options: AbOptions) {
    this.topo = new Topology({ name: options.topoName, subnet: options.topoSubnet });
    this.subnet = `10.77.${options.topoSubnet}.0/24`;
    this.builds = [...options.baselines, { name: 'after', dir: REPO }];
    this.captureDir = join(this.topo.dir, 'captures');
  }

  private isBuild(variant: VariantName): boolean {
    return this.builds.some((b) => b.name === variant);
  }

  /** The pod's iptables as `which`'s own `sidewall init` writes them (plus the direct uid's exemption). */
  private initFor(build: Build): void {
    if (this.initBy === build.name) return;
    const t = this.topo;
    for (const tool of ['iptables', 'ip6tables']) {
      for (const table of ['nat', 'mangle', 'filter']) {
        t.exec(t.podNs, tool, ['-t', table, '-F']);
        t.exec(t.podNs, tool, ['-t', table, '-X']);
      }
    }
    const init = t.exec(t.podNs, NODE, [join(build.dir, 'bin', 'sidewall.js'), 'init', '--redirect-dns']);
    if (init.status !== 0) throw new Error(`sidewall init (${build.name}): ${init.stderr}`);
    t.exemptDirectUid(); // HAProxy and the relay (baselines) do not go through the sidecar
    exemptDirectUidNonTcp(t); // nor the direct UDP flows through the NFQUEUE guard
    this.initBy = build.name;
  }

  private log(message: string): void {
    process.stderr.write(`[ab ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  }

  async setUp(): Promise<void> {
    const t = this.topo;
    t.create();
    for (const ns of [t.podNs, t.peerNs]) {
      t.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_local_port_range=20000 65000', 'net.ipv4.tcp_tw_reuse=1', 'net.core.somaxconn=4096', 'net.ipv4.tcp_max_syn_backlog=4096']);
    }
    mkdirSync(join(t.dir, 'www'), { mode: 0o755 });
    writeFileSync(join(t.dir, 'www', '1m'), Buffer.alloc(1 << 20, 0x5a), { mode: 0o644 });
    const tls = this.options.workloads.some(isTls);
    if (tls) {
      const cert = t.exec(t.peerNs, 'openssl', tlsCertificateArgs(t.dir));
      if (cert.status !== 0) throw new Error(`openssl req: ${cert.stderr}`);
    }
    t.start(t.peerNs, 'nginx', ['-c', t.writeFile('nginx.conf', nginxConfig(t.dir, t.peerIp, tls))]).stdout?.resume();
    await this.waitForHttp(`http://${t.peerIp}/small`, DIRECT_UID);
    if (this.options.workloads.includes('grpc')) {
      const grpc = t.start(t.peerNs, NODE, [TOOLS_JS, 'grpc-server', t.peerIp, String(PEER_PORTS.grpc)]);
      await waitForLine(grpc, (l) => l === 'listening', 15_000, 'grpc server');
    }
    if (this.options.workloads.some(isUpload)) {
      const body = join(t.dir, 'upload.json');
      writeFileSync(body, uploadBody(), { mode: 0o644 });
      this.probeBodyFile = join(t.dir, 'upload-probe.json');
      writeFileSync(this.probeBodyFile, uploadBody(true), { mode: 0o644 });
      this.uploadScriptFile = t.writeFile('upload.lua', uploadScript(body));
    }
    if (this.options.workloads.includes('udp-flow')) {
      const echo = t.start(t.peerNs, NODE, [TOOLS_JS, 'udp-echo', t.peerIp, `${PEER_PORTS.udp},${PEER_PORTS.udpDenied},${PEER_PORTS.udpDirect}`]);
      await waitForLine(echo, (l) => l === 'listening', 15_000, 'udp echo');
    }
    mkdirSync(this.captureDir, { mode: 0o700 });
    chownSync(this.captureDir, PROXY_UID, PROXY_UID);
    this.initFor(this.builds[this.builds.length - 1] as Build);
    // conntrack remembers a finished UDP flow 30 s by default; udp-flows walks source ports one by
    // one, so a short memory keeps every flow a NEW one (see bench-tools udpFlows).
    t.exec(t.podNs, 'sysctl', ['-q', '-w', `net.netfilter.nf_conntrack_udp_timeout=${UDP_CONNTRACK_TIMEOUT_S}`]);
    this.haproxy = t.start(t.podNs, 'haproxy', ['-f', t.writeFile('haproxy.cfg', haproxyConfig(t.peerIp)), '-db'], { uid: DIRECT_UID });
    this.haproxy.stdout?.resume();
    this.haproxy.stderr?.resume();
    await this.waitForHttp(`http://127.0.0.1:${HAPROXY_PORTS.http.http}/small`, DIRECT_UID);
    this.relay = t.start(t.podNs, NODE, [TOOLS_JS, 'relay', String(RELAY_PORT), t.peerIp, String(PEER_PORTS.http)], { uid: DIRECT_UID });
    await waitForLine(this.relay, (l) => l === 'listening', 15_000, 'node relay');
    if (tls) {
      this.tlsRelay = t.start(t.podNs, NODE, [TOOLS_JS, 'relay', String(TLS_RELAY_PORT), t.peerIp, String(PEER_PORTS.tls)], { uid: DIRECT_UID });
      await waitForLine(this.tlsRelay, (l) => l === 'listening', 15_000, 'node relay (tls)');
    }
  }

  private async waitForHttp(url: string, uid: number): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await this.topo.execAsync(this.topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url], { uid });
      if (r.stdout === '200') return;
      await sleep(100);
    }
    throw new Error(`${url} did not answer 200 within 15 s`);
  }

  private async useSidecar(which: string, warm = true, dlp = false): Promise<number> {
    if (this.sidecar?.which === which && this.sidecar.dlp === dlp) return this.sidecar.proc.pid as number;
    await this.stopSidecar();
    const t = this.topo;
    const build = this.builds.find((b) => b.name === which) as Build;
    this.initFor(build);
    const cli = which === 'after' ? CLI : join(build.dir, 'bin', 'sidewall.js');
    const config = t.writeFile(`sidecar-${which}${dlp ? '-dlp' : ''}.yaml`, sidecarConfig({ name: which, ruleCount: 10, exportStdout: true, dlp, captureDir: this.captureDir }, this.subnet));
    const profDir = which === 'after' ? this.options.cpuProfDir : undefined;
    if (profDir !== undefined) {
      mkdirSync(profDir, { recursive: true, mode: 0o755 });
      chownSync(profDir, PROXY_UID, PROXY_UID);
    }
    const nodeArgs = profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profDir];
    if (which === 'after') nodeArgs.push(...this.options.nodeFlagsAfter);
    const gcLog = which === 'after' ? this.options.gcLog : undefined;
    if (gcLog !== undefined) nodeArgs.push('--trace-gc');
    const proc = t.start(t.podNs, NODE, [...nodeArgs, cli, 'proxy', '--config', config], { uid: PROXY_UID, env: { POD_NAME: 'app-0', POD_NAMESPACE: 'bench' } });
    const state = { proc, which, dlp, lines: 0, stderr: (): string => stderr };
    proc.once('exit', (code, signal) => {
      if (this.sidecar === state) this.log(`sidecar ${which} exited on its own (${code ?? signal}); stderr: ${stderr.slice(-600)}`);
    });
    // Records are counted, not parsed: the count proves the traffic went through with export on.
    proc.stdout?.on('data', (d: Buffer) => {
      for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) state.lines++;
    });
    if (gcLog !== undefined) {
      // --trace-gc writes to stdout among the records: its lines (not JSON) go to the file, and are
      // taken off the record count.
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (line.startsWith('{')) return;
        state.lines--;
        appendFileSync(gcLog, `${(performance.now() / 1000).toFixed(3)} ${line}\n`);
      });
    }
    let stderr = '';
    let loggedReady = false;
    proc.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
      if (!loggedReady && /proxy ready/.test(stderr)) loggedReady = true;
    });
    this.sidecar = state;
    // /ready, or (a build whose admin port today's topology does not reach) its 'ready' log line.
    // 60 s: a start on a machine at load 20 (other engineers' builds) took longer than 15 s.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await t.execAsync(t.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', 'http://127.0.0.1:15000/ready']);
      if (r.stdout === '200' || loggedReady) break;
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`sidecar (${which}) not ready within 60 s (exit ${proc.exitCode}); stderr: ${stderr}`);
      await sleep(100);
    }
    const check = await t.execAsync(t.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${t.peerIp}/small`], { uid: APP_UID });
    if (check.stdout !== '200') throw new Error(`request through the ${which} sidecar got '${check.stdout}'; stderr: ${stderr}`);
    if (dlp) await this.probeDlp(which);
    if (this.options.workloads.includes('udp-flow')) await this.probeUdp(which);
    if (!warm) return proc.pid as number;
    // JIT warm-up, not measured: the first seconds of a fresh process run unoptimised code (2 s:
    // at load 20, 1 s left V8's compiler threads busy into the measured run).
    await t.execAsync(t.podNs, 'wrk', ['-t1', '-d2s', '-c10', `http://${t.peerIp}/small`], { uid: APP_UID });
    await t.execAsync(t.podNs, 'wrk', ['-t1', '-d1s', '-c10', '-H', 'Connection: close', `http://${t.peerIp}/small`], { uid: APP_UID });
    await sleep(200);
    return proc.pid as number;
  }

  /** DLP is on and scans the whole 1 MiB: a card number 200 bytes before the end of a body is blocked (403). */
  private async probeDlp(which: string): Promise<void> {
    const t = this.topo;
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-H', 'Content-Type: application/json', '--data-binary', `@${this.probeBodyFile}`, `http://${t.peerIp}/upload`], { uid: APP_UID });
    if (r.stdout !== '403') this.findings.add(`dlp-upload: the ${which} sidecar with DLP did not block a 1 MiB upload with a card number near its end (got '${r.stdout}'): DLP did not take effect or does not scan the whole body, so its numbers do not show DLP's cost`);
  }

  /**
   * The udp-flow path is the guard's decision: a flow to the allowed port is answered, one to
   * PEER_PORTS.udpDenied (no rule) is not — and neither is a 'direct' measurement in disguise.
   */
  private async probeUdp(which: string): Promise<void> {
    const t = this.topo;
    const probe = (port: number): Promise<boolean> => t.execAsync(t.podNs, NODE, [TOOLS_JS, 'udp-probe', t.peerIp, String(port)], { uid: APP_UID }).then((r) => r.status === 0);
    const [allowed, denied] = await Promise.all([probe(PEER_PORTS.udp), probe(PEER_PORTS.udpDenied)]);
    if (!allowed) this.findings.add(`udp-flow: through the ${which} sidecar a UDP flow to port ${PEER_PORTS.udp} (allowed by a rule) got no answer`);
    if (denied) this.findings.add(`udp-flow: through the ${which} sidecar a UDP flow to port ${PEER_PORTS.udpDenied} (no rule: default deny) was answered — the flows do not go through the NFQUEUE guard's decision`);
  }

  /** An on-demand capture of every new connection to or from the peer (what `sidewall capture --peer` starts). */
  private async startCapture(variant: VariantName): Promise<string | undefined> {
    const t = this.topo;
    const ms = Math.round(this.options.durationS * 1000) + 5000;
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '--max-time', '3', '-X', 'POST', `http://127.0.0.1:15000/captures?peer=${t.peerIp}&durationMs=${ms}`], { uid: PROXY_UID });
    try {
      return (JSON.parse(r.stdout) as { id: string }).id;
    } catch {
      this.findings.add(`capture: POST /captures on the ${variant} sidecar failed: ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 200)} (the run measured no capture)`);
      return undefined;
    }
  }

  /** Ends the capture; it must hold at least a frame per request and response, none left out. */
  private async endCapture(variant: VariantName, id: string, wrkOut: string): Promise<void> {
    const t = this.topo;
    const r = await t.execAsync(t.podNs, 'curl', ['-s', '--max-time', '3', '-X', 'DELETE', `http://127.0.0.1:15000/captures/${id}`], { uid: PROXY_UID });
    const requests = parseWrk(wrkOut).requests;
    try {
      const info = JSON.parse(r.stdout) as { packets: number; bytes: number; truncated: boolean; flowCount: number };
      if (!(info.packets >= 2 * requests) || info.truncated) this.findings.add(`capture: the ${variant} sidecar's capture holds ${info.packets} frames (${info.bytes} bytes, ${info.flowCount} flows${info.truncated ? ', truncated' : ''}) for ${requests} requests: it did not capture the measured flows`);
    } catch {
      this.findings.add(`capture: DELETE /captures/${id} on the ${variant} sidecar failed: ${r.stdout.slice(0, 200)}`);
    }
  }

  /** udp-flow: new flows per second through a build's NFQUEUE guard, or direct. */
  private async measureUdp(round: number, variant: VariantName): Promise<void> {
    const t = this.topo;
    const build = this.isBuild(variant);
    const pid = build ? await this.useSidecar(variant) : undefined;
    const uid = build ? APP_UID : DIRECT_UID;
    const linesBefore = this.sidecar?.lines ?? 0;
    const ticksBefore = pid === undefined ? 0 : cpuTicks(pid);
    const threadsBefore = pid === undefined ? 0 : otherThreadTicks(pid);
    const r = await t.execAsync(t.podNs, NODE, [TOOLS_JS, 'udp-flows', t.peerIp, String(build ? PEER_PORTS.udp : PEER_PORTS.udpDirect), String(this.options.durationS), ...WORKLOAD_ARGS['udp-flow'].args, String(this.udpPort)], { uid });
    const ticks = pid === undefined ? NaN : cpuTicks(pid) - ticksBefore;
    const otherTicks = pid === undefined ? NaN : otherThreadTicks(pid) - threadsBefore;
    if (r.status !== 0) throw new Error(`udp-flow load failed (${r.status}): ${r.stdout.slice(-300)} ${r.stderr}`);
    await sleep(100); // the last records reach our pipe
    const load = JSON.parse(r.stdout.trim().split('\n').pop() as string) as UdpFlowsResult;
    this.udpPort = load.nextPort;
    const records = build ? (this.sidecar?.lines ?? 0) - linesBefore : 0;
    // Each flow that was answered passed the guard's decision, which records it: fewer records
    // than answered flows means flows went by without a decision (a conntrack entry reused).
    if (build && records < load.answered) this.findings.add(`udp-flow r${round} ${variant}: ${records} records for ${load.answered} answered flows: not every flow was decided by the sidecar`);
    if (load.errors > load.requests * 0.01) this.findings.add(`udp-flow r${round} ${variant}: ${load.errors} flows unanswered within 1 s (of ${load.requests} answered)`);
    const sample: AbSample = {
      round,
      variant,
      workload: 'udp-flow',
      rps: load.rps,
      p50Us: load.p50Us,
      p99Us: load.p99Us,
      cpuUsPerRequest: (ticks * (1e6 / CLK_TCK)) / load.requests,
      otherThreadsUsPerRequest: (otherTicks * (1e6 / CLK_TCK)) / load.requests,
      mibPerSecond: NaN,
      rssMiB: pid === undefined ? NaN : rssMiB(pid),
      // Per answered flow (warm-up included on both sides of the ratio).
      records: build ? (records * load.requests) / Math.max(1, load.answered) : 0,
      requests: load.requests,
      errors: load.errors,
    };
    this.samples.push(sample);
    const n = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
    this.log(`r${round} udp-flow  ${variant.padEnd(14)} ${n(sample.rps).padStart(7)} flows/s  cpu ${n(sample.cpuUsPerRequest, 1)} µs/flow  p50 ${n(sample.p50Us)} p99 ${n(sample.p99Us)} µs  records ${records} for ${load.answered} answered (${load.flows} sent)${load.errors ? `  unanswered ${load.errors}` : ''}`);
  }

  private async stopSidecar(): Promise<void> {
    const current = this.sidecar;
    if (current === undefined) return;
    this.sidecar = undefined;
    // A sidecar that already exited (crashed, or stopped by a signal) emits no second 'exit'.
    if (current.proc.exitCode !== null || current.proc.signalCode !== null) return;
    const exited = new Promise((resolve) => current.proc.once('exit', resolve));
    current.proc.kill('SIGTERM');
    const timer = setTimeout(() => current.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  private async measure(round: number, variant: VariantName, workload: Workload): Promise<void> {
    const t = this.topo;
    // The relay forwards to the peer's HTTP/1 port only.
    if (variant === 'node-relay' && (workload === 'h2c' || workload === 'grpc')) return;
    // TLS is relayed, not terminated: HAProxy's tcp mode is its reference.
    if (variant === 'haproxy-http' && isTls(workload)) return;
    if (workload === 'memory') {
      if (this.isBuild(variant)) await this.measureMemory(round, variant);
      return;
    }
    // direct: the udp-flow baseline only; udp-flow and capture have no HAProxy or relay counterpart.
    if ((variant === 'direct') !== (workload === 'udp-flow') && !this.isBuild(variant)) return;
    if (workload === 'capture' && !this.isBuild(variant)) return;
    if (workload === 'udp-flow') return this.measureUdp(round, variant);
    const tls = isTls(workload);
    const upstreamPort = workload === 'h2c' ? PEER_PORTS.h2c : workload === 'grpc' ? PEER_PORTS.grpc : tls ? PEER_PORTS.tls : PEER_PORTS.http;
    const haproxyKey = workload === 'h2c' ? 'h2c' : workload === 'grpc' ? 'grpc' : 'http';
    let pid: number;
    let target: string;
    let uid = DIRECT_UID;
    if (this.isBuild(variant)) {
      pid = await this.useSidecar(variant, true, workload === 'dlp-upload');
      target = `${t.peerIp}:${upstreamPort}`;
      uid = APP_UID;
    } else if (variant === 'node-relay') {
      pid = (tls ? this.tlsRelay?.pid : this.relay?.pid) as number;
      target = `127.0.0.1:${tls ? TLS_RELAY_PORT : RELAY_PORT}`;
    } else {
      pid = this.haproxy?.pid as number;
      target = `127.0.0.1:${tls ? HAPROXY_PORTS.tcp.tls : HAPROXY_PORTS[variant === 'haproxy-http' ? 'http' : 'tcp'][haproxyKey]}`;
    }
    const shape = WORKLOAD_ARGS[workload];
    const capture = workload === 'capture' && this.isBuild(variant) ? await this.startCapture(variant) : undefined;
    const linesBefore = this.sidecar?.lines ?? 0;
    const ticksBefore = cpuTicks(pid);
    const threadsBefore = otherThreadTicks(pid);
    const d = this.options.durationS;
    const r =
      workload === 'h2c'
        ? await t.execAsync(t.podNs, 'h2load', [...shape.args, '-D', `${Math.round(d * 1000)}ms`, '--warm-up-time=300ms', `http://${target}${shape.path}`], { uid })
        : workload === 'grpc'
          ? await t.execAsync(t.podNs, NODE, [TOOLS_JS, 'grpc-client', target, String(d), ...shape.args], { uid })
          : await t.execAsync(t.podNs, 'wrk', ['-t1', `-d${d}s`, '--timeout', '5s', '--latency', ...(isUpload(workload) ? ['-s', this.uploadScriptFile] : []), ...shape.args, `${tls ? 'https' : 'http'}://${target}${shape.path}`], { uid });
    const ticks = cpuTicks(pid) - ticksBefore;
    const otherTicks = otherThreadTicks(pid) - threadsBefore;
    if (r.status !== 0) throw new Error(`${workload} load failed (${r.status}): ${r.stdout.slice(-300)} ${r.stderr}`);
    await sleep(50); // the last records reach our pipe
    if (capture !== undefined) await this.endCapture(variant, capture, r.stdout);
    const load: ParsedLoad =
      workload === 'h2c'
        ? parseH2load(r.stdout)
        : workload === 'grpc'
          ? { ...(JSON.parse(r.stdout.trim().split('\n').pop() as string) as LoadResult), meanUs: NaN, bytesPerSecond: NaN }
          : parseWrk(r.stdout);
    const sample: AbSample = {
      round,
      variant,
      workload,
      rps: load.rps,
      p50Us: load.p50Us,
      p99Us: load.p99Us,
      cpuUsPerRequest: (ticks * (1e6 / CLK_TCK)) / load.requests,
      otherThreadsUsPerRequest: (otherTicks * (1e6 / CLK_TCK)) / load.requests,
      // Uploads: what went up (wrk's Transfer/sec counts what came back).
      mibPerSecond: isUpload(workload) ? (load.rps * UPLOAD_BYTES) / 1024 ** 2 : load.bytesPerSecond / 1024 ** 2,
      rssMiB: rssMiB(pid),
      records: this.isBuild(variant) ? (this.sidecar?.lines ?? 0) - linesBefore : 0,
      requests: load.requests,
      errors: load.errors,
    };
    this.samples.push(sample);
    if (isUpload(workload) && load.errors > 0) this.findings.add(`${workload} through ${variant}: ${load.errors} uploads failed or were not answered 2xx (r${round}; a DLP false positive on the clean body is a 403)`);
    const n = (v: number | null, digits = 0): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');
    this.log(`r${round} ${workload.padEnd(9)} ${variant.padEnd(14)} ${n(sample.rps).padStart(7)} req/s  cpu ${n(sample.cpuUsPerRequest, 1)} µs/req (other threads ${n(sample.otherThreadsUsPerRequest, 1)})  p50 ${n(sample.p50Us)} p99 ${n(sample.p99Us)} µs  records/req ${(sample.records / Math.max(1, sample.requests)).toFixed(2)}${sample.errors ? `  errors ${sample.errors}` : ''}`);
  }

  /** A fresh sidecar of this build: RSS idle, after a keep-alive run, with 1,000 open connections. */
  private async measureMemory(round: number, variant: VariantName): Promise<void> {
    const t = this.topo;
    await this.stopSidecar();
    const pid = await this.useSidecar(variant, false);
    await sleep(1000);
    const freshMiB = rssMiB(pid);
    const linesBefore = this.sidecar?.lines ?? 0;
    const ticksBefore = cpuTicks(pid);
    const threadsBefore = otherThreadTicks(pid);
    const r = await t.execAsync(t.podNs, 'wrk', ['-t1', `-d${this.options.durationS}s`, '--timeout', '5s', '--latency', '-c50', `http://${t.peerIp}/small`], { uid: APP_UID });
    if (r.status !== 0) throw new Error(`memory: keep-alive load failed (${r.status}): ${r.stderr}`);
    const ticks = cpuTicks(pid) - ticksBefore;
    const otherTicks = otherThreadTicks(pid) - threadsBefore;
    const load = parseWrk(r.stdout);
    await sleep(1000);
    const afterLoadMiB = rssMiB(pid);
    const with1000MiB = await this.holdAndMeasure(pid, variant, '/small', 1000);
    const bulkIdleMiB = await this.holdAndMeasure(pid, variant, '/1m', 3000);
    const sample: AbSample = {
      round,
      variant,
      workload: 'memory',
      rps: load.rps,
      p50Us: load.p50Us,
      p99Us: load.p99Us,
      cpuUsPerRequest: (ticks * (1e6 / CLK_TCK)) / load.requests,
      otherThreadsUsPerRequest: (otherTicks * (1e6 / CLK_TCK)) / load.requests,
      mibPerSecond: load.bytesPerSecond / 1024 ** 2,
      rssMiB: rssMiB(pid),
      records: (this.sidecar?.lines ?? 0) - linesBefore,
      requests: load.requests,
      errors: load.errors,
      freshMiB,
      afterLoadMiB,
      with1000MiB,
      bulkIdleMiB,
    };
    this.samples.push(sample);
    this.log(`r${round} memory    ${variant.padEnd(14)} RSS fresh ${freshMiB.toFixed(1)}  after load ${afterLoadMiB.toFixed(1)}  with 1,000 ${with1000MiB.toFixed(1)}  after 1 MiB each ${bulkIdleMiB.toFixed(1)} MiB  (keep-alive ${load.rps.toFixed(0)} req/s, cpu ${sample.cpuUsPerRequest.toFixed(1)} µs/req, p99 ${load.p99Us.toFixed(0)} µs)`);
    // The next workload gets a warmed-up sidecar, as always.
    await this.stopSidecar();
  }

  /** RSS with 1,000 keep-alive connections that each fetched `path` once, `settleMs` after the last answer. */
  private async holdAndMeasure(pid: number, variant: VariantName, path: string, settleMs: number): Promise<number> {
    const t = this.topo;
    const hold = t.start(t.podNs, NODE, [TOOLS_JS, 'hold', t.peerIp, String(PEER_PORTS.http), path, '1000'], { uid: APP_UID });
    try {
      await waitForLine(hold, (l) => l.startsWith('ready'), 120_000, `hold 1,000 connections (${variant}, ${path})`);
      await sleep(settleMs);
      return rssMiB(pid);
    } finally {
      const exited = new Promise((resolve) => hold.once('exit', resolve));
      hold.kill('SIGTERM');
      await exited;
      await sleep(1000);
    }
  }

  async run(): Promise<void> {
    const names = this.builds.map((b) => b.name);
    for (let round = 1; round <= this.options.rounds; round++) {
      // Rotate which build goes first (two builds: alternate); the references run after the first.
      // (The rotation alone alternates two builds: reversing it too put the baseline first in every round.)
      const k = (round - 1) % names.length;
      const builds = [...names.slice(k), ...names.slice(0, k)];
      const order: VariantName[] = [builds[0] as string, ...REFERENCES, ...builds.slice(1)];
      for (const variant of order) for (const workload of this.options.workloads) await this.measure(round, variant, workload);
    }
    await this.stopSidecar();
  }

  report(): string {
    const variants: VariantName[] = [...this.builds.map((b) => b.name), ...REFERENCES];
    const f = (n: number, d = 0): string => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–');
    let out = `A/B: ${this.options.rounds} round(s) of ${this.options.durationS} s, baseline(s) ${this.options.baselines.map((b) => `${b.name}=${b.dir}`).join(', ')}\n`;
    for (const workload of this.options.workloads) {
      const med = (v: VariantName, key: keyof AbSample): number => median(this.samples.filter((s) => s.variant === v && s.workload === workload).map((s) => s[key] as number));
      if (workload === 'memory') {
        out += `\n### memory (VmRSS, MiB; keep-alive -c50 between fresh and after load)\n\n| build | fresh | after load | with 1,000 connections | the same after 1 MiB each, at rest | keep-alive req/s | CPU µs/req | p99 µs |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
        for (const b of this.builds) out += `| ${b.name} | ${f(med(b.name, 'freshMiB'), 1)} | ${f(med(b.name, 'afterLoadMiB'), 1)} | ${f(med(b.name, 'with1000MiB'), 1)} | ${f(med(b.name, 'bulkIdleMiB'), 1)} | ${f(med(b.name, 'rps'))} | ${f(med(b.name, 'cpuUsPerRequest'), 1)} | ${f(med(b.name, 'p99Us'))} |\n`;
        continue;
      }
      out += `\n### ${workload}\n\n| variant | req/s | CPU µs/req | other threads µs/req | p50 µs | p99 µs | MiB/s | RSS after, MiB | records/req |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n`;
      for (const v of variants) {
        const records = this.samples.filter((s) => s.variant === v && s.workload === workload);
        if (records.length === 0) continue;
        const perReq = records.reduce((a, s) => a + s.records, 0) / Math.max(1, records.reduce((a, s) => a + s.requests, 0));
        out += `| ${v} | ${f(med(v, 'rps'))} | ${f(med(v, 'cpuUsPerRequest'), 1)} | ${f(med(v, 'otherThreadsUsPerRequest'), 1)} | ${f(med(v, 'p50Us'))} | ${f(med(v, 'p99Us'))} | ${f(med(v, 'mibPerSecond'))} | ${f(med(v, 'rssMiB'))} | ${this.isBuild(v) ? f(perReq, 2) : '–'} |\n`;
      }
      const ratio = (a: VariantName, b: VariantName, key: keyof AbSample): string => f(med(a, key) / med(b, key), 2);
      if (this.builds.length === 2) {
        out += `\nafter/before: req/s ${ratio('after', 'before', 'rps')}×, CPU ${ratio('after', 'before', 'cpuUsPerRequest')}×; `;
        if (workload === 'udp-flow') out += `flows/s vs direct before ${ratio('before', 'direct', 'rps')}× → after ${ratio('after', 'direct', 'rps')}×\n`;
        else if (workload !== 'capture') out += `req/s vs haproxy-http before ${ratio('before', 'haproxy-http', 'rps')}× → after ${ratio('after', 'haproxy-http', 'rps')}×, vs haproxy-tcp ${ratio('before', 'haproxy-tcp', 'rps')}× → ${ratio('after', 'haproxy-tcp', 'rps')}×, vs node-relay ${ratio('before', 'node-relay', 'rps')}× → ${ratio('after', 'node-relay', 'rps')}×\n`;
        else out += '\n';
      } else {
        // Several builds (a bisection): each one's CPU per request against the first and the relay.
        const first = this.builds[0]?.name as string;
        out += `\n| build | CPU vs ${first} | CPU vs node-relay | CPU vs haproxy-tcp |\n| --- | ---: | ---: | ---: |\n`;
        for (const b of this.builds) out += `| ${b.name} | ${ratio(b.name, first, 'cpuUsPerRequest')}× | ${ratio(b.name, 'node-relay', 'cpuUsPerRequest')}× | ${ratio(b.name, 'haproxy-tcp', 'cpuUsPerRequest')}× |\n`;
      }
    }
    if (this.findings.size > 0) out += `\n### findings (a workload's setup that did not take effect: its numbers do not mean what they say)\n\n${[...this.findings].map((f) => `- ${f}`).join('\n')}\n`;
    return out;
  }

  async tearDown(): Promise<void> {
    await this.stopSidecar().catch(() => undefined);
    await this.topo.destroy();
  }
}

async function main(): Promise<number> {
  let options: AbOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`ab-bench: ${(err as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('ab-bench: needs root (network namespaces, iptables)\n');
    return 1;
  }
  const bench = new AbBench(options);
  const onSignal = (): void => void bench.tearDown().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await bench.setUp();
    await bench.run();
  } finally {
    await bench.tearDown();
  }
  const raw = `/tmp/sidewall-ab-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(raw, JSON.stringify({ options, samples: bench.samples }, null, 1));
  process.stdout.write(bench.report() + `\nraw samples: ${raw}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ab-bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
