// ICMP and UDP-53 tunnels end to end with Debian's ptunnel-ng 1.42: the client runs in the pod as
// container root (NET_RAW kept, as a container's default capabilities leave it), the proxy in
// the peer, in front of a logging echo service (socat -v writes every byte it relays). ICMP echo
// is allowed by a rule, so only tunnel detection stands between the two; an app connects to the
// client's TCP port and sends a tagged line. The proof is the service's own log: under
// `tunnels: block` the tag never reaches it, under `alert` it does (and comes back through the
// tunnel), with an alert record either way. Ordinary pings (iputils, IPv4 and IPv6, default,
// large, `-p` patterns, 0.01 s apart) run first in each mode: answered, no alert.
//   ptunnel-ng, default magic: found by its framing at the first echo request
//   ptunnel-ng -m 0x5eed1234 (another magic; a fresh sidecar, as the pair found before stays
//     flagged for 300 s): found by its framing
//   ptunnel-ng --udp (its framing to UDP port 53): not DNS, never forwarded, an alert
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, Topology, until } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'pt', subnet: 186 });
const peer = topo.peerIp;
const SERVICE = 7000;
/** Root as a container runs it: the default capability set (NET_RAW kept, no NET_ADMIN). */
const CONTAINER_ROOT = ['--bounding-set', '-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap'];
let serviceLog = '';

const config = (tunnels: string) => `mode: protect
defaultAction: allow
tunnels: ${tunnels}
rules:
  - {id: icmp-out, action: allow, protocol: icmp, direction: egress}
`;
const tunnelOf = (r: FlowRecordLine) => (r.tunnel ?? {}) as { kind?: string; blocked?: boolean; evidence?: string; confidence?: number; detected?: string };

beforeAll(async () => {
  topo.create();
  // The echo service ptunnel-ng's proxy dials for the client (loopback of the peer).
  const service = topo.start(topo.peerNs, 'socat', ['-v', `TCP-LISTEN:${SERVICE},bind=127.0.0.1,reuseaddr,fork`, 'EXEC:cat']);
  service.stderr?.on('data', (d: Buffer) => (serviceLog += d.toString('latin1')));
  // Three proxies: ICMP with the default magic, ICMP with another, UDP 53. Each reads every echo
  // request on its raw socket and answers only its own magic. Their logs go to files (a pipe
  // nobody reads would block them), shown when a case fails.
  for (const [i, extra] of [[], ['-m', '0x5eed1234'], ['--udp']].entries()) topo.start(topo.peerNs, 'ptunnel-ng', ['-v', '4', `-o${join(topo.dir, `proxy-${i}.log`)}`, `-r127.0.0.1`, `-R${SERVICE}`, ...extra]);
  await topo.listening(topo.peerNs, [SERVICE]);
  await until(() => topo.exec(topo.peerNs, 'ss', ['-uan']).stdout.includes(':53 '), 'ptunnel-ng --udp on port 53');
  await until(() => (topo.exec(topo.peerNs, 'ss', ['-wan']).stdout.match(/:1 /g) ?? []).length >= 2, 'two ptunnel-ng raw ICMP sockets');
  topo.setPodResolver(peer);
  new Sidecar(topo).init(['--redirect-dns']);
}, 60_000);

afterAll(async () => {
  await topo.destroy();
});

let clientPort = 2300;

/**
 * Starts a ptunnel-ng client in the pod (container root) listening on a fresh TCP port, sends a
 * tagged line through it from an app (uid 1000), holding the connection open `holdS` seconds for
 * the echo; resolves with what came back.
 */
async function throughTunnel(tag: string, args: string[], holdS = 4, sidecar?: Sidecar): Promise<{ echoed: string; logs: string }> {
  const port = clientPort++;
  const log = join(topo.dir, `client-${port}.log`);
  const client = topo.start(topo.podNs, 'setpriv', [...CONTAINER_ROOT, 'ptunnel-ng', '-v', '4', `-o${log}`, `-l${port}`, `-r127.0.0.1`, `-R${SERVICE}`, ...args]);
  try {
    await topo.listening(topo.podNs, [port]);
    // The line goes 1 s after the connection: the client's first echo request (its session
    // request) must have its verdict before the next one leaves. A second request of a new ICMP
    // flow sent while the first waits in the queue makes a conntrack entry of its own, and the
    // kernel drops it when it clashes with the first's (README, non-TCP misses); ptunnel-ng
    // 1.42 never recovers from losing its first data packet that way.
    const r = await topo.execAsync(topo.podNs, 'sh', ['-c', `(sleep 1; printf '%s\\n' '${tag}'; sleep ${holdS}) | timeout ${holdS + 5} socat -t 2 - TCP:127.0.0.1:${port}`], { uid: APP_UID });
    const diag = sidecar === undefined ? '' : `\nrecords: ${sidecar.records.filter((x) => x.protocol === 'icmp').map((x) => JSON.stringify(x)).join('\n')}\nmangle: ${topo.exec(topo.podNs, 'iptables-save', ['-c', '-t', 'mangle']).stdout}\nsidecar: ${sidecar.stderr.slice(-3000)}`;
    return { echoed: r.stdout, logs: `${r.stderr}${diag}\nclient: ${tail(log)}\n${[0, 1, 2].map((i) => `proxy ${i}: ${tail(join(topo.dir, `proxy-${i}.log`))}`).join('\n')}` };
  } finally {
    client.kill('SIGKILL');
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-12).join('\n');
  } catch {
    return '(none)';
  }
}

for (const mode of ['block', 'alert'] as const) {
  describe(`ptunnel-ng under tunnels: ${mode}`, () => {
    const sidecar = new Sidecar(topo);
    const blocked = mode === 'block';
    const icmpAlerts = () => sidecar.records.filter((r) => r.type === 'alert' && tunnelOf(r).kind === 'icmp-tunnel');

    beforeAll(async () => {
      await sidecar.start(config(mode));
    }, 30_000);
    afterAll(async () => {
      await sidecar.teardown(); // every accepted connection ended in exactly one final record
    });

    it('ordinary pings are answered and raise no alert (iputils: default, 1400 bytes, -p patterns, IPv6, 100 at 0.01 s)', async () => {
      const ping = (args: string[], uid?: number) => topo.execAsync(topo.podNs, 'ping', ['-q', '-W', '2', ...args], uid === undefined ? {} : { uid });
      const runs = await Promise.all([
        ping(['-c', '5', '-i', '0.2', peer], APP_UID),
        ping(['-c', '5', '-i', '0.2', '-s', '1400', peer], APP_UID),
        ping(['-c', '5', '-i', '0.2', '-p', '5eedc0ffee', peer], APP_UID),
        ping(['-6', '-c', '5', '-i', '0.2', '-s', '200', topo.peerIp6], APP_UID),
        ping(['-c', '100', '-i', '0.01', '-s', '512', peer]), // root: intervals below 0.2 s
      ]);
      // Every request answered: no echo message of these flows was dropped. The flood may lose a
      // few at its start: requests sent while the first one waits for its verdict each make a
      // conntrack entry of their own, and the kernel drops those that clash with the first's
      // when it is confirmed (ICMP has no clash resolution) — first-packet behaviour, not the
      // tunnel check, so at least 90 of its 100 (generous: the machine is shared).
      for (const r of runs.slice(0, 4)) expect(r.stdout, r.stdout + r.stderr).toMatch(/(\d+) packets transmitted, \1 received/);
      expect(Number(/100 packets transmitted, (\d+) received/.exec(runs[4]!.stdout)?.[1] ?? 0), runs[4]!.stdout).toBeGreaterThanOrEqual(90);
      await sidecar.waitForRecord((r) => r.type === 'connection' && r.protocol === 'icmp' && r.ruleId === 'icmp-out' && r.dst.ip === topo.peerIp6);
      expect(icmpAlerts()).toEqual([]);
    }, 40_000);

    it(`a TCP stream over ICMP echo (default magic) is ${blocked ? 'cut before the proxy dials the service' : 'let through'} with an alert`, async () => {
      const tag = `ptunnel-${mode}-${Date.now()}`;
      const { echoed, logs } = await throughTunnel(tag, [`-p${peer}`], 4, sidecar);
      const alert = await sidecar.waitForRecord((r) => r.type === 'alert' && tunnelOf(r).kind === 'icmp-tunnel' && r.dst.ip === peer, 10_000);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'icmp-tunnel', blocked, detected: 'ptunnel', confidence: 0.95 });
      expect(tunnelOf(alert).evidence).toContain("ptunnel-ng's default magic 0xdeadc0de");
      expect(alert).toMatchObject({ protocol: 'icmp', direction: 'egress', ruleId: 'tunnel:icmp-tunnel', verdict: blocked ? 'denied' : 'allowed' });
      if (blocked) {
        expect(echoed).not.toContain(tag);
        expect(serviceLog).not.toContain(tag);
        // The pair stays refused: an ordinary ping to the same host now fails too (fail closed).
        const r = await topo.execAsync(topo.podNs, 'ping', ['-q', '-c', '1', '-W', '1', peer], { uid: APP_UID });
        expect(r.stdout).toContain('1 packets transmitted, 0 received');
      } else {
        expect(echoed, logs).toContain(tag); // there and back through the tunnel
        expect(serviceLog).toContain(tag);
      }
      expect(icmpAlerts().filter((r) => r.dst.ip === peer)).toHaveLength(1); // once per pair, not per packet
    }, 40_000);

    it(`ptunnel-ng with another magic (-m 0x5eed1234) is ${blocked ? 'cut' : 'let through'} with an alert, found by its framing`, async () => {
      await sidecar.teardown();
      await sidecar.start(config(mode));
      const tag = `ptunnel-magic-${mode}-${Date.now()}`;
      const { echoed, logs } = await throughTunnel(tag, [`-p${peer}`, '-m', '0x5eed1234']);
      const alert = await sidecar.waitForRecord((r) => r.type === 'alert' && tunnelOf(r).kind === 'icmp-tunnel' && r.dst.ip === peer, 10_000);
      expect(tunnelOf(alert)).toMatchObject({ blocked, detected: 'ptunnel', confidence: 0.9 });
      expect(tunnelOf(alert).evidence).toContain('magic 0x5eed1234');
      if (blocked) expect(serviceLog).not.toContain(tag);
      else {
        expect(echoed, logs).toContain(tag);
        expect(serviceLog).toContain(tag);
      }
    }, 40_000);

    it(`ptunnel-ng --udp (its framing to UDP port 53) never reaches the proxy: a protocol-mismatch alert${blocked ? ', no answer' : ''}`, async () => {
      const tag = `ptunnel-udp-${mode}-${Date.now()}`;
      const { echoed, logs } = await throughTunnel(tag, [`-p${peer}`, '--udp'], 3);
      const alert = await sidecar.waitForRecord((r) => r.type === 'alert' && tunnelOf(r).kind === 'protocol-mismatch' && r.protocol === 'dns', 10_000);
      expect(tunnelOf(alert)).toMatchObject({ blocked });
      expect(tunnelOf(alert).evidence).toContain('UDP datagram to port 53 that is not a DNS message');
      expect(echoed, logs).not.toContain(tag);
      expect(serviceLog).not.toContain(tag);
    }, 40_000);
  });
}
