// Servers that speak first, real ones (issue 15): behind a connection that will be denied, the
// server's greeting never reaches the client. sshd (OpenSSH) sends its banner at accept, the
// client its own at once: detected as SSH, denied by a rule. mariadbd sends its handshake at
// accept and the client waits for it: nothing from the client, so the connection is decided on
// L3/L4 after the detection wait, and denied by default. An SMTP-style banner server (socat) the
// same way, read by curl's SMTP client. The proof of what the client saw is the client's own
// output (ssh -v names the server's version once it has the banner; mariadb says at which step it
// lost the connection; curl -v prints each server line); the proof the server spoke is the
// banner server's own log, and for sshd and mariadbd the record's byte count from the server. The same clients against the
// same servers under `mode: monitor` do get the greetings: the checks can fail.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, Topology } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'hg', subnet: 157 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const dir = join(topo.dir, 'greetings');
let mariadbLog = '';
const bannerLog = join(dir, 'banner.log');

const config = (mode: string): string => `mode: ${mode}
defaultAction: deny
tunnels: off
rules:
  - { id: web, action: allow, protocol: http, http: { paths: ["/ok/**"] } }
  - { id: no-ssh, action: deny, protocol: ssh }
proxy:
  detectTimeoutMs: 1000
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
const count = (text: string, re: RegExp): number => (text.match(re) ?? []).length;
const greeted = (): number => (existsSync(bannerLog) ? count(readFileSync(bannerLog, 'utf8'), /greeted/g) : 0);

function sshClient() {
  // -v: "Remote protocol version 2.0, remote software version OpenSSH_…" once the banner is read.
  return topo.execAsync(topo.podNs, 'timeout', ['15', 'ssh', '-v', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-p', '22', `nobody@${peer}`, 'true'], { uid: APP_UID });
}
function mariadbClient() {
  return topo.execAsync(topo.podNs, 'timeout', ['15', 'mariadb', '--no-defaults', '--connect-timeout=5', '--skip-ssl', '-h', peer, '-u', 'app', '-e', 'SELECT 1'], { uid: APP_UID });
}
function smtpClient() {
  // curl's SMTP client prints each line the server sends as "< …"; VRFY needs no mail.
  return topo.execAsync(topo.podNs, 'timeout', ['15', 'curl', '-v', '--no-progress-meter', '--max-time', '8', '-X', 'VRFY postmaster', `smtp://${peer}:25`], { uid: APP_UID });
}

/** The connection record to `port` written after `from` records. */
async function recordTo(port: number, from: number) {
  await until(`a record to port ${port}`, () => sidecar.records.slice(from).some((r) => r.type === 'connection' && r.dst.port === port));
  return sidecar.records.slice(from).find((r) => r.type === 'connection' && r.dst.port === port)!;
}

beforeAll(async () => {
  topo.create();
  mkdirSync(dir);
  // sshd on 22 with a host key of its own.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  topo.exec(topo.peerNs, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  const sshdConfig = topo.writeFile('sshd_config', ['Port 22', 'ListenAddress 0.0.0.0', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`, 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', ''].join('\n'));
  topo.start(topo.peerNs, '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig]).stderr?.resume();
  // mariadbd on 3306.
  const uid = Number(spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).stdout.trim());
  const data = join(dir, 'data');
  const install = spawnSync('mariadb-install-db', ['--no-defaults', '--user=mysql', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`mariadb-install-db: ${install.stderr}`);
  spawnSync('chown', ['-R', String(uid), dir]);
  const mariadb = topo.start(topo.peerNs, 'mariadbd', ['--no-defaults', `--datadir=${data}`, `--socket=${join(dir, 'sock')}`, '--port=3306', `--bind-address=${peer}`, '--skip-grant-tables', `--pid-file=${join(dir, 'pid')}`, '--skip-ssl'], { uid });
  mariadb.stdout?.resume();
  mariadb.stderr?.setEncoding('utf8').on('data', (d: string) => (mariadbLog += d));
  // An SMTP-style banner server: greets every connection, logs that it did, then reads.
  writeFileSync(bannerLog, '');
  const script = join(dir, 'banner.sh');
  writeFileSync(script, `#!/bin/sh\necho greeted >> ${bannerLog}\nprintf '220 secret-banner.example ESMTP\\r\\n'\nexec cat > /dev/null\n`, { mode: 0o755 });
  const banner = topo.start(topo.peerNs, 'socat', ['TCP-LISTEN:25,fork,reuseaddr', `EXEC:${script}`]);
  banner.stderr?.resume();
  await until('mariadbd', () => mariadbLog.includes('ready for connections'), 60_000);
  await until('sshd and the banner server', () => {
    const ss = topo.exec(topo.peerNs, 'ss', ['-ltn']).stdout;
    return ss.includes(':22 ') && ss.includes(':25 ');
  });
  sidecar.init();
  await sidecar.start(config('protect'));
}, 120_000);

afterAll(async () => {
  if (sidecar.records.length > 0) await sidecar.stopAndCheckRecords();
  await topo.destroy();
});

describe('a server that speaks first, behind a connection that will be denied (protect)', () => {
  it('sshd: the client never reads its banner; the connection is denied by the ssh rule', async () => {
    const from = sidecar.records.length;
    const r = await sshClient();
    expect(r.stderr).not.toMatch(/remote software version/);
    expect(r.status).not.toBe(0);
    const rec = await recordTo(22, from);
    expect([rec.verdict, rec.ruleId]).toEqual(['denied', 'no-ssh']);
  }, 30_000);

  it('sshd, read by a client that waits for it (socat): nothing arrives; denied after the detection wait, the banner read by us only', async () => {
    const from = sidecar.records.length;
    // The ssh client sends its own banner at once, so the verdict usually comes before sshd's: a
    // client that only listens leaves the proxy holding sshd's banner until the verdict.
    const r = await topo.execAsync(topo.podNs, 'timeout', ['10', 'socat', '-u', `TCP:${peer}:22`, 'STDOUT'], { uid: APP_UID });
    expect(r.stdout).toBe('');
    const rec = await recordTo(22, from);
    expect(rec.verdict).toBe('denied');
    expect((rec.bytes as { received: number }).received).toBeGreaterThan(0); // sshd's banner, to us
  }, 30_000);

  it('mariadbd: the client never reads its handshake; denied by default after the detection wait', async () => {
    const from = sidecar.records.length;
    const r = await mariadbClient();
    // The client lost the connection before the server's first packet (2013 "at 'reading initial
    // communication packet'", or 2002 when the reset comes while it is still connecting); with
    // the handshake it would have gone on to authenticate (and, with --skip-grant-tables, run).
    expect(r.stderr, r.stderr).toMatch(/reading initial communication packet|ERROR 2002/);
    expect(r.stdout).toBe('');
    const rec = await recordTo(3306, from);
    expect(rec.verdict).toBe('denied');
    expect((rec.bytes as { received: number }).received).toBeGreaterThan(0); // the handshake was sent, to us
  }, 30_000);

  it('an SMTP banner server: curl never reads the 220 line; the server did greet', async () => {
    const from = sidecar.records.length;
    const before = greeted();
    const r = await smtpClient();
    expect(r.stderr).not.toContain('secret-banner');
    expect(r.stderr).not.toMatch(/^< 220/m);
    const rec = await recordTo(25, from);
    expect(rec.verdict).toBe('denied');
    await until('the banner server to log the greeting', () => greeted() > before);
  }, 30_000);
});

describe('the same clients under monitor: the greetings do arrive (the checks above can fail)', () => {
  it('ssh, socat, mariadb and curl each read the greeting', async () => {
    await sidecar.stopAndCheckRecords();
    await sidecar.start(config('monitor'));
    const [ssh, reader, db, smtp] = await Promise.all([sshClient(), topo.execAsync(topo.podNs, 'timeout', ['3', 'socat', '-u', `TCP:${peer}:22`, 'STDOUT'], { uid: APP_UID }), mariadbClient(), smtpClient()]);
    expect(ssh.stderr).toMatch(/remote software version OpenSSH_/);
    expect(reader.stdout).toMatch(/^SSH-2\.0-OpenSSH_/);
    expect(db.stderr).not.toMatch(/reading initial communication packet/);
    console.log(`[greetings] monitor: mariadb said ${JSON.stringify(db.stderr.trim())}`);
    expect(smtp.stderr, smtp.stderr).toMatch(/^< 220 secret-banner\.example ESMTP/m);
  }, 60_000);
});
