// Start time A/B (as root): `sidewall proxy` from spawn to its 'sidewall proxy ready' log line (in
// a network namespace of its own, with demo/sidecar-config.yaml) and `sidewall policy check` of
// demo/cluster-rules.yaml, for two checkouts, interleaved; prints medians and minima in ms.
//   node perf/start-bench.mjs BASE_CHECKOUT NEW_CHECKOUT [ROUNDS=10]
// Both checkouts built (`npm run build`). A plain .mjs: it runs the two builds, not this one.
import { execFileSync, spawn } from 'node:child_process';

const [base, next, roundsArg] = process.argv.slice(2);
if (base === undefined || next === undefined) {
  process.stderr.write('usage: node perf/start-bench.mjs BASE_CHECKOUT NEW_CHECKOUT [ROUNDS]\n');
  process.exit(2);
}
const rounds = Number(roundsArg ?? 10);
const netns = `swstart${process.pid}`;
execFileSync('ip', ['netns', 'add', netns]);
execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);

/** Milliseconds from spawn to exit, or to the first stderr text `until` (then SIGTERM). */
function timed(args, until) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let took;
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (until !== undefined && took === undefined && stderr.includes(until)) {
        took = performance.now() - t0;
        child.kill('SIGTERM');
      }
    });
    child.on('exit', () => {
      if (until === undefined) resolve(performance.now() - t0);
      else if (took !== undefined) resolve(took);
      else reject(new Error(`${args.join(' ')} exited before '${until}':\n${stderr}`));
    });
  });
}

const results = new Map([[base, { start: [], check: [] }], [next, { start: [], check: [] }]]);
try {
  for (let i = 0; i < rounds; i++) {
    for (const dir of i % 2 === 0 ? [base, next] : [next, base]) {
      const r = results.get(dir);
      r.start.push(await timed(['ip', 'netns', 'exec', netns, process.execPath, `${dir}/bin/sidewall.js`, 'proxy', '--config', `${dir}/demo/sidecar-config.yaml`], 'sidewall proxy ready'));
      r.check.push(await timed([process.execPath, `${dir}/bin/sidewall.js`, 'policy', 'check', '--tier', 'cluster', `${dir}/demo/cluster-rules.yaml`]));
    }
  }
} finally {
  execFileSync('ip', ['netns', 'del', netns]);
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const [dir, r] of results) {
  process.stdout.write(`${dir}: proxy start median ${median(r.start).toFixed(0)} min ${Math.min(...r.start).toFixed(0)}; policy check median ${median(r.check).toFixed(0)} min ${Math.min(...r.check).toFixed(0)} (ms, ${rounds} rounds)\n`);
}
