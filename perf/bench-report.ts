// Writes perf/RESULTS.md from one `npm run bench` run: medians per workload and variant, the
// ratios issue 7 sets goals on, memory, the syscall counts and the sidecar's CPU profile.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { BenchRun, Sample, VariantName, WorkloadName } from './bench.js';
import { median } from './proc-stats.js';

/** Mirrors bench.ts PACED_RATE_CAP (a value import would run the bench's main()). */
const PACED_RATE_CAP = 5000;

const WORKLOAD_TITLES: Record<WorkloadName, string> = {
  keepalive: 'HTTP/1.1 keep-alive, 100-byte responses (wrk -t1 -c50)',
  serial: 'One connection at a time (wrk -t1 -c1): latency',
  connclose: 'A new connection per request (wrk -t1 -c10, Connection: close)',
  mib: '1 MiB responses (wrk -t1 -c4)',
  h2c: 'h2c, prior knowledge (h2load -t1 -c10 -m10)',
  grpc: 'gRPC unary, 100-byte messages (grpc-js client, 20 calls in flight on one channel)',
  paced: 'Fixed rate below saturation (10 keep-alive connections, one request in flight each)',
  dns: 'DNS over UDP (20 queries outstanding)',
  'dlp-upload': '1 MiB uploads, clean JSON (wrk -t1 -c4, POST with a Lua script; nginx reads and drops each body)',
  'udp-flow': 'A new UDP flow per exchange (20 in flight: a fresh socket, one 64-byte datagram to a UDP echo on port 7000, the echo awaited)',
  capture: 'HTTP/1.1 keep-alive /small (wrk -t1 -c50), without and with an on-demand capture of the flows running',
};

/** Columns per workload: uploads count MiB going up; a UDP flow is a "request". */
const MIB_WORKLOADS = new Set<WorkloadName>(['mib', 'dlp-upload']);
/** Workloads left out of the HAProxy ratio table (no HAProxy variant): see their own section. */
const OWN_SECTION = new Set<WorkloadName>(['dns', 'udp-flow', 'capture']);

type NumericField = 'rps' | 'p50Us' | 'p99Us' | 'meanUs' | 'cpuUsPerRequest' | 'userUsPerRequest' | 'sysUsPerRequest' | 'mibPerSecond' | 'records' | 'requests' | 'errors';

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

interface Goal {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

export function writeResults(run: BenchRun, path: string, rawPath: string): void {
  const m = (workload: WorkloadName, variant: VariantName, field: NumericField): number =>
    median(run.samples.filter((s) => s.workload === workload && s.variant === variant).map((s) => s[field]));
  const count = (workload: WorkloadName, variant: VariantName): number => run.samples.filter((s) => s.workload === workload && s.variant === variant).length;
  const lines: string[] = [];
  const out = (line = ''): void => void lines.push(line);

  out('# sidewall performance results');
  out();
  out(`Written by \`npm run bench\` (perf/bench.ts) on ${run.startedAt}; ${run.options.rounds} interleaved round(s) of ${run.options.durationS} s runs, ${fmt(run.elapsedS)} s in all. Raw samples of this run: \`${rawPath}\`.`);
  out('Everything shares one machine, load generators included, and other jobs may run beside it: absolute numbers are noisy, **ratios within one run are what count** (issue 7).');
  out();
  out('## Machine');
  out();
  out('| | |');
  out('| --- | --- |');
  for (const [k, v] of Object.entries(run.machine)) out(`| ${k} | ${v.replace(/\|/g, '/')} |`);
  out();
  out('## Variants');
  out();
  out('- **direct**: the client in the pod namespace as uid 1338, which a bench-only nat rule excludes from redirection (the pod rules exempt only the marked sockets of the proxy): straight to the peer.');
  out('- **sidewall**: the client as app uid 1000; iptables (written by `sidewall init --redirect-dns`) sends it to the sidecar (`sidewall proxy` as uid 1337) with a realistic 10-rule policy in `protect` mode — the bench traffic is allowed by L7 rules (HTTP method+path, HTTP/2, gRPC service+method), so every request is parsed and decided — and flow export to stdout on (records consumed by the harness).');
  out('- **sidewall-1000-rules**: the same with 990 more rules in front (half of them on port 80 with other peers and paths). **sidewall-no-export**: 10 rules, `export.stdout: false`.');
  out('- **haproxy-tcp** / **haproxy-http**: HAProxy (Debian), `nbthread 1`, as uid 1338 (exempted like the direct path) in the pod namespace on 127.0.0.1, forwarding to the peer (`http-reuse always` in http mode; h2c and gRPC with `proto h2` on both sides in http mode).');
  out('- **node-relay** (reference, not a goal): a plain Node TCP relay (`net` sockets, data handlers, write + pause/resume; no parsing, no rules, no records) as uid 1338 on 127.0.0.1 — the floor any design on Node\'s socket layer starts from.');
  out('- **sidewall-dlp**: the sidewall variant plus `dlp: {action: block, sensors: [pci-pan, us-ssn, aws-access-key, private-key, jwt, iban]}` (all six built-ins scanning every request body, header and query; shown at each start to block a card number 200 bytes before the end of a 1 MiB upload). **sidewall-capture**: the same sidecar process as sidewall, with an on-demand capture (`POST /captures?peer=<peer>`, as `sidewall capture --peer`) running over the measured connections; each capture must hold at least a frame per request and per response.');
  out('- **udp-flow**: direct is uid 1338, which a bench-only mangle rule keeps out of the NFQUEUE guard; sidewall is app uid 1000, whose first packet of each new flow is queued to the sidecar and decided by a `protocol: udp` rule (port 7001, with no rule, is shown dropped and recorded at start; every answered flow must have its allowed record; direct goes to port 7002, so the two never share a 5-tuple). conntrack forgets finished UDP flows after 1 s in the pod (30 s by default) and the client walks source ports one by one, so each flow is NEW.');
  out('- **node-relay-nat** (reference): the same relay reached through an iptables `REDIRECT` in the pod\'s OUTPUT nat chain (conntrack + NAT on the client leg, as every app connection to the sidecar has): node-relay-nat minus node-relay is the kernel\'s share that no user-space change removes.');
  out('- Upstream: nginx 1 worker (`return 200` with 100 bytes; a 1 MiB file; h2c on `listen … http2`), a grpc-js echo server, a UDP DNS responder — all in the peer namespace.');
  out();

  // ---- goals
  const goals: Goal[] = [];
  const ge = (value: number, target: number): boolean | undefined => (Number.isFinite(value) ? value >= target : undefined);
  const le = (value: number, target: number): boolean | undefined => (Number.isFinite(value) ? value <= target : undefined);
  const kaRatio = ratio(m('keepalive', 'sidewall', 'rps'), m('keepalive', 'haproxy-http', 'rps'));
  goals.push({ goal: 'HTTP/1.1 keep-alive req/s ≥ 1.0× HAProxy http mode', measured: `${fmt(kaRatio, 2)}× (${fmt(m('keepalive', 'sidewall', 'rps'))} vs ${fmt(m('keepalive', 'haproxy-http', 'rps'))} req/s)`, met: ge(kaRatio, 1.0) });
  const kaCpu = m('keepalive', 'sidewall', 'cpuUsPerRequest');
  const haCpu = m('keepalive', 'haproxy-http', 'cpuUsPerRequest');
  goals.push({ goal: 'HTTP/1.1 keep-alive CPU per request ≤ HAProxy http mode', measured: `${fmt(kaCpu, 1)} vs ${fmt(haCpu, 1)} µs (${fmt(ratio(kaCpu, haCpu), 2)}×)`, met: le(kaCpu, haCpu) });
  const ccRatio = ratio(m('connclose', 'sidewall', 'rps'), m('connclose', 'haproxy-tcp', 'rps'));
  goals.push({ goal: 'New connections per second ≥ 0.9× HAProxy tcp mode', measured: `${fmt(ccRatio, 2)}× (${fmt(m('connclose', 'sidewall', 'rps'))} vs ${fmt(m('connclose', 'haproxy-tcp', 'rps'))} conn/s)`, met: ge(ccRatio, 0.9) });
  const mibRatio = ratio(m('mib', 'sidewall', 'rps'), m('mib', 'haproxy-tcp', 'rps'));
  goals.push({ goal: '1 MiB responses ≥ 0.9× HAProxy tcp mode', measured: `${fmt(mibRatio, 2)}× (${fmt(m('mib', 'sidewall', 'mibPerSecond'))} vs ${fmt(m('mib', 'haproxy-tcp', 'mibPerSecond'))} MiB/s)`, met: ge(mibRatio, 0.9) });
  for (const w of ['h2c', 'grpc'] as const) {
    const r = ratio(m(w, 'sidewall', 'rps'), m(w, 'haproxy-http', 'rps'));
    goals.push({ goal: `${w === 'h2c' ? 'h2c' : 'gRPC unary'} req/s ≥ 1.0× HAProxy http mode`, measured: `${fmt(r, 2)}× (${fmt(m(w, 'sidewall', 'rps'))} vs ${fmt(m(w, 'haproxy-http', 'rps'))} req/s)`, met: ge(r, 1.0) });
  }
  const addedP50 = m('paced', 'sidewall', 'p50Us') - m('paced', 'direct', 'p50Us');
  const addedP99 = m('paced', 'sidewall', 'p99Us') - m('paced', 'direct', 'p99Us');
  // The export-off variant runs the paced workload too: how much of the added latency records cost.
  const noExport = (q: 'p50Us' | 'p99Us'): string => {
    const added = m('paced', 'sidewall-no-export', q) - m('paced', 'direct', q);
    return Number.isFinite(added) ? `; export off +${fmt(added)} µs` : '';
  };
  goals.push({ goal: `Added latency at a fixed rate (${fmt(run.pacedRate)} req/s ≈ half the sidecar's keep-alive rate) p50 ≤ 100 µs`, measured: `+${fmt(addedP50)} µs (HAProxy http +${fmt(m('paced', 'haproxy-http', 'p50Us') - m('paced', 'direct', 'p50Us'))} µs${noExport('p50Us')})`, met: le(addedP50, 100) });
  goals.push({ goal: 'Added latency at that rate p99 ≤ 250 µs', measured: `+${fmt(addedP99)} µs (HAProxy http +${fmt(m('paced', 'haproxy-http', 'p99Us') - m('paced', 'direct', 'p99Us'))} µs${noExport('p99Us')})`, met: le(addedP99, 250) });
  const costRatios = (variant: VariantName): Array<[WorkloadName, number, number]> =>
    (['keepalive', 'connclose'] as const).map((w) => [w, ratio(m(w, variant, 'cpuUsPerRequest'), m(w, 'sidewall', 'cpuUsPerRequest')), ratio(m(w, variant, 'rps'), m(w, 'sidewall', 'rps'))]);
  const rules = costRatios('sidewall-1000-rules');
  goals.push({
    goal: '1,000 rules cost ≤ 5% more than 10 (CPU per request)',
    measured: rules.map(([w, cpu, rps]) => `${w}: CPU ${fmt(cpu, 2)}×, req/s ${fmt(rps, 2)}×`).join('; '),
    met: rules.every(([, cpu]) => Number.isFinite(cpu)) ? rules.every(([, cpu]) => cpu <= 1.05) : undefined,
  });
  // export on vs off: the sidewall variant has it on, sidewall-no-export off.
  const exportCost = (['keepalive', 'connclose'] as const).map((w): [WorkloadName, number, number] => [w, ratio(m(w, 'sidewall', 'cpuUsPerRequest'), m(w, 'sidewall-no-export', 'cpuUsPerRequest')), ratio(m(w, 'sidewall', 'rps'), m(w, 'sidewall-no-export', 'rps'))]);
  goals.push({
    goal: 'Flow export on costs ≤ 10% (CPU per request, on vs off)',
    measured: exportCost.map(([w, cpu, rps]) => `${w}: CPU ${fmt(cpu, 2)}×, req/s ${fmt(rps, 2)}×`).join('; '),
    met: exportCost.every(([, cpu]) => Number.isFinite(cpu)) ? exportCost.every(([, cpu]) => cpu <= 1.1) : undefined,
  });
  const sideMem = run.memory.find((x) => x.variant === 'sidewall');
  const idle = sideMem ? Math.max(sideMem.freshMiB, Number.isFinite(sideMem.afterLoadMiB) ? sideMem.afterLoadMiB : 0) : NaN;
  goals.push({ goal: 'RSS ≤ 50 MiB idle', measured: sideMem ? `${fmt(sideMem.freshMiB, 1)} MiB fresh, ${fmt(sideMem.afterLoadMiB, 1)} MiB idle after the load` : '–', met: le(idle, 50) });
  goals.push({ goal: 'RSS ≤ 100 MiB with 1,000 open connections', measured: sideMem ? `${fmt(sideMem.with1000MiB, 1)} MiB` : '–', met: le(sideMem?.with1000MiB ?? NaN, 100) });

  out('## Goals (issue 7, kept by issue 18)');
  out();
  out('| goal | measured (medians) | met? |');
  out('| --- | --- | --- |');
  for (const g of goals) out(`| ${g.goal} | ${g.measured} | ${g.met === undefined ? 'not measured' : g.met ? '**met**' : '**not met**'} |`);
  out();
  out(`${goals.filter((g) => g.met === true).length} of ${goals.length} met. Where a goal is not met, the profile below shows where the time goes; what was tried and what would close the gap are in the analysis at the end ("Where the time goes, goal by goal").`);
  out();

  if (run.findings.length > 0) {
    out('## Findings besides the numbers');
    out();
    for (const f of run.findings) out(`- ${f}`);
    out();
  }

  // ---- per workload
  out('## Medians per workload');
  out();
  out('CPU is the proxy process only (sidecar node process or haproxy; utime+stime from /proc/<pid>/stat over the run, divided by the requests). Latency p50/p99 from wrk `--latency` or the bench client (h2load reports only a mean).');
  out();
  const workloads = [...new Set(run.samples.map((s) => s.workload))];
  for (const w of workloads) {
    const variants = [...new Set(run.samples.filter((s) => s.workload === w).map((s) => s.variant))];
    out(`### ${WORKLOAD_TITLES[w]}`);
    out();
    if (w === 'paced') out(`Offered rate ${fmt(run.pacedRate)} requests/s (half the sidecar's keep-alive rate in round 1, at most ${fmt(PACED_RATE_CAP)}/s: above that the node pacing client itself falls behind on 2 shared cores); latency from the request's write to its last byte.`);
    if (w === 'dns') out(run.dnsNote);
    if (w === 'udp-flow') out('One row of req/s is one new flow per second; p50/p99: from the datagram sent to its echo; proxy CPU per flow; records/req: the sidecar\'s allowed `udp` records per answered flow in the window (warm-up flows make it slightly above 1).');
    if (w === 'dlp-upload') out('One request is one 1 MiB upload: proxy CPU µs/req is CPU per MiB; MiB/s is what went up.');
    if (w === 'paced' || w === 'dns' || w === 'udp-flow' || w === 'dlp-upload') out();
    const mib = MIB_WORKLOADS.has(w);
    out(`| variant | req/s | p50 µs | p99 µs | mean µs | proxy CPU µs/req (user + sys) | ${mib ? 'MiB/s | ' : ''}records/req | runs | errors |`);
    out(`| --- | ---: | ---: | ---: | ---: | ---: | ${mib ? '---: | ' : ''}---: | ---: | ---: |`);
    for (const v of variants) {
      const cpu = m(w, v, 'cpuUsPerRequest');
      const cpuText = Number.isFinite(cpu) ? `${fmt(cpu, 1)} (${fmt(m(w, v, 'userUsPerRequest'), 1)} + ${fmt(m(w, v, 'sysUsPerRequest'), 1)})` : '–';
      const records = v.startsWith('sidewall') ? fmt(ratio(m(w, v, 'records'), m(w, v, 'requests')), 2) : '–';
      const errors = run.samples.filter((s) => s.workload === w && s.variant === v).reduce((a, s) => a + s.errors, 0);
      out(`| ${v} | ${fmt(m(w, v, 'rps'))} | ${fmt(m(w, v, 'p50Us'))} | ${fmt(m(w, v, 'p99Us'))} | ${fmt(m(w, v, 'meanUs'))} | ${cpuText} | ${mib ? `${fmt(m(w, v, 'mibPerSecond'))} | ` : ''}${records} | ${count(w, v)} | ${errors} |`);
    }
    out();
  }

  out('## Ratios (medians, same run)');
  out();
  out('| workload | sidewall/direct req/s | sidewall/haproxy-http req/s | sidewall/haproxy-tcp req/s | sidewall/haproxy-http CPU/req | sidewall/haproxy-tcp CPU/req | node-relay/haproxy-tcp req/s | node-relay/haproxy-tcp CPU/req |');
  out('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const w of workloads) {
    if (OWN_SECTION.has(w)) continue;
    const s = (v: VariantName, f: NumericField): number => m(w, v, f);
    out(`| ${w} | ${fmt(ratio(s('sidewall', 'rps'), s('direct', 'rps')), 2)} | ${fmt(ratio(s('sidewall', 'rps'), s('haproxy-http', 'rps')), 2)} | ${fmt(ratio(s('sidewall', 'rps'), s('haproxy-tcp', 'rps')), 2)} | ${fmt(ratio(s('sidewall', 'cpuUsPerRequest'), s('haproxy-http', 'cpuUsPerRequest')), 2)} | ${fmt(ratio(s('sidewall', 'cpuUsPerRequest'), s('haproxy-tcp', 'cpuUsPerRequest')), 2)} | ${fmt(ratio(s('node-relay', 'rps'), s('haproxy-tcp', 'rps')), 2)} | ${fmt(ratio(s('node-relay', 'cpuUsPerRequest'), s('haproxy-tcp', 'cpuUsPerRequest')), 2)} |`);
  }
  out();
  out('For `paced` the req/s ratio is ~1 by construction (a fixed offered rate); its row is about latency, see the goals. `dlp-upload` here is the sidecar without DLP; with DLP below.');
  out();
  writeContentCosts(run, out, m);

  out('## Memory (VmRSS of the proxy process)');
  out();
  out('| proxy | fresh, idle MiB | idle after the load MiB | 1,000 open keep-alive connections MiB | the same after 1 MiB each, at rest MiB | keep-alive req/s, CPU µs/req |');
  out('| --- | ---: | ---: | ---: | ---: | --- |');
  for (const x of run.memory) {
    const cost = x.keepaliveRps !== undefined ? `${fmt(x.keepaliveRps)}, ${fmt(x.keepaliveCpuUs ?? NaN, 1)} (one run)` : x.variant === 'sidewall' ? `${fmt(m('keepalive', 'sidewall', 'rps'))}, ${fmt(m('keepalive', 'sidewall', 'cpuUsPerRequest'), 1)} (medians)` : '';
    out(`| ${x.variant} | ${fmt(x.freshMiB, 1)} | ${fmt(x.afterLoadMiB, 1)} | ${fmt(x.with1000MiB, 1)} | ${fmt(x.bulkIdleMiB ?? NaN, 1)} | ${cost} |`);
  }
  out();
  out('1,000 connections: each sends one `GET /small`, reads the answer and stays open (measured 1 s after the last one answered); in the next column each fetches `/1m` instead (measured 3 s after: a keep-alive pool at rest after bulk, what its read buffers keep). HAProxy is one process serving both frontends, so its rows share the idle figures.');
  out();

  if (run.syscalls.length > 0) {
    out('## Profile: syscalls and CPU split');
    out();
    out('`perf stat` on the proxy process (syscall tracepoints, task-clock, context switches) during a dedicated load run (keep-alive: wrk -t1 -c50; connclose: -c10 with Connection: close; mib: -c4 on /1m); the sidecar rows are the sidecar started with `--cpu-prof` (profiler overhead included). User/system split from /proc over the whole run; per request = per HTTP request (= per connection for connclose, per MiB for mib).');
    out();
    out('| workload | proxy | user µs/req | system µs/req | task-clock µs/req | syscalls/req | context switches/req | top syscalls per request |');
    out('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const s of run.syscalls) {
      out(`| ${s.workload} | ${s.variant} | ${fmt(s.userUsPerRequest, 1)} | ${fmt(s.sysUsPerRequest, 1)} | ${fmt(s.taskClockUsPerRequest, 1)} | ${fmt(s.syscallsPerRequest, 2)} | ${fmt(s.contextSwitchesPerRequest, 3)} | ${s.bySyscall.slice(0, 9).map((c) => `${c.name} ${fmt(c.perRequest, 2)}`).join(', ')} |`);
    }
    out();
    out('CPU per request by thread (/proc/<pid>/task; in node the main thread runs JavaScript and the socket syscalls, the unnamed "node" threads are the libuv pool and V8 helpers):');
    out();
    for (const s of run.syscalls) out(`- ${s.workload}, ${s.variant}: ${s.byThread.map((t) => `${t.thread} ${fmt(t.usPerRequest, 1)} µs`).join(', ')}`);
    out();
  }
  for (const p of run.profiles) {
    const q = p.summary;
    out(`## CPU profile of the sidecar: ${p.workload === 'mib' ? '1 MiB responses (per request = per MiB)' : p.workload}`);
    out();
    out(`\`node --cpu-prof\`: ${fmt(q.busyMs)} ms busy, ${fmt(q.idleMs)} ms idle in the main thread over ${fmt(p.requests)} requests (≈ ${fmt((q.busyMs * 1000) / Math.max(1, p.requests), 1)} µs of main-thread time per request). V8 samples the main thread from a signal, so time inside a syscall is charged to the native function that made it (\`writeBuffer\`: socket writes) — compare with the system time above. Profile: \`${p.file}\`. Self time, share of busy time:`);
    out();
    out('| self ms | % | function | where |');
    out('| ---: | ---: | --- | --- |');
    for (const f of q.functions) out(`| ${fmt(f.selfMs)} | ${fmt(f.percent, 1)} | \`${f.name}\` | ${f.where} |`);
    out();
    out('By file (self time):');
    out();
    out('| self ms | % | file |');
    out('| ---: | ---: | --- |');
    for (const f of q.files) out(`| ${fmt(f.selfMs)} | ${fmt(f.percent, 1)} | ${f.name} |`);
    out();
  }

  out('## Commands');
  out();
  out('Every command the bench ran (TARGET: the peer address for direct and sidewall, 127.0.0.1:<frontend> for HAProxy; D: --duration). Clients and HAProxy run in the pod namespace with `ip netns exec swbn-pod setpriv --reuid U …`.');
  out();
  out('```');
  out(`npm run bench -- ${run.options.quick ? '--quick ' : ''}--rounds ${run.options.rounds} --duration ${run.options.durationS}${run.options.rate ? ` --rate ${run.options.rate}` : ''}`);
  for (const c of run.commands) out(c);
  out('```');
  out();
  const notes = run.samples.filter((s: Sample) => s.note !== '');
  if (notes.length > 0) {
    out('## Run notes');
    out();
    for (const s of notes.slice(0, 20)) out(`- round ${s.round}, ${s.workload}, ${s.variant}: ${s.note.slice(0, 300)}`);
    out();
  }
  // The hand-written analysis (what the numbers mean, what would close the gaps) survives re-runs.
  const previous = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const kept = ANALYSIS.exec(previous)?.[0];
  out(kept ?? `${ANALYSIS_START}\n## What would close the gaps\n\n(not written yet for this machine)\n${ANALYSIS_END}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
}

/** Issue 18's new workloads: what DLP, a new UDP flow and a running capture cost (no goal is set on them). */
function writeContentCosts(run: BenchRun, out: (line?: string) => void, m: (w: WorkloadName, v: VariantName, f: NumericField) => number): void {
  const has = (w: WorkloadName): boolean => run.samples.some((s) => s.workload === w);
  if (!has('dlp-upload') && !has('udp-flow') && !has('capture')) return;
  out('## Costs of DLP, a new UDP flow and a running capture (issue 18)');
  out();
  out('| cost | measured (medians) |');
  out('| --- | --- |');
  if (has('dlp-upload')) {
    const mib = (v: VariantName): number => m('dlp-upload', v, 'mibPerSecond');
    const cpu = (v: VariantName): number => m('dlp-upload', v, 'cpuUsPerRequest');
    out(`| DLP on a 1 MiB upload (6 built-in sensors, block) | ${fmt(ratio(mib('sidewall-dlp'), mib('sidewall')), 2)}× the MiB/s of the sidecar without DLP (${fmt(mib('sidewall-dlp'))} vs ${fmt(mib('sidewall'))} MiB/s), ${fmt(ratio(cpu('sidewall-dlp'), cpu('sidewall')), 2)}× its CPU per MiB (${fmt(cpu('sidewall-dlp') / 1000, 1)} vs ${fmt(cpu('sidewall') / 1000, 1)} ms) |`);
    out(`| the 1 MiB upload against HAProxy tcp and direct | sidecar without DLP ${fmt(ratio(mib('sidewall'), mib('haproxy-tcp')), 2)}×, with DLP ${fmt(ratio(mib('sidewall-dlp'), mib('haproxy-tcp')), 2)}× HAProxy tcp's MiB/s (${fmt(mib('haproxy-tcp'))}; its CPU ${fmt(cpu('haproxy-tcp') / 1000, 2)} ms per MiB); direct ${fmt(mib('direct'))} MiB/s |`);
  }
  if (has('udp-flow')) {
    const f = (v: VariantName, k: NumericField): number => m('udp-flow', v, k);
    out(`| a new UDP flow through the NFQUEUE guard | ${fmt(ratio(f('sidewall', 'rps'), f('direct', 'rps')), 2)}× the flows/s of direct (${fmt(f('sidewall', 'rps'))} vs ${fmt(f('direct', 'rps'))}), sidecar CPU ${fmt(f('sidewall', 'cpuUsPerRequest'), 1)} µs per flow, first answer +${fmt(f('sidewall', 'p50Us') - f('direct', 'p50Us'))} µs p50 / +${fmt(f('sidewall', 'p99Us') - f('direct', 'p99Us'))} µs p99 (20 flows in flight) |`);
  }
  if (has('capture')) {
    const c = (v: VariantName, k: NumericField): number => m('capture', v, k);
    out(`| a capture running on keep-alive requests | ${fmt(ratio(c('sidewall-capture', 'rps'), c('sidewall', 'rps')), 2)}× the req/s (${fmt(c('sidewall-capture', 'rps'))} vs ${fmt(c('sidewall', 'rps'))}), ${fmt(ratio(c('sidewall-capture', 'cpuUsPerRequest'), c('sidewall', 'cpuUsPerRequest')), 2)}× the CPU per request (${fmt(c('sidewall-capture', 'cpuUsPerRequest'), 1)} vs ${fmt(c('sidewall', 'cpuUsPerRequest'), 1)} µs) of the same sidecar without |`);
  }
  out();
}

const ANALYSIS_START = '<!-- analysis:start (kept by npm run bench) -->';
const ANALYSIS_END = '<!-- analysis:end -->';
const ANALYSIS = /<!-- analysis:start[^>]*-->[\s\S]*?<!-- analysis:end -->/;
