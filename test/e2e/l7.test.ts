// The L7 firewall end to end: real clients (curl, nc, nghttp, Node's http2, grpc-js, openssl,
// dig) through the sidecar to real servers, allowed and denied per request.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, CLI, NODE, PROXY_UID, TOOLS, Topology, until, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';
import { assertValidFlowRecords } from '../unit/flows/flow-schema.js';

const topo = new Topology({ name: 'l7', subnet: 14 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const seen: string[] = [];

const RULES = `
  - id: grpc-greeter
    action: allow
    protocol: grpc
    grpc: { services: ["test.Greeter"], methods: ["SayHello", "StreamHellos"] }
  - id: h2-public
    action: allow
    protocol: http2
    http: { paths: ["/public/**"] }
  - id: http-public
    action: allow
    direction: egress
    protocol: http
    http: { methods: [GET, POST, PUT], paths: ["/public/**"] }
  - id: tls-allowed
    action: allow
    protocol: tls
    tls: { sni: ["allowed.example.com"] }
  - id: dns-example
    action: allow
    protocol: dns
    dns: { names: ["*.example.com", "*.nx"] }
  - id: greeting-port
    action: allow
    ports: [2525]
`;

function config(mode: string, rules = RULES): string {
  return `mode: ${mode}\ndefaultAction: deny\ntunnels: off\nrules:${rules}`;
}

const curl = (args: string[]) => topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '5', ...args], { uid: APP_UID });
const requests = (pred: (r: Record<string, unknown>) => boolean) => sidecar.records.filter((r) => r.type === 'request' && pred(r as Record<string, unknown>));
const l7 = (r: { [key: string]: unknown }) => (r.l7 ?? {}) as Record<string, unknown>;

beforeAll(async () => {
  topo.create();
  topo.setPodResolver(peer);
  await topo.startL7Servers((line) => seen.push(line));
  await topo.peer(topo.peerNs, 'greet', '0.0.0.0', 2525);
  sidecar.init(['--redirect-dns']);
  await sidecar.start(config('protect'));
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await topo.destroy();
  }
});

describe('HTTP/1.1', () => {
  it('allows and denies per request on one keep-alive connection (curl)', async () => {
    const r = await curl(['-w', '%{http_code} %{num_connects}\\n', `http://${peer}/public/a`, '-o', '/dev/null', `http://${peer}/private/x`, '-o', '/dev/null']);
    expect(r.stdout.trim().split('\n')).toEqual(['200 1', '403 0']); // the second request reused the connection
    const allowed = await sidecar.waitForRecord((x) => x.type === 'request' && l7(x).path === '/public/a');
    expect(allowed).toMatchObject({ verdict: 'allowed', ruleId: 'http-public', protocol: 'http' });
    expect(l7(allowed)).toMatchObject({ method: 'GET', status: 200, host: peer });
    const denied = await sidecar.waitForRecord((x) => x.type === 'request' && l7(x).path === '/private/x');
    expect(denied).toMatchObject({ verdict: 'denied', ruleId: 'default' });
    expect(l7(denied).status).toBe(403);
    await logBarrier();
    expect(seen).toContain('seen http1 GET /public/a');
    expect(seen).not.toContain('seen http1 GET /private/x');
  });

  it('answers 403 naming the rule', async () => {
    const r = await curl(['-i', `http://${peer}/private/y`]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(r.stdout).toContain('x-sidewall-rule: default');
  });

  it('handles pipelined requests: answers in order, stops at the denied one (nc)', async () => {
    const pipeline = ['/public/p1', '/private/p2', '/public/p3'].map((p) => `GET ${p} HTTP/1.1\r\nhost: ${peer}\r\n\r\n`).join('');
    const r = topo.exec(topo.podNs, 'nc', ['-q', '3', '-w', '3', peer, '80'], { uid: APP_UID, input: pipeline });
    await logBarrier();
    const statuses = [...r.stdout.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '403']);
    expect(r.stdout).toContain('GET /public/p1 0');
    expect(seen).toContain('seen http1 GET /public/p1');
    expect(seen).not.toContain('seen http1 GET /private/p2');
    expect(seen).not.toContain('seen http1 GET /public/p3');
  });

  it('streams a chunked upload unchanged', async () => {
    const body = topo.writeFile('upload.bin', 'x'.repeat(300_000) + 'end');
    const r = await curl(['-X', 'POST', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${body}`, `http://${peer}/public/upload`]);
    expect(r.stdout).toMatch(/^POST \/public\/upload 300003 [0-9a-f]{64}$/m);
  });

  it('honours Expect: 100-continue, and a denied upload never sends its body to the server', async () => {
    const body = topo.writeFile('big.bin', 'y'.repeat(2_000_000));
    const ok = await curl(['-X', 'PUT', '-H', 'Expect: 100-continue', '--data-binary', `@${body}`, `http://${peer}/public/big`]);
    expect(ok.stdout).toMatch(/^PUT \/public\/big 2000000 /);
    const denied = await curl(['-X', 'PUT', '-H', 'Expect: 100-continue', '-w', '%{http_code}', '-o', '/dev/null', '--data-binary', `@${body}`, `http://${peer}/private/big`]);
    expect(denied.stdout).toBe('403');
    expect(seen.some((s) => s.includes('/private/big'))).toBe(false);
  });
});

describe('HTTP/2 and gRPC', () => {
  it('decides per stream: a denied stream gets 403, the others on the same connection go on (nghttp)', async () => {
    const r = await topo.execAsync(topo.podNs, 'nghttp', ['-n', '-s', `http://${peer}:8080/public/one`, `http://${peer}:8080/private/two`, `http://${peer}:8080/public/three`], { uid: APP_UID });
    // nghttp's statistics: id, responseEnd, requestStart, process, code, size, path.
    const statuses = [...r.stdout.matchAll(/^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s/gm)].map((m) => m[1]);
    expect(statuses.sort()).toEqual(['200', '200', '403']);
    expect(seen).toContain('seen h2 GET /public/three');
    expect(seen).not.toContain('seen h2 GET /private/two');
    await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'http2' && l7(x).path === '/private/two' && x.verdict === 'denied');
  });

  it('keeps concurrent streams of one session apart (Node http2 client)', async () => {
    const paths = ['/public/a1', '/private/a2', '/public/a3', '/private/a4', '/public/a5'];
    const r = await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'h2-client.mjs'), `http://${peer}:8080`, ...paths], { uid: APP_UID });
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 5).map((l) => l.split(' ')[1])).toEqual(['200', '403', '200', '403', '200']);
    expect(lines[0]).toContain('GET /public/a1 0');
    // The HPACK state stayed in step: a request after the denied ones still decodes on the server.
    expect(seen).toContain('seen h2 GET /public/a5');
  });

  it('denies one gRPC method while another passes on the same channel; streaming too', async () => {
    const r = await topo.execAsync(topo.podNs, NODE, [join(TOOLS, 'grpc-client.mjs'), `${peer}:50051`, 'SayHello:a', 'SayGoodbye:b', 'SayHello:c', 'StreamHellos:d'], { uid: APP_UID });
    expect(r.stdout.trim().split('\n')).toEqual(['SayHello ok hello a', 'SayGoodbye error 7', 'SayHello ok hello c', 'StreamHellos ok hello d #0|hello d #1|hello d #2']);
    expect(seen).not.toContain('seen grpc SayGoodbye b');
    const denied = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'grpc' && l7(x).grpcMethod === 'SayGoodbye');
    expect(denied).toMatchObject({ verdict: 'denied', ruleId: 'default' });
    expect(l7(denied)).toMatchObject({ service: 'test.Greeter', grpcStatus: 7 });
    const ok = await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'grpc' && l7(x).grpcMethod === 'SayHello');
    expect(ok).toMatchObject({ verdict: 'allowed', ruleId: 'grpc-greeter' });
    expect(l7(ok).grpcStatus).toBe(0);
  });
});

describe('TLS', () => {
  it('allows by SNI without decrypting, and resets a denied SNI (openssl s_client, curl)', async () => {
    const ok = topo.exec(topo.podNs, 'openssl', ['s_client', '-connect', `${peer}:443`, '-servername', 'allowed.example.com', '-quiet'], { uid: APP_UID, input: '' });
    expect(ok.stdout).toContain('tls ok allowed.example.com');
    const bad = topo.exec(topo.podNs, 'openssl', ['s_client', '-connect', `${peer}:443`, '-servername', 'blocked.example.org', '-quiet'], { uid: APP_UID, input: '' });
    expect(bad.stdout).not.toContain('tls ok');
    const viaCurl = await curl(['-k', '--http0.9', '--resolve', `allowed.example.com:443:${peer}`, 'https://allowed.example.com/']);
    expect(viaCurl.stdout).toContain('tls ok allowed.example.com');
    const rec = await sidecar.waitForRecord((x) => x.type === 'connection' && x.protocol === 'tls' && x.verdict === 'denied');
    expect(rec.ruleId).toBe('default');
    expect(seen).not.toContain('seen tls blocked.example.org');
  });
});

describe('DNS', () => {
  it('answers allowed names and refuses others, over UDP and TCP (dig)', async () => {
    for (const tcp of [[], ['+tcp']]) {
      const ok = await topo.execAsync(topo.podNs, 'dig', [...tcp, '+tries=1', '+time=3', `@${peer}`, 'www.example.com', 'A'], { uid: APP_UID });
      expect(ok.stdout).toContain('status: NOERROR');
      expect(ok.stdout).toMatch(/www\.example\.com\.\s+60\s+IN\s+A\s+10\.77\.0\.99/);
      const denied = await topo.execAsync(topo.podNs, 'dig', [...tcp, '+tries=1', '+time=3', `@${peer}`, 'exfil.evil.test', 'A'], { uid: APP_UID });
      expect(denied.stdout).toContain('status: REFUSED');
    }
    const nx = await topo.execAsync(topo.podNs, 'dig', ['+tries=1', '+time=3', 'gone.nx'], { uid: APP_UID });
    expect(nx.stdout).toContain('status: NXDOMAIN');
    await sidecar.waitForRecord((x) => x.type === 'request' && x.protocol === 'dns' && l7(x).name === 'gone.nx' && l7(x).rcode === 'NXDOMAIN');
    // A query that does not parse (a label length running past its name) gets FORMERR, not silence.
    const malformed = `const s=require('dgram').createSocket('udp4');const q=Buffer.from('1234010000010000000000000778786578000001 0001'.replace(/ /g,''),'hex');s.on('message',m=>{console.log('rcode',m[3]&15,'id',m.readUInt16BE(0).toString(16));process.exit(0)});s.send(q,53,'${peer}');setTimeout(()=>{console.log('timeout');process.exit(1)},2000)`;
    const formerr = await topo.execAsync(topo.podNs, NODE, ['-e', malformed], { uid: APP_UID });
    expect(formerr.stdout.trim()).toBe('rcode 1 id 1234');
    const refused = requests((x) => x.protocol === 'dns' && l7(x as never).name === 'exfil.evil.test');
    expect(refused.length).toBe(2);
    for (const r of refused) expect(r).toMatchObject({ verdict: 'denied', ruleId: 'default' });
    expect(seen.filter((s) => s.startsWith('seen dns exfil'))).toEqual([]);
  });
});

describe('server-first protocols', () => {
  it("hears a server that speaks first at once, with no port list (the client sends nothing)", async () => {
    const r = await topo.client(topo.podNs, ['first-line', peer, '2525']);
    const [greeting, ms] = [r.stdout.trim().replace(/ \d+$/, ''), Number(r.stdout.trim().split(' ').pop())];
    expect(greeting).toBe('220 greeting from 2525');
    expect(ms).toBeLessThan(500);
  });
});

describe('rules changing under traffic', () => {
  it('applies a changed rule file to the next request of an open connection', async () => {
    const trigger = join(topo.dir, 'go');
    const client = topo.client(topo.podNs, ['keepalive', peer, '80', '/public/before', '/public/after', trigger]);
    await sidecar.waitForRecord((x) => x.type === 'request' && l7(x).path === '/public/before');
    topo.writeFile('sidecar.yaml', config('protect', RULES.replace('paths: ["/public/**"] }\n  - id: tls-allowed', 'paths: ["/public/before"] }\n  - id: tls-allowed')));
    await waitFor(() => sidecar.stderr.includes('rules reloaded'));
    writeFileSync(trigger, '');
    const r = await client;
    expect(r.stdout.trim().split('\n')).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 403 Forbidden']);
  });

  it('keeps the last good rules when the file breaks, says why, and counts it', async () => {
    topo.writeFile('sidecar.yaml', config('protect', '\n  - id: broken\n    action: maybe\n'));
    await waitFor(() => sidecar.stderr.includes('rules rejected'));
    expect(sidecar.stderr).toMatch(/rules\[0\]\.action/);
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${peer}/public/before`]);
    expect(r.stdout).toBe('200');
    const metricsText = topo.exec(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/metrics']).stdout;
    expect(metricsText).toMatch(/sidewall_policy_reloads_total\{result="failure"\} [1-9]/);
    topo.writeFile('sidecar.yaml', config('protect'));
    await waitFor(() => (sidecar.stderr.match(/rules reloaded/g) ?? []).length >= 2);
  });

  it('keeps enforcing while the rule file is empty (a writer truncates before it writes)', async () => {
    // An empty config would load as the defaults (monitor mode, no rules): the firewall open
    // for as long as the writer takes. Here the writer takes its time.
    const from = sidecar.stderr.length;
    topo.writeFile('sidecar.yaml', '');
    await waitFor(() => /config file is empty|"mode":"monitor"/.test(sidecar.stderr.slice(from)));
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${peer}/private/while-empty`]);
    await logBarrier();
    expect(seen).not.toContain('seen http1 GET /private/while-empty');
    expect(r.stdout).toBe('403');
    expect(sidecar.stderr.slice(from)).toContain('keeping the last good rules');
    topo.writeFile('sidecar.yaml', config('protect')); // the same rules as before: nothing to reload
  });

  it('refuses to start on a broken rule file, naming the rule and field', () => {
    const bad = topo.writeFile('broken.yaml', config('protect', '\n  - id: a\n    action: allow\n    ports: [70000]\n'));
    const r = topo.exec(topo.podNs, NODE, [CLI, 'proxy', '--config', bad], { uid: PROXY_UID });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/rules\[0\]\.ports/);
  });
});

describe('hostile input', () => {
  it('closes malformed and random streams cleanly, records them, and keeps serving', async () => {
    const hostile = [
      'GET /public/a HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n',
      'GET /public/a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      `GET /public/${'a'.repeat(70_000)} HTTP/1.1\r\nhost: x\r\n\r\n`,
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\xff\xff\xff\x01\x00\x00\x00\x01garbage',
    ];
    const before = sidecar.records.length;
    for (const input of hostile) {
      const r = topo.exec(topo.podNs, 'nc', ['-q', '2', '-w', '2', peer, input.startsWith('PRI') ? '8080' : '80'], { uid: APP_UID, input });
      expect(r.stdout).not.toMatch(/^HTTP\/1\.1 200/);
    }
    for (let i = 0; i < 8; i++) {
      const bytes = Buffer.from(Array.from({ length: 64 + i * 37 }, (_, j) => (j * 7919 + i * 104729) & 0xff));
      topo.exec(topo.podNs, 'nc', ['-q', '1', '-w', '1', peer, '80'], { uid: APP_UID, input: bytes.toString('latin1') });
    }
    // Each nc ended its connection; its final record follows.
    const closed = () => sidecar.records.slice(before).filter((r) => r.type === 'connection' && r.reason !== 'open');
    await until(() => closed().length >= hostile.length + 8, `a final record per hostile stream (${closed().length} of ${hostile.length + 8})`);
    expect(closed().some((r) => String(r.reason).startsWith('parser-error:'))).toBe(true);
    expect(sidecar.process?.exitCode).toBeNull();
    const ok = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${peer}/public/still-serving`]);
    expect(ok.stdout).toBe('200');
    expect(seen.filter((l) => l.includes('aaaaaaaaaa'))).toEqual([]);
  }, 60_000);
});

describe('sidewall observe', () => {
  it('shows denied requests as they happen, from the running sidecar\'s admin port', async () => {
    // As the sidecar's own user: `kubectl exec` into sidewall-proxy (the flow stream is not for apps).
    const observe = topo.start(topo.podNs, NODE, [CLI, 'observe', '--admin', '127.0.0.1:15000', '--verdict', 'denied', '--protocol', 'http', '--follow', '-o', 'json'], { uid: PROXY_UID });
    // Subscribed is an event we cannot see from here: request again until observe shows one (a
    // fixed sleep was too short for the CLI to start on a loaded machine).
    const shown = waitForLine(observe, (l) => l.includes('/private/observed'), 15_000, 'sidewall observe');
    let line: string | undefined;
    void shown.then((l) => (line = l), () => undefined);
    for (let i = 0; i < 30 && line === undefined; i++) {
      await curl(['-o', '/dev/null', `http://${peer}/private/observed`]);
      await Promise.race([shown, new Promise((r) => setTimeout(r, 500))]).catch(() => undefined);
    }
    line = await shown;
    const record = JSON.parse(line) as { verdict: string; ruleId: string; type: string };
    expect(record).toMatchObject({ type: 'request', verdict: 'denied', ruleId: 'default' });
    const table = topo.exec(topo.podNs, NODE, [CLI, 'observe', '--verdict', 'denied', '--last', '5'], { uid: PROXY_UID });
    expect(table.status).toBe(0);
    expect(table.stdout).toContain('/private/observed');
    observe.kill('SIGINT');
  });
});

describe('monitor mode', () => {
  it('lets denied traffic pass and records would-deny with the rule', async () => {
    const from = sidecar.stderr.length;
    topo.writeFile('sidecar.yaml', config('monitor'));
    await waitFor(() => /rules reloaded.*"mode":"monitor"|"mode":"monitor".*rules reloaded/.test(sidecar.stderr.slice(from)));
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${peer}/private/monitored`]);
    expect(r.stdout).toBe('200');
    const rec = await sidecar.waitForRecord((x) => x.type === 'request' && l7(x).path === '/private/monitored');
    expect(rec).toMatchObject({ verdict: 'would-deny', ruleId: 'default' });
    await until(() => seen.includes('seen http1 GET /private/monitored'), 'the would-deny request in the server log');
  });

  it('emitted only schema-valid records', () => {
    assertValidFlowRecords(sidecar.records);
  });

  it('closed and recorded every connection once its clients were gone', async () => {
    let open: unknown[] = [];
    for (let i = 0; i < 20; i++) {
      open = JSON.parse(topo.exec(topo.podNs, 'curl', ['-s', 'http://127.0.0.1:15000/connections'], { uid: PROXY_UID }).stdout) as unknown[];
      if (open.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(open).toEqual([]);
  });
});

let barriers = 0;
/**
 * Orders the servers' log after what came before, instead of a fixed wait: one allowed request
 * more, on a new connection; the servers are one process that logs in order, so once its line is
 * in, the line of any request that reached them before it is too.
 */
async function logBarrier(): Promise<void> {
  const path = `/public/barrier-${++barriers}`;
  expect((await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${peer}${path}`])).stdout).toBe('200');
  await until(() => seen.includes(`seen http1 GET ${path}`), `${path} in the servers' log`);
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms; sidecar stderr: ${sidecar.stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
