// Tunnels end to end, more real tools from Debian through the sidecar, each cut under
// `tunnels: block` and passing with an alert record under `tunnels: alert`; the proof is the
// far end's own log, never the proxy's word:
//   sslh (a port multiplexer on 443, declared tls, handing SSH to sshd): sshd's log says
//     whether a session started
//   proxytunnel (an HTTP CONNECT client, as ssh's ProxyCommand, through tinyproxy): sshd's log
//   websockify (a WebSocket-to-TCP bridge in front of sshd; the client joins ssh's stdio to a
//     WebSocket, as websockify's clients do): sshd's log
//   dns2tcp (dns2tcpd authoritative for d.tun.test in the peer, bridging to a service; dns2tcpc
//     in the pod carries a tagged stream in TXT queries): the service's log says whether the
//     tag ever reached it
//   SSH past the first 512 bytes of a body: curl POSTs (HTTP/1.1) and nghttp uploads (HTTP/2
//     with prior knowledge) a body whose banner line sits at byte 3000; the Node servers' log
//     says whether the banner ever reached them
// ptunnel-ng (ICMP echo, UDP 53) has its own suite, tunnels-icmp.test.ts.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology } from '../harness/netns.js';
import { Sidecar, type FlowRecordLine } from '../harness/sidecar.js';

const topo = new Topology({ name: 'tx', subnet: 168 });
const peer = topo.peerIp;
const DNS2TCP_DOMAIN = 'd.tun.test';
let sshdLog = '';
let serviceLog = '';
let bodyLog = '';
let clientKey = '';

const config = (tunnels: string) => `mode: protect\ndefaultAction: allow\ntunnels: ${tunnels}\nports:\n  "443": tls\n  "8080": http\n  "8082": http\n`;
const tunnelOf = (r: FlowRecordLine) => (r.tunnel ?? {}) as { kind?: string; blocked?: boolean; evidence?: string; confidence?: number };
const alertOf = (sidecar: Sidecar, kinds: string[], port?: number) =>
  sidecar.waitForRecord((r) => r.type === 'alert' && kinds.includes(tunnelOf(r).kind ?? '') && (port === undefined || r.dst.port === port), 20_000);
const sessions = () => (sshdLog.match(/Starting session/g) ?? []).length;

function ssh(args: string[], timeoutS = 15) {
  return topo.execAsync(topo.podNs, 'timeout', [String(timeoutS), 'ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=8', '-o', 'LogLevel=ERROR', '-i', clientKey, ...args], { uid: APP_UID });
}

beforeAll(async () => {
  topo.create();
  const dir = topo.dir;
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  topo.exec(topo.peerNs, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  topo.exec(topo.peerNs, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  clientKey = join(dir, 'client_key');
  chownSync(clientKey, APP_UID, APP_UID);
  chmodSync(clientKey, 0o600);
  writeFileSync(join(dir, 'authorized_keys'), topo.exec(topo.peerNs, 'cat', [`${clientKey}.pub`]).stdout);
  const sshdConfig = topo.writeFile('sshd_config', [
    'Port 22', 'ListenAddress 0.0.0.0', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PrintMotd no', 'LogLevel VERBOSE', '',
  ].join('\n'));
  const sshd = topo.start(topo.peerNs, '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig]);
  sshd.stderr?.on('data', (d: Buffer) => (sshdLog += d.toString()));
  // sslh on 443: SSH to sshd, TLS to a port nothing listens on.
  topo.start(topo.peerNs, 'sslh', ['-f', '-n', '-p', '0.0.0.0:443', '--ssh', '127.0.0.1:22', '--tls', '127.0.0.1:4443']).stderr?.resume();
  // tinyproxy on 8080: an ordinary forward proxy that allows CONNECT to any port.
  writeFileSync(join(dir, 'tinyproxy.log'), '');
  chmodSync(join(dir, 'tinyproxy.log'), 0o666);
  const tinyproxyConfig = topo.writeFile('tinyproxy.conf', ['User nobody', 'Group nogroup', 'Port 8080', 'Listen 0.0.0.0', 'Timeout 60', `LogFile "${join(dir, 'tinyproxy.log')}"`, 'LogLevel Info', 'MaxClients 20', `Allow ${topo.podIp}`, ''].join('\n'));
  topo.start(topo.peerNs, 'tinyproxy', ['-d', '-c', tinyproxyConfig]);
  // websockify on 8082 in front of sshd.
  topo.start(topo.peerNs, 'websockify', ['0.0.0.0:8082', '127.0.0.1:22']).stderr?.resume();
  // dns2tcpd: authoritative for d.tun.test on the peer's port 53, bridging resource "svc" to a
  // logging echo service (socat -v writes every byte it relays to its stderr).
  const service = topo.start(topo.peerNs, 'socat', ['-v', 'TCP-LISTEN:7000,bind=127.0.0.1,reuseaddr,fork', 'EXEC:cat']);
  service.stderr?.on('data', (d: Buffer) => (serviceLog += d.toString('latin1')));
  mkdirSync(join(dir, 'dns2tcp-root'), { recursive: true });
  const d2t = topo.writeFile('dns2tcpd.conf', [`listen = ${peer}`, 'port = 53', 'user = nobody', `chroot = ${join(dir, 'dns2tcp-root')}`, `domain = ${DNS2TCP_DOMAIN}`, 'resources = svc:127.0.0.1:7000', ''].join('\n'));
  topo.start(topo.peerNs, 'dns2tcpd', ['-F', '-f', d2t]).stderr?.resume();
  const bodies = topo.start(topo.peerNs, NODE, [join(TOOLS, 'body-log-server.mjs'), peer, '8090', '8091']);
  bodies.stdout?.on('data', (d: Buffer) => (bodyLog += d.toString()));
  // 3000 bytes of log text, then the banner line as ssh sends it, then more.
  const text = 'Dec  3 16:44:38 web-1 app[311]: request served in 12 ms, status 200\n'.repeat(50).slice(0, 3000);
  writeFileSync(join(dir, 'body.txt'), `${text}SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n${text.slice(0, 500)}`);
  chmodSync(join(dir, 'body.txt'), 0o644);
  topo.setPodResolver(peer);
  await topo.listening(topo.peerNs, [22, 443, 7000, 8080, 8082, 8090, 8091]);
  new Sidecar(topo).init(['--redirect-dns']);
}, 90_000);

afterAll(async () => {
  await topo.destroy();
});

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

    /** sshd's log: a session started (alert), or none did (block). */
    function expectSession(before: number, r: { stdout: string }, word: string): void {
      if (blocked) {
        expect(r.stdout).not.toContain(word);
        expect(sessions(), sshdLog).toBe(before);
      } else {
        expect(r.stdout.trim()).toBe(word);
        expect(sessions(), sshdLog).toBeGreaterThan(before);
      }
    }

    it(`ssh through sslh on 443 (declared tls) is ${blocked ? 'cut before a session opens' : 'let through'} with an alert`, async () => {
      const before = sessions();
      const r = await ssh(['-p', '443', `root@${peer}`, 'echo through-sslh']);
      const alert = await alertOf(sidecar, ['ssh', 'protocol-mismatch'], 443);
      expect(tunnelOf(alert).blocked).toBe(blocked);
      expect(tunnelOf(alert).evidence).toContain('SSH-2.0-');
      expectSession(before, r, 'through-sslh');
    }, 40_000);

    it(`ssh through proxytunnel (HTTP CONNECT via tinyproxy) is ${blocked ? 'cut before a session opens' : 'let through'} with an alert`, async () => {
      const before = sessions();
      const r = await ssh(['-o', `ProxyCommand=proxytunnel -q -p ${peer}:8080 -d %h:%p`, '-p', '22', `root@${peer}`, 'echo through-proxytunnel']);
      const alert = await alertOf(sidecar, ['http-connect'], 8080);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'http-connect', blocked });
      expect(tunnelOf(alert).evidence).toContain(`CONNECT ${peer}:22`);
      expectSession(before, r, 'through-proxytunnel');
    }, 40_000);

    it(`ssh through websockify (SSH inside a WebSocket) is ${blocked ? 'cut before a session opens' : 'let through'} with an alert`, async () => {
      const before = sessions();
      const r = await ssh(['-o', `ProxyCommand=${NODE} ${join(TOOLS, 'ws-stdio.mjs')} %h 8082`, '-p', '22', `root@${peer}`, 'echo through-websockify']);
      const alert = await alertOf(sidecar, ['ssh'], 8082);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'ssh', blocked });
      expect(tunnelOf(alert).evidence).toContain('websocket');
      expectSession(before, r, 'through-websockify');
    }, 40_000);

    for (const [proto, port] of [['http1', 8090], ['h2', 8091]] as const) {
      it(`SSH at byte 3000 of an ${proto === 'h2' ? 'HTTP/2 stream' : 'HTTP/1.1 body'} is ${blocked ? 'cut before it reaches the server' : 'let through'} with an alert`, async () => {
        const path = `/upload-${mode}`;
        const body = join(topo.dir, 'body.txt');
        const r = proto === 'h2'
          ? await topo.execAsync(topo.podNs, 'nghttp', ['-d', body, '-H', 'content-type: text/plain', `http://${peer}:${port}${path}`], { uid: APP_UID })
          : await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--data-binary', `@${body}`, '-H', 'content-type: text/plain', `http://${peer}:${port}${path}`], { uid: APP_UID });
        const alert = await alertOf(sidecar, ['ssh'], port);
        expect(tunnelOf(alert)).toMatchObject({ kind: 'ssh', blocked });
        expect(tunnelOf(alert).evidence).toContain('at byte 3000');
        if (blocked) {
          // A clean request after it, seen by the same server process, orders its log: whatever
          // the blocked upload had delivered would be logged before this line.
          const after = `/after-${mode}-${proto}`;
          await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '--data-binary', 'clean', `http://${peer}:8090${after}`], { uid: APP_UID });
          for (let i = 0; i < 100 && !bodyLog.includes(`seen end http1 ${after}`); i++) await new Promise((res) => setTimeout(res, 50));
          expect(bodyLog).toContain(`seen end http1 ${after}`);
          expect(bodyLog).not.toContain(`seen banner ${proto} ${path}`);
          // HTTP/1: the request never completed. (node:http2 ends a reset stream's body with
          // what it had: the frames before the read that carried the banner.)
          if (proto === 'http1') expect(bodyLog).not.toContain(`seen end ${proto} ${path}`);
        } else {
          expect(r.status, r.stdout + r.stderr).toBe(0);
          expect(bodyLog).toContain(`seen banner ${proto} ${path}`);
        }
      }, 40_000);
    }

    it(`dns2tcp is ${blocked ? 'refused before its data reaches the service' : 'let through'} with an alert`, async () => {
      const tag = `dns2tcp-${mode}-${Date.now()}`;
      // A tagged line, then 6 KiB of hex (the stream a tunnelled session would carry), then the
      // client holds the session open for the answers.
      const data = `${tag}\n${Buffer.alloc(3072, 0x5a).toString('hex')}\n`;
      const r = await topo.execAsync(topo.podNs, 'sh', ['-c', `(printf '%s' '${data}'; sleep 6) | timeout 12 dns2tcpc -z ${DNS2TCP_DOMAIN} -r svc -l - ${peer}`], { uid: APP_UID });
      const alert = await alertOf(sidecar, ['dns-tunnel']);
      expect(tunnelOf(alert)).toMatchObject({ kind: 'dns-tunnel', blocked });
      // Found at the session's first query (its =auth control label), before any data.
      expect(tunnelOf(alert).evidence).toContain('=auth.d.tun.test');
      if (blocked) expect(serviceLog, r.stdout.slice(0, 200)).not.toContain(tag);
      else {
        expect(r.stdout).toContain(tag); // echoed back through the tunnel
        expect(serviceLog).toContain(tag);
      }
    }, 40_000);
  });
}
