// Differential test of request framing: the same client bytes go to sidewall's HTTP/1 parser and
// to Node's real HTTP server (node:http, default options, over a loopback socket). Whatever the
// server executed must be a request sidewall saw and decided, with the same method, target and
// body length — or sidewall refused the stream before the bytes that differ (the proxy forwards
// nothing past the point where its parser failed, so the server gets only that prefix).
// Hand-written smuggling and framing variants, then fast-check streams built from the same pieces
// (HTTP1_DIFF_RUNS, default 1500; raise it for a nightly-style run).
import fc from 'fast-check';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http1Parser } from '../../../src/protocols/http1/http1-parser.js';

interface Seen {
  method: string;
  target: string;
  bodyBytes: number | null;
}

const RUNS = Number(process.env.HTTP1_DIFF_RUNS ?? 1500);

let server: Server;
let port = 0;
const byPort = new Map<number, Seen[]>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const list = byPort.get(req.socket.remotePort ?? -1);
    const seen: Seen = { method: req.method ?? '', target: req.url ?? '', bodyBytes: null };
    list?.push(seen);
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      seen.bodyBytes = n;
      res.end('ok');
    });
    req.on('error', () => undefined);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // CONNECT and Upgrade requests reach these events instead of the request handler: they count
  // as executed too (the server got them), and nothing after them is HTTP for it.
  for (const event of ['connect', 'upgrade'] as const) {
    server.on(event, (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex) => {
      byPort.get(req.socket.remotePort ?? -1)?.push({ method: req.method ?? '', target: req.url ?? '', bodyBytes: null });
      socket.destroy();
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Sends bytes, half-closes, and returns what the server executed once both ends closed. */
function serve(bytes: Buffer): Promise<Seen[]> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let list: Seen[] = [];
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('connect', () => {
      list = [];
      byPort.set(socket.localPort!, list);
      socket.end(bytes);
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      byPort.delete(socket.localPort!);
      // The handler's 'end' may still be pending when the socket closes on the client side.
      setImmediate(() => resolve(list));
    });
    socket.on('timeout', reject);
  });
}

interface SidewallView {
  requests: Seen[];
  /** Requests after which a server stops reading (Connection: close, HTTP/1.0 without keep-alive). */
  closeAfter: number;
  /** Bytes the proxy could have forwarded: all, or those before its parser refused/held. */
  forwardable: number;
  refused: string | null;
}

function sidewall(bytes: Buffer): SidewallView {
  const p = new Http1Parser();
  const r = p.feed('client', bytes);
  const requests: Seen[] = [];
  let lastEnd = 0;
  let held = false;
  let closeAfter = Number.POSITIVE_INFINITY;
  for (const e of r.events) {
    if (e.type === 'http.request') {
      requests.push({ method: e.method, target: e.path, bodyBytes: null });
      const connection = e.headers.filter(([n]) => n === 'connection').map(([, v]) => v.toLowerCase()).join(',');
      const closes = e.version === '1.0' ? !connection.includes('keep-alive') : connection.includes('close');
      if (closes) closeAfter = Math.min(closeAfter, requests.length);
      if (e.upgrade !== null || e.method === 'CONNECT') held = true;
    }
    if (e.type === 'http.request-end') {
      requests[requests.length - 1]!.bodyBytes = e.bodyBytes;
      lastEnd = e.end;
    }
  }
  if (r.error !== null) return { requests, closeAfter, forwardable: r.error.offset, refused: r.error.message };
  // Upgrade/CONNECT: what follows waits for the server's answer (none comes in this test).
  if (held) return { requests, closeAfter, forwardable: lastEnd, refused: null };
  return { requests, closeAfter, forwardable: bytes.length, refused: null };
}

async function compare(bytes: Buffer): Promise<{ sw: SidewallView; node: Seen[] }> {
  const sw = sidewall(bytes);
  const node = await serve(bytes.subarray(0, sw.forwardable));
  const show = JSON.stringify(bytes.toString('latin1'));
  expect(node.length, `server executed a request sidewall never saw: ${show}\nnode ${JSON.stringify(node)}\nsidewall ${JSON.stringify(sw)}`).toBeLessThanOrEqual(sw.requests.length);
  for (const [i, n] of node.entries()) {
    const s = sw.requests[i]!;
    expect([n.method, n.target], show).toEqual([s.method, s.target]);
    if (n.bodyBytes !== null && s.bodyBytes !== null) expect(n.bodyBytes, show).toBe(s.bodyBytes);
  }
  if (sw.refused === null) {
    // The other way round: what sidewall accepted and let through, the server executed too
    // (a server refusing what we passed means we framed it differently).
    const expected = Math.min(sw.requests.length, sw.closeAfter);
    expect(node.length, `sidewall accepted what the server refused: ${show}\nnode ${JSON.stringify(node)}\nsidewall ${JSON.stringify(sw)}`).toBe(expected);
  }
  return { sw, node };
}

const CASES: Record<string, string> = {
  'plain keep-alive': 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n',
  'CL body then request': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: h\r\n\r\n',
  'CL + TE': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'TE + CL': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'duplicate CL differing': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 26\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'duplicate CL equal': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'CL list': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc',
  'CL plus sign': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc',
  'CL hex': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc',
  'CL huge': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\nabc',
  'TE chunked, identity': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE identity, chunked': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE two fields': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE xchunked': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE space before colon': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE tab value': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'TE obs-fold': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE vertical tab': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'TE uppercase': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'TE on HTTP/1.0': 'POST /a HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'bare LF line ends': 'GET /a HTTP/1.1\nHost: h\n\nGET /x HTTP/1.1\nHost: h\n\n',
  'bare LF in one header': 'GET /a HTTP/1.1\r\nHost: h\nX: y\r\n\r\n',
  'bare CR': 'GET /a HTTP/1.1\r\nHost: h\rX: y\r\n\r\n',
  'bare CR in value': 'GET /a HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n',
  'chunk extension': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'chunk extension quoted': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a="x\r\ny"\r\nabc\r\n0\r\n\r\n',
  'chunk extension bare LF': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n',
  'chunk size spaces': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n',
  'chunk size leading zeros': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n0\r\n\r\n',
  'chunk size huge': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n',
  'chunk size negative': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n',
  'chunk size 0x': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n',
  'chunk data without CRLF': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n',
  'chunk trailer': 'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n',
  'whitespace before colon': 'GET /a HTTP/1.1\r\nHost : h\r\n\r\n',
  'header without colon': 'GET /a HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n',
  'leading CRLF': '\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n',
  'leading LF': '\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n',
  'trailing CRLF after body': 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n',
  'two spaces after method': 'GET  /a HTTP/1.1\r\nHost: h\r\n\r\n',
  'tab separator': 'GET\t/a HTTP/1.1\r\nHost: h\r\n\r\n',
  'lowercase method': 'get /a HTTP/1.1\r\nHost: h\r\n\r\n',
  'unknown method': 'FOO /a HTTP/1.1\r\nHost: h\r\n\r\n',
  'HTTP/0.9': 'GET /a\r\n\r\n',
  'HTTP/2.0 line': 'GET /a HTTP/2.0\r\nHost: h\r\n\r\n',
  'HTTP/1.2': 'GET /a HTTP/1.2\r\nHost: h\r\n\r\n',
  'NUL in target': 'GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n',
  'NUL in value': 'GET /a HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n',
  'NUL in name': 'GET /a HTTP/1.1\r\nHost: h\r\nX\x00: b\r\n\r\n',
  'obs-text in target': 'GET /a\xffb HTTP/1.1\r\nHost: h\r\n\r\n',
  'obs-text in value': 'GET /a HTTP/1.1\r\nHost: h\r\nX: \xff\r\n\r\n',
  'backslash target': 'GET /a\\..\\b HTTP/1.1\r\nHost: h\r\n\r\n',
  'fragment in target': 'GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n',
  'absolute-form': 'GET http://secret.example/x HTTP/1.1\r\nHost: h\r\n\r\n',
  'asterisk-form': 'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
  'GET with CL body': 'GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 34\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'GET with chunked body': 'GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n',
  'HEAD with body': 'HEAD /a HTTP/1.1\r\nHost: h\r\nContent-Length: 34\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'expect 100-continue': 'POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok',
  'upgrade websocket': 'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'upgrade with body': 'POST /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'upgrade without connection token': 'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'connect': 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'connection close then more': 'GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'HTTP/1.0 then more': 'GET /a HTTP/1.0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'HTTP/1.0 keep-alive': 'GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n',
  'duplicate host': 'GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
  'empty header name': 'GET /a HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n',
  'space in target': 'GET /a b HTTP/1.1\r\nHost: h\r\n\r\n',
};

describe('HTTP/1 framing agrees with node:http, or sidewall refuses', () => {
  it.each(Object.entries(CASES))('%s', async (_name, raw) => {
    await compare(Buffer.from(raw, 'latin1'));
  });

  it('refuses what servers that ignore GET bodies would run as a second request', async () => {
    const { sw } = await compare(Buffer.from(CASES['GET with CL body']!, 'latin1'));
    expect(sw.refused).toMatch(/body/);
  });

  it('agrees on random streams built from smuggling pieces', async () => {
    const method = fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'get', 'CONNECT', 'OPTIONS', 'G\x00ET', 'PRI');
    const target = fc.constantFrom('/', '/a', '/a b', '/a\tb', '*', 'http://x/y', '/%00', '/a\\b', '/\xff', '//x', 'x:1', '');
    const version = fc.constantFrom(' HTTP/1.1', ' HTTP/1.0', '', ' HTTP/1.2', ' http/1.1', ' HTTP/1.1 ');
    const eol = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r', '\r\r\n');
    const header = fc.constantFrom(
      'Host: h', 'Content-Length: 3', 'Content-Length: 0', 'Content-Length: 5', 'Content-Length:  3 ', 'Content-Length: 3,3',
      'Transfer-Encoding: chunked', 'Transfer-Encoding: identity', 'Transfer-Encoding: chunked, identity',
      'Transfer-Encoding : chunked', ' Transfer-Encoding: chunked', 'Transfer-encoding: Chunked', 'Transfer-Encoding:\x0bchunked',
      'Connection: close', 'Connection: upgrade', 'Upgrade: websocket', 'Expect: 100-continue', 'X: \x00', 'X:\ty', 'Bad Name: x', 'X',
    );
    const body = fc.constantFrom('', 'abc', '3\r\nabc\r\n0\r\n\r\n', '0\r\n\r\n', '3;x=y\r\nabc\r\n0\r\n\r\n', 'ff\r\n', '3\nabc\n0\n\n', 'hello');
    const message = fc
      .tuple(method, target, version, eol, fc.array(fc.tuple(header, eol), { maxLength: 5 }), eol, body)
      .map(([m, t, v, e1, hs, e2, b]) => `${m} ${t}${v}${e1}${hs.map(([h, e]) => h + e).join('')}${e2}${b}`);
    const stream = fc.array(message, { minLength: 1, maxLength: 3 }).map((ms) => Buffer.from(ms.join(''), 'latin1'));
    await fc.assert(
      fc.asyncProperty(stream, async (bytes) => {
        await compare(bytes);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});
