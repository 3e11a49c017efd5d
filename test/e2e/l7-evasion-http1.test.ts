// HTTP/1 (and HTTP/2 paths) evasion suite: requests crafted to reach what the rules forbid, sent
// through the sidecar to REAL servers — nginx (nginx-light), Python's http.server and a Node
// server — that log every request they run. A forbidden request counts as blocked only when no
// server log line shows it: each attempt carries a tag (`t=N` in its query) and, once a later
// allowed marker request shows up in the same server's log (servers log in order), no line may
// carry the tag. Issue 14: "Paths", "Host", "Upgrades", "Desync", plus mixed case, double
// encoding, overlong UTF-8, `;` parameters, `//`, `%00`, smuggling framings.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_UID, NODE, TOOLS, Topology, waitForLine } from '../harness/netns.js';
import { Sidecar } from '../harness/sidecar.js';

const topo = new Topology({ name: 'h1', subnet: 109 });
const sidecar = new Sidecar(topo);
const peer = topo.peerIp;
const PORTS = { nginx: 80, nginxH2: 8080, python: 8000, node: 8081 } as const;
type Server = 'nginx' | 'python' | 'node';
const streamed: Record<'python' | 'node', string[]> = { python: [], node: [] };
/** nginx cannot log to a pipe (/dev/stdout is a socket here): its access log is a file. */
const nginxLog = () => join(topo.dir, 'nginx-access.log');
const logs = {
  get nginx(): string[] {
    return existsSync(nginxLog()) ? readFileSync(nginxLog(), 'latin1').split('\n').filter((l) => l.startsWith('seen ')) : [];
  },
  python: streamed.python,
  node: streamed.node,
};

const RULES = `
  - id: public
    action: allow
    protocol: http
    http: { paths: ["/public/**"], hosts: ["api.example"] }
  - id: public-h2
    action: allow
    protocol: http2
    http: { paths: ["/public/**"], hosts: ["api.example"] }
`;

function nginxConf(dir: string): string {
  const vhosts = (port: number, h2: string) => `
  server { listen ${peer}:${port} default_server${h2}; server_name api.example; root ${dir}/www/api; }
  server { listen ${peer}:${port}${h2}; server_name secret.example; root ${dir}/www/secret; }`;
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  log_format seen 'seen nginx "$request" uri=$uri host=$host status=$status';
  access_log ${dir}/nginx-access.log seen;
  default_type text/plain;
  ${vhosts(PORTS.nginx, '')}
  ${vhosts(PORTS.nginxH2, ' http2')}
}
`;
}

function collect(server: 'python' | 'node', child: import('node:child_process').ChildProcess): void {
  let rest = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    rest += d;
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('seen ')) streamed[server].push(line);
  });
}

let tag = 0;
const nextTag = () => `t=${++tag}`;

/** Sends raw bytes (then more parts when the answer so far matches) and returns what came back. */
async function raw(port: number, parts: Array<string | [RegExp, string]>): Promise<string> {
  const args = [join(TOOLS, 'raw-http.mjs'), peer, String(port)];
  for (const part of parts) {
    if (typeof part === 'string') args.push(Buffer.from(part, 'latin1').toString('base64'));
    else args.push(part[0].source, Buffer.from(part[1], 'latin1').toString('base64'));
  }
  const r = await topo.execAsync(topo.podNs, NODE, args, { uid: APP_UID });
  if (r.status !== 0) throw new Error(`raw-http failed: ${r.stderr}`);
  return r.stdout;
}

const portOf = (server: Server) => PORTS[server];

/**
 * Proves from the server's side that none of `tags` ran: an allowed marker request is sent after
 * them on a new connection; once its line is in the server's log, no line may carry a tag.
 */
async function expectNotServed(server: Server, tags: string[]): Promise<void> {
  const marker = nextTag();
  const answer = await raw(portOf(server), [`GET /public/x?${marker} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n`]);
  expect(answer).toMatch(/^HTTP\/1\.[01] 200/);
  const deadline = Date.now() + 5000;
  while (!logs[server].some((l) => l.includes(marker))) {
    if (Date.now() > deadline) throw new Error(`${server} never logged the marker ${marker}: ${logs[server].slice(-3).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const served = logs[server].filter((l) => tags.some((t) => new RegExp(`[?&]${t}\\b`).test(l)));
  expect(served, `${server} ran a forbidden request`).toEqual([]);
}

beforeAll(async () => {
  topo.create();
  const www = join(topo.dir, 'www');
  for (const [file, body] of [['api/public/x', 'public x\n'], ['api/admin/x', 'ADMIN SECRET\n'], ['secret/x', 'VHOST SECRET\n'], ['api/public/ws', 'ws\n']] as const) {
    mkdirSync(join(www, file, '..'), { recursive: true, mode: 0o755 });
    writeFileSync(join(www, file), body, { mode: 0o644 });
  }
  const nginx = topo.start(topo.peerNs, 'nginx', ['-c', topo.writeFile('nginx.conf', nginxConf(topo.dir))]);
  let nginxErr = '';
  nginx.stderr?.setEncoding('utf8').on('data', (d: string) => (nginxErr += d));
  nginx.on('exit', (code) => (nginxErr += ` [nginx exited ${code}]`));
  const python = topo.start(topo.peerNs, '/usr/bin/python3', ['-u', join(TOOLS, 'h1-python-server.py'), peer, String(PORTS.python), join(www, 'api')]);
  const node = topo.start(topo.peerNs, NODE, [join(TOOLS, 'h1-node-server.mjs'), peer, String(PORTS.node)]);
  const ready = [waitForLine(python, (l) => l === 'listening', 10_000, 'python server'), waitForLine(node, (l) => l === 'listening', 10_000, 'node server')];
  collect('python', python);
  collect('node', node);
  await Promise.all(ready);
  sidecar.init();
  await sidecar.start(`mode: protect\ndefaultAction: deny\ntunnels: off\nrules:${RULES}`);
  // nginx logs nothing when it is ready: its first answer is the sign.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await raw(PORTS.nginx, ['GET /public/x HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n']);
    if (answer.startsWith('HTTP/1.1 200')) break;
    if (Date.now() > deadline) throw new Error(`nginx did not answer: ${answer} ${nginxErr} ${JSON.stringify(sidecar.records.slice(-3))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 90_000);

afterAll(async () => {
  try {
    await sidecar.teardown(); // every accepted connection ended in exactly one final record (throws with the numbers)
  } finally {
    await topo.destroy();
  }
});

const get = (target: string, host = 'api.example', extra = '') => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;

/** Targets that reach /admin/x (or could) on some server; none may run anywhere. */
const EVASIVE_PATHS: Array<[string, (t: string) => string]> = [
  ['..%2f (nginx and Python decode it)', (t) => `/public/..%2fadmin/x?${t}`],
  ['..%2F upper case', (t) => `/public/..%2Fadmin/x?${t}`],
  ['%2f inside a segment', (t) => `/admin%2fx?${t}`],
  ['..%5c', (t) => `/public/..%5cadmin/x?${t}`],
  ['backslashes (new URL() in Node apps)', (t) => `/public/..\\admin\\x?${t}`],
  ['%2e%2e dot segment', (t) => `/public/%2e%2e/admin/x?${t}`],
  ['mixed-case %2E%2e', (t) => `/public/%2E%2e/admin/x?${t}`],
  ['plain ..', (t) => `/public/../admin/x?${t}`],
  ['./..', (t) => `/public/./../admin/x?${t}`],
  ['double slash', (t) => `//admin/x?${t}`],
  ['double slash after public', (t) => `/public//../admin/x?${t}`],
  ['double encoding %252f', (t) => `/public/..%252fadmin/x?${t}`],
  ['double encoding %252e', (t) => `/public/%252e%252e/admin/x?${t}`],
  ['overlong UTF-8 dots %c0%ae', (t) => `/public/%c0%ae%c0%ae/admin/x?${t}`],
  ['overlong UTF-8 slash %c0%af', (t) => `/public/..%c0%afadmin/x?${t}`],
  ['%00 truncation', (t) => `/admin/x%00/public/x?${t}`],
  ['..;/ (Tomcat path parameters)', (t) => `/public/..;/admin/x?${t}`],
  ['; parameter on admin', (t) => `/admin;x=1/x?${t}`],
  ['mixed-case segment', (t) => `/Public/../admin/x?${t}`],
];

describe.each(['nginx', 'python', 'node'] as const)('paths to %s', (server) => {
  it('runs none of the evasive targets, and an ordinary allowed request still works', async () => {
    const tags: string[] = [];
    for (const [, target] of EVASIVE_PATHS) {
      const t = nextTag();
      tags.push(t);
      const answer = await raw(portOf(server), [get(target(t))]);
      expect(answer, target(t)).toMatch(/^HTTP\/1\.1 (400|403) /);
      expect(answer).not.toMatch(/ADMIN SECRET/);
    }
    await expectNotServed(server, tags);
  }, 60_000);
});

describe('paths over HTTP/2 (nginx h2c)', () => {
  it('refuses or denies the same targets as :path', async () => {
    const tags: string[] = [];
    for (const [, target] of EVASIVE_PATHS.filter(([name]) => !name.includes('backslash') && !name.includes('%00'))) {
      const t = nextTag();
      tags.push(t);
      const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '5', '--http2-prior-knowledge', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', '--resolve', `api.example:${PORTS.nginxH2}:${peer}`, `http://api.example:${PORTS.nginxH2}${target(t)}`], { uid: APP_UID });
      expect(r.stdout, target(t)).toMatch(/^(400|403)$/);
    }
    const marker = nextTag();
    const ok = await topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '5', '--http2-prior-knowledge', '--resolve', `api.example:${PORTS.nginxH2}:${peer}`, `http://api.example:${PORTS.nginxH2}/public/x?${marker}`], { uid: APP_UID });
    expect(ok.stdout).toBe('public x\n');
    const deadline = Date.now() + 5000;
    while (!logs.nginx.some((l) => l.includes(marker))) {
      if (Date.now() > deadline) throw new Error('nginx never logged the HTTP/2 marker');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(logs.nginx.filter((l) => tags.some((t) => l.includes(`?${t} `)))).toEqual([]);
  }, 60_000);
});

describe('hosts', () => {
  it.each(['nginx', 'python', 'node'] as const)('an absolute-form target, a second Host, a port trick or no Host never reach %s', async (server) => {
    const tags: string[] = [];
    const attempts = [
      (t: string) => `GET http://secret.example/x?${t} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET http://secret.example:80/public/x?${t} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nHost: api.example\r\nHost: secret.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nHost: secret.example\r\nHost: api.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nHost: api.example:x.secret.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nHost: api.example@secret.example\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nConnection: close\r\n\r\n`,
      (t: string) => `GET /public/x?${t} HTTP/1.1\r\nHost: secret.example\r\nConnection: close\r\n\r\n`,
    ];
    for (const attempt of attempts) {
      const t = nextTag();
      tags.push(t);
      const answer = await raw(portOf(server), [attempt(t)]);
      expect(answer, attempt(t)).not.toMatch(/^HTTP\/1\.1 200/);
      expect(answer).not.toMatch(/VHOST SECRET/);
    }
    await expectNotServed(server, tags);
  }, 60_000);

  it('matches the host case-insensitively and without its port (allowed)', async () => {
    const t = nextTag();
    const answer = await raw(PORTS.nginx, [get(`/public/x?${t}`, 'API.Example:80')]);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(logs.nginx.some((l) => l.includes(`?${t} `))).toBe(true);
  });
});

describe('framing and smuggling', () => {
  it.each(['nginx', 'python', 'node'] as const)('no smuggled request reaches %s', async (server) => {
    const tags: string[] = [];
    const inner = (t: string) => `GET /admin/x?${t} HTTP/1.1\r\nHost: api.example\r\n\r\n`;
    const attempts = [
      // A GET body: Python's do_GET ignores it and runs it as the next request.
      (t: string) => `GET /public/x HTTP/1.1\r\nHost: api.example\r\nContent-Length: ${inner(t).length}\r\n\r\n${inner(t)}`,
      (t: string) => `HEAD /public/x HTTP/1.1\r\nHost: api.example\r\nContent-Length: ${inner(t).length}\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\nContent-Length: ${inner(t).length + 5}\r\n\r\n0\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nContent-Length: 0\r\nContent-Length: ${inner(t).length}\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\nHost: api.example\nContent-Length: 0\n\n${inner(t)}`,
      (t: string) => `POST /public/x HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n${(inner(t).length + 2).toString(16)};x\nab\r\n${inner(t)}\r\n0\r\n\r\n`,
      (t: string) => `GET /public/x HTTP/1.1\r\nHost: api.example\r\nX: a\x00b\r\n\r\n${inner(t)}`,
      (t: string) => `GET /public/x HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n${inner(t)}`,
      (t: string) => `GET /admin/x?${t}\r\n\r\n`,
    ];
    for (const attempt of attempts) {
      const t = nextTag();
      tags.push(t);
      const answer = await raw(portOf(server), [attempt(t)]);
      expect(answer).not.toMatch(/ADMIN SECRET/);
    }
    await expectNotServed(server, tags);
  }, 60_000);

  it('closes a connection where a response has no request outstanding, alerts, and keeps it from the client', async () => {
    // The Python app answers POST without reading the body: the body runs as a request we never
    // saw. Its answer is the sign; the sidecar cuts the connection there.
    const t = nextTag();
    const inner = `GET /admin/x?${t} HTTP/1.1\r\nHost: api.example\r\n\r\n`;
    const answer = await raw(PORTS.python, [`POST /public/x HTTP/1.1\r\nHost: api.example\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`]);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).not.toMatch(/ADMIN SECRET/);
    const alert = await sidecar.waitForRecord((r) => r.type === 'alert' && (r.tunnel as { kind?: string } | undefined)?.kind === 'http-desync');
    expect(alert.dst.port).toBe(PORTS.python);
    // Honest about the limit: a server that ignores a body it was sent runs what is in it.
    expect(logs.python.some((l) => l.includes(`?${t} `))).toBe(true);
  });
});

describe('upgrades', () => {
  it('closes when an app answers 101 to a request that asked for no upgrade: nothing after it reaches the server', async () => {
    // Sent after the 101 would have arrived, and pipelined behind the request.
    const [t1, t2] = [nextTag(), nextTag()];
    const after = await raw(PORTS.node, [`GET /public/switch HTTP/1.1\r\nHost: api.example\r\n\r\n`, [/^/, `GET /admin/x?${t1} HTTP/1.1\r\nHost: api.example\r\n\r\n`]]);
    expect(after).not.toMatch(/101 Switching/);
    const pipelined = await raw(PORTS.node, [`GET /public/switch HTTP/1.1\r\nHost: api.example\r\n\r\nGET /admin/x?${t2} HTTP/1.1\r\nHost: api.example\r\n\r\n`]);
    expect(pipelined).not.toMatch(/101 Switching/);
    await expectNotServed('node', [t1, t2]);
  });

  it('closes when the 101 names another protocol than the request asked for', async () => {
    const t = nextTag();
    const answer = await raw(PORTS.node, [
      `GET /public/wrong HTTP/1.1\r\nHost: api.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
      [/^/, `GET /admin/x?${t} HTTP/1.1\r\nHost: api.example\r\n\r\n`],
    ]);
    expect(answer).not.toMatch(/101 Switching/);
    expect(logs.node.filter((l) => l.startsWith('seen node-upgraded') && l.includes(t))).toEqual([]);
    await expectNotServed('node', [t]);
  });

  it('switches to opaque bytes for an upgrade that was asked for, allowed and named by the 101', async () => {
    const answer = await raw(PORTS.node, [
      `GET /public/ws HTTP/1.1\r\nHost: api.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
      [/101 Switching Protocols[^]*\r\n\r\n/, 'opaque-bytes-after-switch'],
    ]);
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    expect(answer).toContain('opaque-bytes-after-switch');
    expect(logs.node.some((l) => l.includes('opaque-bytes-after-switch'))).toBe(true);
  });
});

describe('records', () => {
  it('gives a request answered 100 Continue then 200 its record (curl upload)', async () => {
    const body = join(topo.dir, 'upload.bin');
    writeFileSync(body, 'x'.repeat(2048), { mode: 0o644 });
    const r = await topo.execAsync(topo.podNs, 'curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Expect: 100-continue', '--data-binary', `@${body}`, '--resolve', `api.example:${PORTS.node}:${peer}`, `http://api.example:${PORTS.node}/public/upload`], { uid: APP_UID });
    expect(r.stdout).toBe('200');
    const record = await sidecar.waitForRecord((x) => x.type === 'request' && (x.l7 as Record<string, unknown>).path === '/public/upload');
    expect(record).toMatchObject({ verdict: 'allowed', ruleId: 'public' });
    expect(record.l7).toMatchObject({ method: 'POST', status: 200, informational: [100] });
  });
});
