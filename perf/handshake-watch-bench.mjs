// Micro A/B: HandshakeEnforcer.onData on watched client chunks (TLS tunnel watcher on, no finding),
// two built checkouts in interleaved rounds: node perf/handshake-watch-bench.mjs BASE_CHECKOUT NEW_CHECKOUT
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
const [baseDir, newDir] = process.argv.slice(2);
if (newDir === undefined) { process.stderr.write('usage: node perf/handshake-watch-bench.mjs BASE_CHECKOUT NEW_CHECKOUT\n'); process.exit(2); }
const builds = { base: resolve(baseDir, 'dist'), new: resolve(newDir, 'dist') };
const N = 2_000_000, ROUNDS = 9;
const decision = { action: 'allow', ruleId: 'r', policy: 'p' };
function make(mod) {
  const tunnels = { onTlsHello() {}, onTlsServerHello() {}, onTlsBytes() { return null; }, tlsWatching: true };
  const ctx = { facts: { direction: 'egress', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.0.0.2', port: 443 } }, policy: () => ({ decide: () => decision }), tunnels };
  const e = new mod.HandshakeEnforcer({ ctx, protocol: 'tls' }, (ev) => (ev.type === 'tls.client-hello' ? { facts: {}, record: {} } : null));
  e.onData('client', Buffer.alloc(10), 0, [{ type: 'tls.client-hello', side: 'client' }, { type: 'opaque', side: 'client', start: 0 }, { type: 'opaque', side: 'server', start: 0 }]);
  return e;
}
const mods = {};
for (const [k, d] of Object.entries(builds)) mods[k] = await import(pathToFileURL(`${d}/src/enforcement/handshake-enforcer.js`).href);
const chunk = Buffer.alloc(1400);
const res = { base: [], new: [] };
let sink = 0;
for (let r = 0; r < ROUNDS; r++) for (const k of r % 2 ? ['new', 'base'] : ['base', 'new']) {
  const e = make(mods[k]);
  let start = 10;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) { const ops = e.onData('client', chunk, start, []); start += 1400; sink += ops.length; }
  res[k].push(Number(process.hrtime.bigint() - t0) / N);
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const k of ['base', 'new']) console.log(k, 'ns/chunk median', med(res[k]).toFixed(1), 'all', res[k].map((x) => x.toFixed(1)).join(' '));
if (sink === 0) throw new Error("no ops");
