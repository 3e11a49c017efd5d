// Tunnels end to end: real tunnelling tools from Debian through the sidecar, each cut under
// `tunnels: block` and passing with an alert record under `tunnels: alert`:
//   ssh to an sshd listening on port 80 (declared http)
//   ssh through an HTTP CONNECT proxy (tinyproxy in the peer, corkscrew as ProxyCommand)
//   httptunnel (hts in the peer forwarding to an echo server through a logging relay, htc in
//   the pod: the relay's log says whether hts ever opened the tunnel to the service)
//   iodine over DNS (iodined in the peer is the authoritative server of t.tun.test and the
//   pod's resolver; the sidecar's DNS listener sees every query)
//   a UDP datagram to port 53 that is not DNS (a logger on another peer address's port 53 is
//   the proof of what got through)
//   ssh inside TLS (openssl s_client as ProxyCommand with an ordinary server name → stunnel4 in
//   the peer → sshd; sshd's own log says whether a session was ever authenticated)
//   OpenVPN over TCP (openvpn in the pod; a logger on the peer's 1194 is the proof) and
//   shadowsocks (ss-tunnel in the pod, ss-server in the peer: its own log says whether it ever
//   opened a session)
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, DIRECT_UID, NODE, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'tn', subnet: 70 });
const peer = topo.peerIp;
const TUNNEL_DOMAIN = 't.tun.test';
const IODINE_NET = '10.99.70.1';
/** A second peer address whose UDP port 53 logs what it receives (iodined holds the first). */
const UDP53_LOGGER = '10.77.70.53';
let udp53Log = '';
let openvpnLog = '';
let sshdLog = '';
let ssServerLog = '';
/** What the service behind hts saw: socat -d -d logs each connection hts opens to it. */
let htsServiceLog = '';
const SS_ARGS = ['-k', 'sidewall-test', '-m', 'chacha20-ietf-poly1305'];

const config = (tunnels: string) => `mode: protect\ndefaultAction: allow\ntunnels: ${tunnels}\nports:\n  "80": http\n  "8080": http\n  "8081": http\n`;
const tunnelOf = (r: FlowRecordLine) => (r.tunnel ?? {}) as { kind?: string; blocked?: boolean; evidence?: string; confidence?: number };
const alertOf = (sidecar: Sidecar, kinds: string[]) => sidecar.waitForRecord((r) => r.type === 'alert' && kinds.includes(tunnelOf(r).kind ?? ''), 15_000);

let clientKey = '';
let CERT = '';
let KEY = '';

function ssh(args: string[], timeoutS = 10) {
  return topo.execAsync(topo.podNs, 'timeout', [String(timeoutS), 'ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', '-i', clientKey, ...args], { uid: APP_UID });
}

beforeAll(async () => {
  topo.create();
  const dir = topo.dir;
  // sshd on 80 (an HTTP port) and 22 (for the CONNECT proxy), with keys of its own.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  topo.exec(topo.peerNs, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  topo.exec(topo.peerNs, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  clientKey = join(dir, 'client_key');
  // A certificate for the OpenVPN client to present (the logger never checks it).
  CERT = join(dir, 'ovpn-cert.pem');
  KEY = join(dir, 'ovpn-key.pem');
  topo.exec(topo.peerNs, 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', KEY, '-out', CERT, '-days', '1', '-subj', '/CN=sidewall-test']);
  chmodSync(KEY, 0o644);
  chownSync(clientKey, APP_UID, APP_UID);
  chmodSync(clientKey, 0o600);
  writeFileSync(join(dir, 'authorized_keys'), topo.exec(topo.peerNs, 'cat', [`${clientKey}.pub`]).stdout);
  const sshdConfig = topo.writeFile('sshd_config', [
    'Port 80', 'Port 22', 'ListenAddress 0.0.0.0', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PrintMotd no', 'LogLevel VERBOSE', '',
  ].join('\n'));
  const sshd = topo.start(topo.peerNs, '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig]);
  sshd.stderr?.on('data', (d: Buffer) => (sshdLog += d.toString()));
  // tinyproxy on 8080: an ordinary forward proxy that allows CONNECT to any port.
  writeFileSync(join(dir, 'tinyproxy.log'), '');
  chmodSync(join(dir, 'tinyproxy.log'), 0o666);
  const tinyproxyConfig = topo.writeFile('tinyproxy.conf', ['User nobody', 'Group nogroup', 'Port 8080', 'Listen 0.0.0.0', 'Timeout 60', `LogFile "${join(dir, 'tinyproxy.log')}"`, 'LogLevel Info', 'MaxClients 20', 'Allow 10.77.70.0/24', ''].join('\n'));
  topo.start(topo.peerNs, 'tinyproxy', ['-d', '-c', tinyproxyConfig]);
  // hts on 8081 forwards to an echo server; htc in the pod listens on 127.0.0.1:2222.
  await topo.peer(topo.peerNs, 'echo', '127.0.0.1', 7000);
  const htsRelay = topo.start(topo.peerNs, 'socat', ['-d', '-d', 'TCP-LISTEN:7001,bind=127.0.0.1,fork,reuseaddr', 'TCP:127.0.0.1:7000']);
  htsRelay.stderr?.on('data', (d: Buffer) => (htsServiceLog += d.toString()));
  topo.start(topo.peerNs, 'hts', ['-w', '-F', '127.0.0.1:7001', '8081']);
  // iodined: authoritative for t.tun.test; the pod resolves through the peer.
  const iodined = topo.start(topo.peerNs, 'iodined', ['-f', '-c', '-P', 'sidewall-test', '-l', peer, `${IODINE_NET}/24`, TUNNEL_DOMAIN]);
  iodined.stderr?.resume();
  topo.setPodResolver(peer);
  topo.exec(topo.peerNs, 'ip', ['addr', 'add', `${UDP53_LOGGER}/32`, 'dev', 'lo']); // answered over the veth (ARP answers for any local address)
  const logger = topo.start(topo.peerNs, 'socat', ['-u', `UDP4-RECV:53,bind=${UDP53_LOGGER}`, 'STDOUT']);
  logger.stdout?.on('data', (d: Buffer) => (udp53Log += d.toString('latin1')));
  // OpenVPN's far end: a logger of every byte on 1194 (the hard reset is all a server would get).
  topo.start(topo.peerNs, 'socat', ['-u', 'TCP-LISTEN:1194,fork,reuseaddr', 'STDOUT']).stdout?.on('data', (d: Buffer) => (openvpnLog += d.toString('hex')));
  // stunnel on 8443: TLS in front of sshd (the certificate is any: s_client does not check it).
  const stunnelConfig = topo.writeFile('stunnel.conf', ['foreground = yes', 'pid =', '[ssh]', 'accept = 0.0.0.0:8443', 'connect = 127.0.0.1:22', `cert = ${CERT}`, `key = ${KEY}`, ''].join('\n'));
  topo.start(topo.peerNs, 'stunnel4', [stunnelConfig]);
  // shadowsocks: ss-server on 8388 in front of the echo server; -v logs each session it decrypts.
  const ssServer = topo.start(topo.peerNs, 'ss-server', ['-s', '0.0.0.0', '-p', '8388', ...SS_ARGS, '-v']);
  ssServer.stdout?.on('data', (d: Buffer) => (ssServerLog += d.toString()));
  ssServer.stderr?.on('data', (d: Buffer) => (ssServerLog += d.toString()));
  // sshd, tinyproxy, hts, the OpenVPN logger, ss-server and stunnel listen.
  await topo.listening(topo.peerNs, [80, 8080, 8081, 1194, 8388, 8443]);
  expect(sshd.exitCode).toBeNull();
  new Sidecar(topo).init(['--redirect-dns']);
  topo.exemptDirectUid();
}, 90_000);

afterAll(async () => {
  await topo.destroy();
});

/** Runs htc in the pod (as the app) and pushes random bytes through it to the echo server. */
async function throughHttptunnel(): Promise<{ status: number | null; stdout: string }> {
  const htc = topo.start(topo.podNs, 'htc', ['-w', '-F', '2222', `${peer}:8081`], { uid: APP_UID });
  try {
    await topo.listening(topo.podNs, [2222]);
    // The hop from the app to htc on localhost is not the tunnel: it runs as the exempted uid so
    // the sidecar only sees htc's HTTP.
    return await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'echo-roundtrip.mjs'), '127.0.0.1', '2222', '2048', '10000', '4'], { uid: DIRECT_UID });
  } finally {
    htc.kill('SIGKILL');
  }
}

/** Runs the iodine client in the pod (root: it creates a tun device) until setup completes or `ms` pass. */
async function iodine(ms: number): Promise<{ connected: boolean; output: string }> {
  const child = topo.start(topo.podNs, 'iodine', ['-f', '-r', '-P', 'sidewall-test', TUNNEL_DOMAIN]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const connected = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const check = () => {
      if (output.includes('Connection setup complete')) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(output.includes('Connection setup complete'));
    });
  });
  child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 200));
  return { connected, output };
}

for (const mode of ['block', 'alert'] as const) {
  describe(`tunnels: ${mode}`, () => {
    const sidecar = new Sidecar(topo);
    const blocked = mode === 'block';

    beforeAll(async () => {
      await sidecar.start(config(mode));
    }, 30_000);
    afterAll(async () => {
      await sidecar.teardown(); // every accepted connection ended in exactly one final record
    });

    it(`ssh to an sshd on port 80 (declared http) is ${blocked ? 'cut' : 'let through'} with an alert`, async () => {
      const r = await ssh(['-p', '80', `root@${peer}`, 'echo through-ssh']);
      if (blocked) expect(r.status).not.toBe(0);
      else expect(r.stdout.trim()).toBe('through-ssh');
      const alert = await alertOf(sidecar, ['ssh']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'ssh', blocked });
      expect(tunnelOf(alert).evidence).toContain('SSH-2.0-');
      expect(alert.dst).toMatchObject({ ip: peer, port: 80 });
    });

    it(`ssh through an HTTP CONNECT proxy (tinyproxy + corkscrew) is ${blocked ? 'cut' : 'let through'} with an alert`, async () => {
      const r = await ssh(['-o', `ProxyCommand=corkscrew ${peer} 8080 %h %p`, '-p', '22', `root@${peer}`, 'echo through-proxy']);
      if (blocked) expect(r.status).not.toBe(0);
      else expect(r.stdout.trim()).toBe('through-proxy');
      const alert = await alertOf(sidecar, ['http-connect']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'http-connect', blocked });
      expect(tunnelOf(alert).evidence).toContain(`CONNECT ${peer}:22`);
      if (!blocked) {
        // Let through, the stream inside the CONNECT is seen to be SSH too.
        const inner = await alertOf(sidecar, ['ssh']);
        expect(sidecar.records.some((x) => x.type === 'alert' && tunnelOf(x).kind === 'ssh' && x.dst.port === 8080)).toBe(true);
        expect(tunnelOf(inner).blocked).toBe(false);
      }
    });

    it(`httptunnel (htc → hts) is ${blocked ? 'refused at its first request head' : 'let through'} with an alert`, async () => {
      const opened = (htsServiceLog.match(/accepting connection/g) ?? []).length;
      const r = await throughHttptunnel();
      const alert = await alertOf(sidecar, ['http-carrier']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'http-carrier', blocked });
      expect(alert.dst).toMatchObject({ ip: peer, port: 8081 });
      // The first finding is htc's first request head (its fixed target), not a body.
      expect(tunnelOf(alert).evidence).toMatch(/(GET|POST) \/index\.html\?crap=\d+ is httptunnel's request/);
      if (blocked) {
        expect(r.stdout).toMatch(/^failed/);
        // hts never opened the tunnel: the service behind it saw no connection. (Before, the
        // first round went through and the tunnel was cut only once hts answered.)
        expect((htsServiceLog.match(/accepting connection/g) ?? []).length, htsServiceLog).toBe(opened);
        // No response of hts reached htc: every request to it was refused at its head.
        const answered = sidecar.records.filter((x) => x.type === 'request' && x.dst.port === 8081 && (x.l7 as { status?: number } | undefined)?.status === 200);
        expect(answered).toEqual([]);
      } else {
        expect(r.stdout.trim()).toBe('ok 8192');
        expect((htsServiceLog.match(/accepting connection/g) ?? []).length, htsServiceLog).toBeGreaterThan(opened);
      }
    }, 30_000);

    it(`iodine over DNS is ${blocked ? 'refused' : 'let through'} with an alert`, async () => {
      let r = await iodine(blocked ? 15_000 : 20_000);
      // iodine sometimes quits at start while the previous client's tun device is going away:
      // one more try in alert mode, with both outputs in the message.
      if (!blocked && !r.connected) {
        const again = await iodine(20_000);
        r = { connected: again.connected, output: `${r.output}\n--- retry ---\n${again.output}` };
      }
      if (blocked) expect(r.connected, r.output).toBe(false);
      // Setup complete means the handshake, login, codec switches and fragment-size probing
      // (dozens of NULL queries carrying data both ways) went through the sidecar.
      else expect(r.connected, r.output).toBe(true);
      const alert = await alertOf(sidecar, ['dns-tunnel']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'dns-tunnel', blocked });
      expect(tunnelOf(alert).evidence).toContain('tun.test');
    }, 60_000);

    it(`ssh inside TLS (s_client → stunnel → sshd) is ${blocked ? 'cut before a session opens' : 'let through'} with an alert`, async () => {
      // sshd -e logs "Starting session: command …" when a channel runs a command: the session.
      const sessions = (sshdLog.match(/Starting session/g) ?? []).length;
      const r = await ssh(['-o', `ProxyCommand=openssl s_client -quiet -connect ${peer}:8443 -servername www.example.test`, '-p', '22', `root@${peer}`, 'echo through-tls']);
      const alert = await sidecar.waitForRecord((x) => x.type === 'alert' && tunnelOf(x).kind === 'ssh' && x.dst.port === 8443, 15_000);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'ssh', blocked });
      expect(tunnelOf(alert).evidence).toContain('inside TLS');
      if (blocked) {
        expect(r.stdout).not.toContain('through-tls');
        expect((sshdLog.match(/Starting session/g) ?? []).length, sshdLog).toBe(sessions);
      } else {
        expect(r.stdout.trim()).toBe('through-tls');
        expect((sshdLog.match(/Starting session/g) ?? []).length, sshdLog).toBeGreaterThan(sessions);
      }
    }, 30_000);

    it(`OpenVPN over TCP is ${blocked ? 'cut before its first packet reaches the server' : 'let through'} with an alert`, async () => {
      const before = openvpnLog.length;
      const client = topo.start(topo.podNs, 'openvpn', ['--client', '--proto', 'tcp-client', '--remote', peer, '1194', '--dev', 'null', '--nobind', '--ca', CERT, '--cert', CERT, '--key', KEY, '--verb', '0', '--connect-retry-max', '1'], { uid: APP_UID });
      try {
        const alert = await alertOf(sidecar, ['vpn']);
        expect(tunnelOf(alert)).toMatchObject({ kind: 'vpn', blocked });
        expect(tunnelOf(alert).evidence).toContain('OpenVPN');
        expect(alert.dst).toMatchObject({ ip: peer, port: 1194 });
        if (!blocked) {
          for (let i = 0; i < 50 && openvpnLog.length === before; i++) await new Promise((res) => setTimeout(res, 50));
          expect(openvpnLog.slice(before)).toMatch(/^000e38|^00..38/);
        } else {
          // The connection is cut; a moment for anything that would have leaked to arrive.
          await sidecar.waitForRecord((r) => r.type === 'connection' && r.dst.port === 1194, 10_000);
          expect(openvpnLog.slice(before)).toBe('');
        }
      } finally {
        client.kill('SIGKILL');
      }
    }, 30_000);

    it(`shadowsocks (ss-tunnel → ss-server) is ${blocked ? 'cut before the server opens a session' : 'let through'} with an alert`, async () => {
      const sessions = (ssServerLog.match(/connect to/g) ?? []).length;
      const logFrom = ssServerLog.length;
      const tunnel = topo.start(topo.podNs, 'ss-tunnel', ['-s', peer, '-p', '8388', '-l', '2224', '-L', '127.0.0.1:7000', ...SS_ARGS], { uid: APP_UID });
      try {
        await topo.listening(topo.podNs, [2224]);
        // The app → ss-tunnel hop on localhost is not the tunnel (the exempted uid, as for htc).
        const r = await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'echo-roundtrip.mjs'), '127.0.0.1', '2224', '2048', '10000', '4'], { uid: DIRECT_UID });
        // What a failure needs to be read (it failed once in a loaded CI run, never since in 15
        // runs): the client's outcome, the server's log since, and the sidecar's last records.
        const context = () => `client: ${r.stdout.trim()} ${r.stderr.trim()}\nss-server since: ${ssServerLog.slice(logFrom)}\nrecords: ${JSON.stringify(sidecar.records.slice(-6))}`;
        const alert = await alertOf(sidecar, ['encrypted-stream']).catch((e: Error) => {
          throw new Error(`${e.message}\n${context()}`);
        });
        expect(tunnelOf(alert), context()).toMatchObject({ kind: 'encrypted-stream', blocked });
        expect(alert.dst, context()).toMatchObject({ ip: peer, port: 8388 });
        if (blocked) {
          expect(r.stdout, context()).toMatch(/^failed/);
          expect((ssServerLog.match(/connect to/g) ?? []).length, context()).toBe(sessions);
        } else {
          expect(r.stdout.trim(), context()).toBe('ok 8192');
          expect((ssServerLog.match(/connect to/g) ?? []).length, context()).toBeGreaterThan(sessions);
        }
      } finally {
        tunnel.kill('SIGKILL');
      }
    }, 30_000);

    it(`a UDP datagram to port 53 that is not DNS is ${blocked ? 'dropped unanswered' : 'answered FORMERR'} with an alert, and never reaches the server`, async () => {
      const tag = `not-dns-${mode}-${Date.now()}`;
      const r = await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'seal-udp.mjs'), 'send', UDP53_LOGGER, '53', `PTNG${tag}`, '', '1500'], { uid: APP_UID });
      if (blocked) expect(r.stdout.trim()).toBe('no-answer');
      else expect(r.stdout.trim()).not.toBe('no-answer'); // the sidecar's FORMERR
      const alert = await alertOf(sidecar, ['protocol-mismatch']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'protocol-mismatch', blocked });
      expect(tunnelOf(alert).evidence).toContain('not a DNS message');
      // The server's log: the app's datagram never arrived; the same datagram from the uid the
      // pod's nat rules exempt does (so the logger works and the sidecar is what stopped it).
      await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'seal-udp.mjs'), 'send', UDP53_LOGGER, '53', `direct-${tag}`, '', '500'], { uid: DIRECT_UID });
      for (let i = 0; i < 50 && !udp53Log.includes(`direct-${tag}`); i++) await new Promise((res) => setTimeout(res, 50));
      expect(udp53Log).toContain(`direct-${tag}`);
      expect(udp53Log).not.toContain(`PTNG${tag}`);
    });
  });
}
