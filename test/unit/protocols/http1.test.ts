// HTTP/1.x parser: pairing, framing, offsets the proxy cuts at, switches, hostile input.
import { describe, expect, it } from 'vitest';
import { Http1Parser, HTTP1_MAX_HEAD_BYTES } from '../../../src/protocols/http1/http1-parser.js';
import type { ProtocolEvent, Side } from '../../../src/protocols/types.js';
import { loadFixtures, runStream } from './fixtures.js';

type Ev<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;

function feedAll(steps: Array<[Side, string | Buffer]>, parser = new Http1Parser()) {
  const events: ProtocolEvent[] = [];
  let error = null;
  for (const [side, data] of steps) {
    const r = parser.feed(side, typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
    events.push(...r.events);
    error = r.error ?? error;
  }
  return { events, error, parser };
}

const of = <T extends ProtocolEvent['type']>(events: ProtocolEvent[], type: T) => events.filter((e): e is Ev<T> => e.type === type);

describe('HTTP/1 requests', () => {
  it('gives the head end and request end offsets the proxy holds and releases', () => {
    const req1 = 'POST /orders?x=1 HTTP/1.1\r\nHost: Shop.internal\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';
    const req2 = 'GET /next HTTP/1.1\r\nHost: shop.internal\r\n\r\n';
    const stream = req1 + req2;
    const { events } = feedAll([['client', stream]]);
    const [r1, r2] = of(events, 'http.request');
    expect(r1).toMatchObject({ method: 'POST', path: '/orders?x=1', host: 'Shop.internal', version: '1.1', body: { kind: 'length', length: 5 } });
    expect(r1!.headers).toEqual([['host', 'Shop.internal'], ['content-length', '5'], ['x-a', 'b']]);
    expect(stream.slice(r1!.start, r1!.end)).toBe(req1.slice(0, req1.length - 5));
    const ends = of(events, 'http.request-end');
    expect(stream.slice(ends[0]!.start, ends[0]!.end)).toBe(req1);
    expect(stream.slice(r2!.start, ends[1]!.end)).toBe(req2);
  });

  it('frames chunked bodies split anywhere, with extensions and trailers', () => {
    const body = '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n';
    const stream = `PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${body}GET / HTTP/1.1\r\nHost: h\r\n\r\n`;
    for (let cut = 1; cut < stream.length; cut += 7) {
      const { events, error } = feedAll([['client', stream.slice(0, cut)], ['client', stream.slice(cut)]]);
      expect(error).toBeNull();
      const end = of(events, 'http.request-end')[0]!;
      expect(end.bodyBytes).toBe(11);
      expect(end.end).toBe(stream.indexOf('GET /'));
      expect(of(events, 'http.request')).toHaveLength(2);
    }
  });

  it('gives each keep-alive head its own target and fields, whether heads repeat or differ, split anywhere', () => {
    // Heads that repeat the last one reuse its strings and list; one byte different must show.
    const heads = [
      'GET /a HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nX-Id: 1\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nX-Id: 1\r\n\r\n',
      'GET /b HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nX-Id: 2\r\n\r\n',
      'GET /b HTTP/1.1\r\nHOST: h\r\ncontent-typo: text/plain\r\nX-Id: 2  \r\n\r\n',
      'GET /b HTTP/1.1\r\nhost: H\r\nContent-Type: text/plain\r\n\r\n',
      'GET /bb HTTP/1.1\r\nHost: h\r\nContent-Type-X: text/plainer\r\nX-Id: 2\r\n\r\n',
    ];
    const expected = [
      { path: '/a', headers: [['host', 'h'], ['content-type', 'text/plain'], ['x-id', '1']] },
      { path: '/a', headers: [['host', 'h'], ['content-type', 'text/plain'], ['x-id', '1']] },
      { path: '/b', headers: [['host', 'h'], ['content-type', 'text/plain'], ['x-id', '2']] },
      { path: '/b', headers: [['host', 'h'], ['content-typo', 'text/plain'], ['x-id', '2']] },
      { path: '/b', headers: [['host', 'H'], ['content-type', 'text/plain']] },
      { path: '/bb', headers: [['host', 'h'], ['content-type-x', 'text/plainer'], ['x-id', '2']] },
    ];
    const stream = heads.join('');
    for (let cut = 1; cut < stream.length; cut++) {
      const { events, error } = feedAll([['client', stream.slice(0, cut)], ['client', stream.slice(cut)]]);
      expect(error).toBeNull();
      expect(of(events, 'http.request').map((r) => ({ path: r.path, headers: r.headers }))).toEqual(expected);
    }
    // One byte at a time: every name and value arrives in pieces.
    const parser = new Http1Parser();
    const requests: Array<{ path: string; headers: unknown }> = [];
    for (let i = 0; i < stream.length; i++) {
      for (const ev of parser.feed('client', Buffer.from(stream[i]!, 'latin1')).events) if (ev.type === 'http.request') requests.push({ path: ev.path, headers: ev.headers });
    }
    expect(requests).toEqual(expected);
  });

  it('takes the authority of an absolute-form target as host', () => {
    const { events } = feedAll([['client', 'GET http://user@api.internal:8080/x HTTP/1.0\r\n\r\n']]);
    expect(of(events, 'http.request')[0]!.host).toBe('api.internal:8080');
  });

  it('pairs pipelined responses with requests in order, and skips the body of a HEAD response', () => {
    const { events, error } = feedAll([
      ['client', 'HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n'],
      // HEAD's response announces a length but carries no body; the next bytes are response 2.
      ['server', 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop'],
    ]);
    expect(error).toBeNull();
    const responses = of(events, 'http.response');
    expect(responses.map((r) => [r.requestId, r.status])).toEqual([[0, 200], [1, 404]]);
    expect(of(events, 'http.response-end').map((r) => r.bodyBytes)).toEqual([0, 3]);
  });

  it('reads no body after 204 and 304 even when they carry a Content-Length', () => {
    const { events, error } = feedAll([
      ['client', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n'],
      ['server', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
    ]);
    expect(error).toBeNull();
    expect(of(events, 'http.response').map((r) => [r.requestId, r.status, r.body.kind])).toEqual([[0, 304, 'none'], [1, 204, 'none'], [2, 200, 'length']]);
  });

  it('keeps a request open through 1xx interim responses (100 Continue)', () => {
    const { events } = feedAll([
      ['client', 'POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n'],
      ['server', 'HTTP/1.1 100 Continue\r\n\r\n'],
      ['client', 'ok'],
      ['server', 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'],
    ]);
    expect(of(events, 'http.request')[0]!.expectContinue).toBe(true);
    expect(of(events, 'http.response').map((r) => [r.status, r.interim, r.requestId])).toEqual([[100, true, 0], [103, true, 0], [201, false, 0]]);
  });

  it('reads a response without length until the server closes', () => {
    const p = new Http1Parser();
    feedAll([['client', 'GET / HTTP/1.0\r\n\r\n'], ['server', 'HTTP/1.0 200 OK\r\n\r\nsome body']], p);
    const r = p.end('server');
    expect(r.error).toBeNull();
    expect(r.events).toMatchObject([{ type: 'http.response-end', end: 28, bodyBytes: 9 }]);
  });
});

describe('HTTP/1 protocol switches', () => {
  it('turns both sides opaque after 101 (websocket), from the exact offsets', () => {
    const f = loadFixtures().find((x) => x.file === 'http-websocket-upgrade.json')!;
    const { events, errors } = runStream(new Http1Parser(), f.segments);
    expect(errors).toEqual([]);
    const sw = of(events, 'http.switch')[0]!;
    expect(sw).toMatchObject({ kind: 'upgrade', protocol: 'websocket', requestId: 0 });
    const request = f.segments[0]!.bytes.toString('latin1');
    expect(sw.clientOffset).toBe(request.indexOf('\r\n\r\n') + 4);
    expect(of(events, 'opaque').map((o) => [o.side, o.start])).toEqual([['client', sw.clientOffset], ['server', sw.end]]);
  });

  it('holds client bytes after an Upgrade request and parses them as HTTP/1 when the server refuses', () => {
    const { events, error } = feedAll([
      ['client', 'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n'],
      ['server', 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'],
    ]);
    expect(error).toBeNull();
    const requests = of(events, 'http.request');
    expect(requests.map((r) => [r.path, r.upgrade])).toEqual([['/chat', 'websocket'], ['/after', null]]);
    expect(requests[1]!.start).toBe(requests[0]!.end);
    expect(of(events, 'opaque')).toEqual([]);
  });

  it('turns the connection into a tunnel after CONNECT 200', () => {
    const connect = 'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n';
    const { events } = feedAll([
      ['client', `${connect}\x00\x00\x00\x08`],
      ['server', 'HTTP/1.1 200 Connection Established\r\n\r\nraw'],
    ]);
    expect(of(events, 'http.request')[0]).toMatchObject({ method: 'CONNECT', path: 'db.internal:5432', host: 'db.internal:5432' });
    expect(of(events, 'http.switch')[0]).toMatchObject({ kind: 'connect', protocol: 'db.internal:5432', clientOffset: connect.length });
    expect(of(events, 'opaque').map((o) => o.reason)).toEqual(['http-connect', 'http-connect']);
  });

  it('continues with HTTP/2 events after an h2c upgrade, offsets counted from the connection start', () => {
    const f = loadFixtures().find((x) => x.file === 'http-h2c-upgrade.json')!;
    const { events, errors } = runStream(new Http1Parser(), f.segments);
    expect(errors).toEqual([]);
    expect(of(events, 'http.request')[0]!.upgrade).toBe('h2c');
    const sw = of(events, 'http.switch')[0]!;
    const client = Buffer.concat(f.segments.filter((s) => s.side === 'client').map((s) => s.bytes));
    const server = Buffer.concat(f.segments.filter((s) => s.side === 'server').map((s) => s.bytes));
    const preface = of(events, 'http2.preface')[0]!;
    expect(preface.start).toBe(sw.clientOffset);
    expect(client.toString('latin1', preface.start, preface.end)).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const response = of(events, 'http2.headers').find((h) => h.side === 'server')!;
    expect(response).toMatchObject({ streamId: 1, role: 'response', status: 200 });
    expect(response.headers).toEqual([['content-type', 'text/plain']]);
    expect(server[response.start + 3]).toBe(0x1); // a HEADERS frame header sits at `start`
  });
});

describe('HTTP/1 hostile input', () => {
  it('refuses a head over the cap, also when it arrives in one chunk', () => {
    const big = `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(HTTP1_MAX_HEAD_BYTES)}\r\n\r\n`;
    expect(feedAll([['client', big]]).error?.code).toBe('ERR_HEAD_TOO_LARGE');
    const dribble = feedAll(Array.from({ length: 20 }, () => ['client', 'X'.repeat(4096)] as [Side, string]).map((s, i) => (i === 0 ? ['client', 'GET / HTTP/1.1\r\nX: '] as [Side, string] : s)));
    expect(dribble.error?.code).toBe('ERR_HEAD_TOO_LARGE');
  });

  it.each([
    ['bad request line', 'GET\r\n\r\n'],
    ['control char in target', 'GET /a\x01b HTTP/1.1\r\n\r\n'],
    ['bad header name', 'GET / HTTP/1.1\r\nBad Name(: x\r\n\r\n'],
    ['space before colon', 'POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n'],
    ['NUL in value', 'GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n'],
    ['CL and TE together', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['two different CL', 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'],
    ['non-numeric CL', 'POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\n'],
    ['TE other than chunked', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['bad chunk size', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['bare LF line ends', 'GET / HTTP/1.1\nHost: h\n\n'],
    ['two equal CL', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'],
    ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX: y\r\n\r\n'],
    ['GET with a body', 'GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello'],
    ['HEAD with a chunked body', 'HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ])('%s → ERR_MALFORMED with the offset of the message, parser inert', (_name, input) => {
    const { error, parser } = feedAll([['client', input]]);
    expect(error?.code).toBe('ERR_MALFORMED');
    expect(error?.offset).toBeGreaterThanOrEqual(0);
    expect(error?.offset).toBeLessThanOrEqual(input.length);
    expect(parser.feed('client', Buffer.from('GET / HTTP/1.1\r\n\r\n')).events).toEqual([]);
  });

  it('refuses a malformed response head from the server too', () => {
    const { error } = feedAll([['client', 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'], ['server', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n']]);
    expect(error).toMatchObject({ code: 'ERR_MALFORMED', side: 'server' });
  });

  it('reports a request cut short by the client closing', () => {
    const p = new Http1Parser();
    p.feed('client', Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc'));
    expect(p.end('client').error?.code).toBe('ERR_TRUNCATED');
  });

  it('refuses a response with no request outstanding (a GET body run as a request), after reporting it', () => {
    const { events, error } = feedAll([
      ['client', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n'],
      ['server', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret'],
    ]);
    expect(of(events, 'http.response').map((r) => r.requestId)).toEqual([0, null]);
    expect(error).toMatchObject({ code: 'ERR_PROTOCOL_VIOLATION', side: 'server', offset: 40 });
  });

  it('refuses a 101 to a request that asked for no upgrade, or naming another protocol', () => {
    const unasked = feedAll([['client', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n'], ['server', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n']]);
    expect(unasked.error).toMatchObject({ code: 'ERR_PROTOCOL_VIOLATION', side: 'server' });
    expect(of(unasked.events, 'opaque')).toEqual([]);
    const other = feedAll([
      ['client', 'GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'],
      ['server', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n'],
    ]);
    expect(other.error?.code).toBe('ERR_PROTOCOL_VIOLATION');
    expect(of(other.events, 'opaque')).toEqual([]);
  });
});
