// Packet captures written by the sidecar itself (issue 19 "Packet capture"): real clients (curl,
// nghttp, an SSH-banner client) through the sidecar to servers behind a relay that logs every byte
// the server received and sent (tools/capture-relay.mjs, the server side's own log). Each capture
// is read back with tshark: "Follow TCP stream" must give exactly the bytes the server logged (and
// the client saw), under the connection's original addresses and ports as the app used them, and
// tshark's expert info must find no broken stream. Triggers: on demand (`sidewall capture --peer`, `--rule`),
// per rule (`capture: true`), on alert (`capture.onAlert`, named by the alert record). Then the
// capture volume's budget (oldest dropped, counted) and who may list and fetch captures.
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, CLI, NODE, PROXY_UID, TOOLS, Topology, until, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'cp', subnet: 140 });
const sidecar = new Sidecar(topo);
const TOKEN = 'capture-admin-token';
const H1 = 7080; // relay → HTTP/1 server :80
const H2 = 7090; // relay → h2c server :8080, rule `capture: true`
const SSH = 7022; // relay → echo, declared http: an SSH banner there is a tunnel alert
const MAX_BYTES = 400 * 1024;

const CONFIG = `mode: protect
defaultAction: deny
tunnels: alert
ports: { "${SSH}": http }
admin: { tokenFile: token }
capture: { onAlert: true, maxBytes: ${MAX_BYTES}, dir: ${join(topo.dir, 'captures')} }
rules:
  - { id: web, action: allow, direction: egress, ports: [${H1}] }
  - { id: h2-captured, action: allow, direction: egress, ports: [${H2}], capture: true }
  - { id: ssh-port, action: allow, direction: egress, ports: [${SSH}] }
  - { id: dns-captured, action: allow, direction: egress, protocol: dns, dns: { names: ["*.example.com"] }, capture: true }
`;

interface ServerLog {
  port: number;
  remote: string;
  c2s: { len: number; sha: string };
  s2c: { len: number; sha: string };
}

const serverLog: ServerLog[] = [];
/** Lines of tools/l7-servers.mjs ("seen dns-udp <query hex> <answer hex>" for each UDP query). */
const seen: string[] = [];
let relay: ChildProcess;
let captureDir = '';
/** Where the CLI (as the proxy's user) writes what it fetches. */
let outDir = '';

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function nextServerLog(port: number, after: number): Promise<ServerLog> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const poll = (): void => {
      const hit = serverLog.slice(after).find((l) => l.port === port);
      if (hit !== undefined) return resolve(hit);
      if (Date.now() > deadline) return reject(new Error(`the server logged no connection on ${port}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

/** Runs `sidewall capture …` in the pod as `uid` (the proxy's own user by default). */
function captureCli(args: string[], uid = PROXY_UID): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return topo.execAsync(topo.podNs, NODE, [CLI, 'capture', ...args], { uid });
}

function fetchCapture(id: string, name: string): Promise<string> {
  const out = join(outDir, name);
  return captureCli(['--fetch', id, '-w', out]).then((r) => {
    expect(r.status, r.stderr).toBe(0);
    return out;
  });
}

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * "Follow TCP stream" of stream N, both directions, as tshark reassembles them. Where bytes are
 * missing, tshark's raw output inserts the text "[N bytes missing in capture file]" and a NUL as if
 * it were data (hex, a line of its own): such lines are left out of the bytes and their offset in the
 * client's bytes is returned in `clientGaps`.
 */
function followStream(file: string, stream: number): { client: Buffer; server: Buffer; nodes: string[]; clientGaps: number[] } {
  const out = tshark(['-r', file, '-q', '-z', `follow,tcp,raw,${stream}`]);
  const client: Buffer[] = [];
  const server: Buffer[] = [];
  const nodes: string[] = [];
  const clientGaps: number[] = [];
  let clientLength = 0;
  let inData = false;
  for (const line of out.split('\n')) {
    if (line.startsWith('Node ')) {
      nodes.push(line.slice(line.indexOf(':') + 2));
      inData = nodes.length === 2;
      continue;
    }
    if (!inData || line.startsWith('=====') || line.trim() === '') continue;
    const bytes = Buffer.from(line.trim(), 'hex');
    const fromServer = line.startsWith('\t');
    if (/^\[\d+ bytes missing in capture file\]\0?$/.test(bytes.toString('latin1'))) {
      if (!fromServer) clientGaps.push(clientLength);
      continue;
    }
    if (fromServer) server.push(bytes);
    else {
      client.push(bytes);
      clientLength += bytes.length;
    }
  }
  return { client: Buffer.concat(client), server: Buffer.concat(server), nodes, clientGaps };
}

/** The SYN of each stream: [stream, src, srcPort, dst, dstPort]. */
function synEndpoints(file: string): Array<[number, string, number, string, number]> {
  const out = tshark(['-r', file, '-T', 'fields', '-E', 'separator=,', '-e', 'tcp.stream', '-e', 'ip.src', '-e', 'ipv6.src', '-e', 'tcp.srcport', '-e', 'ip.dst', '-e', 'ipv6.dst', '-e', 'tcp.dstport', '-Y', 'tcp.flags.syn==1 && tcp.flags.ack==0']);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [stream, s4, s6, sp, d4, d6, dp] = l.split(',');
      return [Number(stream), s4 || s6!, Number(sp), d4 || d6!, Number(dp)];
    });
}

/**
 * tshark's expert info at warning level and above: nothing for a whole, well-formed stream. A
 * reset the client really sent (nghttp sometimes ends with RST) is shown as one, and is no defect.
 */
function expertProblems(file: string): string {
  const out = tshark(['-r', file, '-q', '-z', 'expert,warn']);
  const lines = out.split('\n').filter((l) => /^\s+\d+\s+\S+\s+\S+\s+/.test(l) && !l.includes('Connection reset (RST)'));
  if (/Errors \(\d+\)/.test(out) || lines.length > 0) {
    // Say which frames, so a failure can be read without the file.
    return `${out}\n${tshark(['-r', file, '-Y', '_ws.expert.severity >= 6291456'])}`;
  }
  return '';
}

beforeAll(async () => {
  topo.create();
  topo.writeFile('token', `${TOKEN}\n`);
  captureDir = join(topo.dir, 'captures');
  mkdirSync(captureDir);
  chownSync(captureDir, PROXY_UID, PROXY_UID);
  outDir = join(topo.dir, 'out');
  mkdirSync(outDir);
  chownSync(outDir, PROXY_UID, PROXY_UID);
  // --redirect-dns: the pod's DNS over UDP goes to the sidecar's listener (the DNS capture test).
  sidecar.init(['--redirect-dns']);
  // The pod's resolver is the peer's DNS server (the sidecar forwards the redirected queries there).
  topo.setPodResolver(topo.peerIp);
  await topo.startL7Servers((line) => seen.push(line));
  relay = topo.start(topo.peerNs, NODE, [join(TOOLS, 'capture-relay.mjs'), '0.0.0.0', `${H1}:80,${H2}:8080,${SSH}:echo`]);
  relay.stdout?.setEncoding('utf8').on('data', (d: string) => {
    for (const line of d.split('\n')) {
      const f = line.split(' ');
      if (f[0] !== 'conn') continue;
      serverLog.push({ port: Number(f[1]), remote: `${f[2]}:${f[3]}`, c2s: { len: Number(f[4]), sha: f[5]! }, s2c: { len: Number(f[6]), sha: f[7]! } });
    }
  });
  await waitForLine(relay, (l) => l === 'listening', 10_000, 'capture relay');
  await sidecar.start(CONFIG);
}, 60_000);

afterAll(async () => {
  const check = await sidecar.stopAndCheckRecords().catch((err: Error) => err);
  await topo.destroy();
  if (check instanceof Error) throw check;
});

describe('captures read back with tshark', () => {
  it('on demand (--peer): a curl upload and its answer, byte for byte, with the original addresses', async () => {
    const body = topo.writeFile('upload.bin', Buffer.alloc(150_000, 'x').toString() + 'end');
    const appDir = join(topo.dir, 'app');
    mkdirSync(appDir, { mode: 0o777 });
    chownSync(appDir, APP_UID, APP_UID);
    const answer = join(appDir, 'answer.txt');
    const pcap = join(outDir, 'on-demand.pcapng');
    // Generous: the upload and its answer must both fall inside it on a loaded 2-core machine
    // (2.5 s was not always enough at load 12); the CLI returns when it ends.
    const cli = captureCli(['--peer', topo.peerIp, '--duration', '8s', '-w', pcap]);
    // The capture is running once the sidecar lists it.
    for (let i = 0; i < 100; i++) {
      const list = await captureCli(['--list', '-o', 'json']);
      if (list.stdout.includes('"on-demand"') && list.stdout.includes('"active":true')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = serverLog.length;
    const curl = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', answer, '-w', '%{local_ip} %{local_port}', '--data-binary', `@${body}`, `http://${topo.peerIp}:${H1}/upload`], { uid: APP_UID });
    expect(curl.status).toBe(0);
    const [localIp, localPort] = curl.stdout.split(' ');
    const logged = await nextServerLog(H1, before);
    const done = await cli;
    expect(done.status, done.stderr).toBe(0);

    const [syn] = synEndpoints(pcap);
    // The app's own address and port, and the destination it dialled (not the proxy's listener).
    expect(syn).toEqual([0, localIp, Number(localPort), topo.peerIp, H1]);
    const stream = followStream(pcap, 0);
    expect({ len: stream.client.length, sha: sha(stream.client) }).toEqual(logged.c2s);
    expect({ len: stream.server.length, sha: sha(stream.server) }).toEqual(logged.s2c);
    // ...and what the client saved is the answer's body, which names the upload's hash.
    const saved = readFileSync(answer);
    expect(stream.server.subarray(stream.server.length - saved.length).equals(saved)).toBe(true);
    expect(saved.toString()).toContain(sha(readFileSync(body)));
    expect(expertProblems(pcap)).toBe('');
  });

  it('on demand (--rule): the connections that rule decides, from their first byte, and not those another rule decides', async () => {
    const pcap = join(outDir, 'by-rule.pcapng');
    const cli = captureCli(['--rule', 'web', '--duration', '8s', '-w', pcap]); // generous, as above
    for (let i = 0; i < 100; i++) {
      const list = await captureCli(['--list', '-o', 'json']);
      if (list.stdout.includes('"ruleId":"web"') && list.stdout.includes('"active":true')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = serverLog.length;
    // One connection the rule `web` decides (H1), one that `h2-captured` decides (H2).
    const curl = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{local_ip} %{local_port}', '--data-binary', 'by rule', `http://${topo.peerIp}:${H1}/by-rule`], { uid: APP_UID });
    expect(curl.status).toBe(0);
    const [localIp, localPort] = curl.stdout.split(' ');
    const logged = await nextServerLog(H1, before);
    const other = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--http2-prior-knowledge', `http://${topo.peerIp}:${H2}/not-this-rule`], { uid: APP_UID });
    expect(other.stdout).toBe('200');
    await nextServerLog(H2, before);
    const done = await cli;
    expect(done.status, done.stderr).toBe(0);
    // Only the connection `web` decided, with its handshake, under the app's own address and port.
    expect(synEndpoints(pcap)).toEqual([[0, localIp, Number(localPort), topo.peerIp, H1]]);
    const stream = followStream(pcap, 0);
    expect(stream.client.toString()).toContain('POST /by-rule HTTP/1.1');
    expect({ len: stream.client.length, sha: sha(stream.client) }).toEqual(logged.c2s);
    expect({ len: stream.server.length, sha: sha(stream.server) }).toEqual(logged.s2c);
    expect(expertProblems(pcap)).toBe('');
  });

  it('per rule (capture: true): an HTTP/2 exchange by nghttp, as it was on the wire', async () => {
    const before = serverLog.length;
    const body = topo.writeFile('h2-upload.bin', 'h2 body '.repeat(2000));
    const r = await topo.execAsync(topo.podNs, 'nghttp', ['-d', body, `http://${topo.peerIp}:${H2}/h2-upload`], { uid: APP_UID });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`POST /h2-upload 16000 ${sha(readFileSync(body))}`);
    const logged = await nextServerLog(H2, before);
    // nghttp's own connection, by its request's unique path (the --rule test's HTTP/2 connection
    // to the same port has a record too): then that flow's connection record.
    const request = await sidecar.waitForRecord((x) => x.type === 'request' && x.dst.port === H2 && (x.l7 as { path?: string } | undefined)?.path === '/h2-upload');
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.flowId === request.flowId && x.reason !== 'open');
    expect(record.capture).toEqual(expect.stringMatching(/^[a-z0-9]+-[0-9a-z]+$/));
    const pcap = await fetchCapture(record.capture as string, 'rule.pcapng');
    const [syn] = synEndpoints(pcap);
    expect(syn).toEqual([0, topo.podIp, record.src.port, topo.peerIp, H2]);
    const stream = followStream(pcap, 0);
    expect(stream.client.subarray(0, 24).toString()).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect({ len: stream.client.length, sha: sha(stream.client) }).toEqual(logged.c2s);
    expect({ len: stream.server.length, sha: sha(stream.server) }).toEqual(logged.s2c);
    // tshark decodes it as HTTP/2 (decode-as the port): the request's :path is there.
    const paths = tshark(['-r', pcap, '-d', `tcp.port==${H2},http2`, '-T', 'fields', '-e', 'http2.header.value', '-Y', 'http2.type==1']);
    expect(paths).toContain('/h2-upload');
    expect(expertProblems(pcap)).toBe('');
  });

  it('on alert: an SSH banner on a port declared http, captured from its first byte; the alert names the capture', async () => {
    const before = serverLog.length;
    const payload = 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n' + 'k'.repeat(3000);
    const r = await topo.execAsync(topo.podNs, 'sh', ['-c', `printf '%s' '${payload}' | socat -t 2 - TCP:${topo.peerIp}:${SSH}`], { uid: APP_UID });
    expect(r.stdout).toBe(payload);
    const logged = await nextServerLog(SSH, before);
    const alert = await sidecar.waitForRecord((x) => x.type === 'alert' && x.dst.port === SSH);
    expect((alert.tunnel as { kind: string }).kind).toBe('ssh');
    expect(alert.capture).toEqual(expect.any(String));
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.dst.port === SSH && x.reason !== 'open');
    expect(record.capture).toBe(alert.capture);
    const pcap = await fetchCapture(alert.capture as string, 'alert.pcapng');
    const [syn] = synEndpoints(pcap);
    expect(syn).toEqual([0, topo.podIp, record.src.port, topo.peerIp, SSH]);
    const stream = followStream(pcap, 0);
    expect(stream.client.toString()).toBe(payload);
    expect({ len: stream.client.length, sha: sha(stream.client) }).toEqual(logged.c2s);
    expect({ len: stream.server.length, sha: sha(stream.server) }).toEqual(logged.s2c);
    expect(expertProblems(pcap)).toBe('');
  });
});

describe('the gap between the pre-buffer and a late alert', () => {
  it('an SSH banner deep in a curl upload: the capture holds the beginning and everything from the alert on, the bytes between are reported, by tshark and by the records', async () => {
    const before = serverLog.length;
    // 16 KiB of pre-buffer, then ~190 KB nothing captures yet, then the read with the banner raises the alert.
    const body = topo.writeFile('deep.bin', 'x'.repeat(200_000) + 'SSH-2.0-OpenSSH_9.2p1 deep\r\n' + 'y'.repeat(3000));
    const curl = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{local_port} %{size_request} %{size_upload}', '--data-binary', `@${body}`, `http://${topo.peerIp}:${H1}/deep`], { uid: APP_UID });
    expect(curl.status).toBe(0);
    const [code, localPort, sizeRequest, sizeUpload] = curl.stdout.split(' ');
    expect(code).toBe('200');
    const logged = await nextServerLog(H1, before);
    const alert = await sidecar.waitForRecord((x) => x.type === 'alert' && x.src.port === Number(localPort) && (x.tunnel as { kind?: string } | undefined)?.kind === 'ssh');
    const gap = alert.captureGap as { fromClient: number; toClient: number };
    // Most of the 200 KB went by between the pre-buffer's end and the alert: not in the capture.
    expect(gap.fromClient).toBeGreaterThan(100_000);
    expect(gap.toClient).toBe(0);
    const record = await sidecar.waitForRecord((x) => x.type === 'connection' && x.src.port === Number(localPort) && x.reason !== 'open');
    expect(record.capture).toBe(alert.capture);
    expect(record.captureGap).toEqual(gap);
    const pcap = await fetchCapture(alert.capture as string, 'deep.pcapng');
    // tshark says where bytes are missing and how many, and the frame after the gap says why.
    expect(tshark(['-r', pcap, '-q', '-z', 'follow,tcp,ascii,0'])).toContain(`[${gap.fromClient} bytes missing in capture file]`);
    expect(tshark(['-r', pcap, '-T', 'fields', '-e', 'frame.comment'])).toContain(`sidewall: ${gap.fromClient} bytes from the client and 0 bytes to it not captured here`);
    expect(tshark(['-r', pcap, '-q', '-z', 'expert,warn'])).toContain('Previous segment(s) not captured');
    // What is there is exact: the request's beginning, then from the alert's read to the end; with
    // the gap, every byte curl says it sent (the capture is the app's side of the connection).
    const stream = followStream(pcap, 0);
    expect(stream.client.subarray(0, 17).toString()).toBe('POST /deep HTTP/1');
    expect(stream.client.toString().endsWith('SSH-2.0-OpenSSH_9.2p1 deep\r\n' + 'y'.repeat(3000))).toBe(true);
    expect(stream.client.length + gap.fromClient, `the server logged ${logged.c2s.len} bytes`).toBe(Number(sizeRequest) + Number(sizeUpload));
    // Byte for byte: what the app sent (its head as captured, then the file; the server's own
    // length and hash prove it), less exactly the reported gap at the place tshark marks it.
    expect(stream.clientGaps).toHaveLength(1);
    const at = stream.clientGaps[0]!;
    const headEnd = stream.client.indexOf('\r\n\r\n') + 4;
    expect(headEnd).toBeGreaterThan(4);
    expect(headEnd).toBeLessThanOrEqual(at);
    const sent = Buffer.concat([stream.client.subarray(0, headEnd), readFileSync(body)]);
    expect({ len: sent.length, sha: sha(sent) }).toEqual(logged.c2s);
    expect(stream.client.equals(Buffer.concat([sent.subarray(0, at), sent.subarray(at + gap.fromClient)]))).toBe(true);
    expect({ len: stream.server.length, sha: sha(stream.server) }).toEqual(logged.s2c);
  });
});

describe('DNS over UDP in captures', () => {
  it('capture: true on a dns rule: dig\'s query and the answer it got, as UDP datagrams from the app\'s port to the resolver, byte for byte', async () => {
    const PORT = 53_184;
    const r = await topo.execAsync(topo.podNs, 'dig', ['+tries=1', '+time=3', '-b', `${topo.podIp}#${PORT}`, 'www.example.com', 'A'], { uid: APP_UID });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/www\.example\.com\.\s+60\s+IN\s+A\s+10\.77\.0\.99/);
    const digId = Number(/status: NOERROR, id: (\d+)/.exec(r.stdout)![1]);
    const record = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'dns' && x.src.port === PORT);
    expect(record.ruleId).toBe('dns-captured');
    expect(record.capture).toEqual(expect.any(String));
    // What the DNS server itself got and answered (its own log), under the sidecar's random ID.
    await until(() => seen.some((l) => l.startsWith('seen dns-udp ')), 'the DNS server\'s log of the query');
    const [, , queryHex, answerHex] = seen.find((l) => l.startsWith('seen dns-udp '))!.split(' ');
    const withId = (hex: string): string => digId.toString(16).padStart(4, '0') + hex.slice(4);
    const pcap = await fetchCapture(record.capture as string, 'dns.pcapng');
    const frames = tshark(['-r', pcap, '-T', 'fields', '-E', 'separator=,', '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'dns.id', '-e', 'dns.flags.response', '-e', 'dns.qry.name', '-e', 'dns.a', '-e', 'udp.payload'])
      .trim()
      .split('\n')
      .map((l) => l.split(','));
    expect(frames.map((f) => f.slice(0, 8))).toEqual([
      [topo.podIp, String(PORT), topo.peerIp, '53', `0x${digId.toString(16).padStart(4, '0')}`, '0', 'www.example.com', ''],
      [topo.peerIp, '53', topo.podIp, String(PORT), `0x${digId.toString(16).padStart(4, '0')}`, '1', 'www.example.com', '10.77.0.99'],
    ]);
    // The query as dig sent it and the answer as dig got it: the server's bytes with dig's own ID.
    expect(frames[0]![8]).toBe(withId(queryHex!));
    expect(frames[1]![8]).toBe(withId(answerHex!));
    expect(expertProblems(pcap)).toBe('');
  });
});

describe('the capture volume and who may read it', () => {
  it('stays within capture.maxBytes: the oldest captures are deleted first, and counted', async () => {
    const list = async (): Promise<Array<{ id: string; bytes: number; active: boolean }>> => JSON.parse(`[${(await captureCli(['--list', '-o', 'json'])).stdout.trim().split('\n').filter(Boolean).join(',')}]`);
    const first = (await list()).map((c) => c.id);
    expect(first.length).toBeGreaterThan(0);
    const droppedBefore = await sidecar.metric('sidewall_captures_dropped_total');
    // Each alerting connection is a capture of ~70 KiB; eight of them pass the 400 KiB budget.
    for (let i = 0; i < 8; i++) {
      const payload = `SSH-2.0-OpenSSH_9.2p1 n${i}\r\n` + 'z'.repeat(30_000);
      const before = serverLog.length;
      await topo.execAsync(topo.podNs, 'sh', ['-c', `printf '%s' '${payload}' | socat -t 2 - TCP:${topo.peerIp}:${SSH}`], { uid: APP_UID });
      await nextServerLog(SSH, before);
    }
    await until(() => sidecar.records.filter((x) => x.type === 'connection' && x.dst.port === SSH && x.reason !== 'open').length >= 9, 'the records of nine SSH connections');
    let after: Array<{ id: string; bytes: number; active: boolean }> = [];
    for (let i = 0; i < 50; i++) {
      after = await list();
      if (after.every((c) => !c.active)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const total = after.reduce((n, c) => n + c.bytes, 0);
    expect(total).toBeLessThanOrEqual(MAX_BYTES);
    // What is on the volume agrees with the list.
    const onDisk = readdirSync(captureDir).reduce((n, f) => n + statSync(join(captureDir, f)).size, 0);
    expect(onDisk).toBe(total);
    expect(await sidecar.metric('sidewall_captures_dropped_total')).toBeGreaterThan(droppedBefore);
    // The oldest went first: the earliest capture is gone, the newest is there.
    const ids = after.map((c) => c.id);
    expect(ids).not.toContain(first[0]);
    const newest = sidecar.records.filter((y) => y.type === 'alert' && y.dst.port === SSH).at(-1)!.capture as string;
    expect(ids).toContain(newest);
    // Its 30 KB came in a read larger than the 16 KiB pre-buffer and raised the alert: all there.
    const stream = followStream(await fetchCapture(newest, 'newest.pcapng'), 0);
    expect(stream.client.toString()).toBe(`SSH-2.0-OpenSSH_9.2p1 n7\r\n` + 'z'.repeat(30_000));
    const gone = await captureCli(['--fetch', first[0]!, '-w', join(outDir, 'gone.pcapng')]);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toContain('404');
  });

  it('another pod and an app container can neither list nor fetch captures; the proxy user and the token can', async () => {
    const id = JSON.parse((await captureCli(['--list', '-o', 'json'])).stdout.trim().split('\n').at(-1)!) as { id: string };
    const code = async (ns: string, path: string, uid?: number, token?: string): Promise<string> =>
      (await topo.execAsync(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', ...(token ? ['-H', `Authorization: Bearer ${token}`] : []), `http://${topo.podIp}:15000${path}`], uid === undefined ? {} : { uid })).stdout;
    for (const path of ['/captures', `/captures/${id.id}`]) {
      expect(await code(topo.peerNs, path)).toBe('403'); // another pod
      expect(await code(topo.podNs, path, APP_UID)).toBe('403'); // an app container
      expect(await code(topo.peerNs, path, undefined, 'wrong-token')).toBe('403');
      expect(await code(topo.podNs, path, PROXY_UID)).toBe('200'); // the sidecar's own user
      expect(await code(topo.peerNs, path, undefined, TOKEN)).toBe('200'); // the operator's token
    }
    // Starting one is private too.
    const post = await topo.execAsync(topo.podNs, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', `http://127.0.0.1:15000/captures?peer=${topo.peerIp}&durationMs=100`], { uid: APP_UID });
    expect(post.stdout).toBe('403');
    const cli = await captureCli(['--list'], APP_UID);
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain('403');
  });
});
