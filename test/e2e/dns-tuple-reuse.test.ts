// The DNS proxy's upstream flows are its own (security): the sidecar asks the real resolver from a
// fresh UDP socket per query and closes it after the answer, and conntrack keeps that flow for
// 30 s. An app process — no capability needed — can read the proxy's source port in
// /proc/net/udp, bind it once freed and send to the same resolver: the packet belongs to an
// ESTABLISHED flow, so the nat table never redirects it to the DNS listener and the non-TCP guard
// let it pass (DNS policy, tunnel detection and records bypassed). The guard now marks the
// proxy's flows in conntrack (PROXY_FLOW_MARK) and drops anyone else's packets on them.
// Proof from the resolver's own log (tools/dns-logging-resolver.py): it sees the app's slow query
// through the sidecar, never the reuse query.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'dq', subnet: 219 });
const sidecar = new Sidecar(topo);
let resolverLog = '';

beforeAll(async () => {
  topo.create();
  topo.setPodResolver(topo.peerIp);
  const resolver = topo.start(topo.peerNs, '/usr/bin/python3', [join(TOOLS, 'dns-logging-resolver.py'), topo.peerIp]);
  const ready = new Promise<void>((resolve) => resolver.stdout?.on('data', (d: Buffer) => ((resolverLog += d.toString()), resolverLog.includes('ready') && resolve())));
  await ready;
  new Sidecar(topo).init(['--redirect-dns']);
  await sidecar.start('mode: protect\ndefaultAction: allow\n');
}, 60_000);

afterAll(async () => {
  await sidecar.teardown();
  await topo.destroy();
});

describe('the DNS proxy upstream flows', () => {
  it("an app that binds the proxy's freed upstream port cannot send to the resolver on the proxy's flow", async () => {
    const tag = `t${Date.now()}`;
    const r = await topo.execAsync(topo.podNs, '/usr/bin/python3', [join(TOOLS, 'dns-tuple-reuse.py'), topo.peerIp, tag], { uid: APP_UID });
    const result = JSON.parse(r.stdout.trim() || '{}') as { seen?: number[]; outcome?: Record<string, string> };
    const context = () => `app: ${r.stdout} ${r.stderr}\nresolver: ${resolverLog}`;
    // The attempt was real: the app's slow query reached the resolver through the sidecar, and
    // the app saw the proxy's upstream port and bound it after the proxy let it go.
    expect(resolverLog, context()).toContain(`slow-${tag}.example.test`);
    expect(result.seen?.length ?? 0, context()).toBeGreaterThan(0);
    const outcomes = Object.values(result.outcome ?? {});
    expect(outcomes.length, context()).toBeGreaterThan(0);
    for (const o of outcomes) expect(['refused', 'no-answer'], context()).toContain(o);
    // The resolver's own log: the reuse query never arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resolverLog, context()).not.toContain(`reuse-${tag}`);
    // The sidecar's record of the slow query is there (the DNS path still works).
    expect(sidecar.records.some((x) => JSON.stringify(x).includes(`slow-${tag}`)), context()).toBe(true);
  }, 60_000);
});
