// HTTP/2 parser: frames and offsets, header blocks (CONTINUATION, padding, priority), gRPC,
// per-direction HPACK state, injected frames, hostile input.
import { describe, expect, it } from 'vitest';
import {
  buildForbiddenResponse, buildFrame, buildGoawayFrame, buildGrpcTrailersOnly, buildHeadersFrames,
  buildRstStreamFrame, buildWindowUpdateFrame, FrameFlag, FrameType,
} from '../../../src/protocols/http2/frames.js';
import { encodeLiteralHeaderBlock } from '../../../src/protocols/http2/hpack-encoder.js';
import { encodeHuffman } from '../../../src/protocols/http2/hpack-huffman.js';
import { Http2Parser, HTTP2_CLIENT_PREFACE } from '../../../src/protocols/http2/http2-parser.js';
import type { ProtocolEvent, Side } from '../../../src/protocols/types.js';
import { loadFixtures, runStream } from './fixtures.js';

type Ev<T extends ProtocolEvent['type']> = Extract<ProtocolEvent, { type: T }>;
const of = <T extends ProtocolEvent['type']>(events: readonly ProtocolEvent[], type: T) => events.filter((e): e is Ev<T> => e.type === type);
const SETTINGS = buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));

function run(steps: Array<[Side, Buffer]>) {
  const parser = new Http2Parser();
  const events: ProtocolEvent[] = [];
  let error = null;
  for (const [side, bytes] of steps) {
    const r = parser.feed(side, bytes);
    events.push(...r.events);
    error = r.error ?? error;
  }
  return { parser, events, error };
}

describe('HTTP/2 on a real node:http2 session', () => {
  const f = loadFixtures().find((x) => x.file === 'http2-node-session.json')!;
  const { events, errors } = runStream(new Http2Parser(), f.segments);
  const client = Buffer.concat(f.segments.filter((s) => s.side === 'client').map((s) => s.bytes));

  it('reports requests as the client sent them (Huffman and dynamic-table coded by nghttp2)', () => {
    expect(errors).toEqual([]);
    const requests = of(events, 'http2.headers').filter((h) => h.role === 'request');
    expect(requests.map((r) => [r.streamId, r.method, r.path, r.authority])).toEqual([
      [1, 'GET', '/catalog?page=2', 'shop.internal'],
      [3, 'GET', '/catalog?page=3', 'shop.internal'],
      [5, 'POST', '/orders', 'shop.internal'],
      [7, 'GET', '/missing', 'shop.internal'],
      [9, 'POST', '/shop.Catalog/GetItem', 'catalog:50051'],
      [11, 'POST', '/shop.Admin/Deny', 'catalog:50051'],
      [13, 'GET', '/slow', 'shop.internal'],
    ]);
    // The second request re-uses fields the first one indexed: nothing new enters the table.
    expect(requests[0]!.mutatesTable).toBe(true);
    expect(requests[1]!.mutatesTable).toBe(false);
    expect(requests[0]!.headers).toContainEqual(['user-agent', 'fixture-client/1.0']);
    expect(requests[1]!.headers).toContainEqual(['user-agent', 'fixture-client/1.0']);
  });

  it('assembles HEADERS + CONTINUATION into one block, with fragment offsets into the stream', () => {
    const big = of(events, 'http2.headers').find((h) => h.streamId === 7 && h.side === 'client')!;
    expect(big.headers).toContainEqual(['x-large', 'v'.repeat(20000)]);
    expect(big.fragments.length).toBe(2);
    const frames = of(events, 'http2.frame').filter((fr) => fr.streamId === 7 && fr.side === 'client');
    expect(frames.map((fr) => fr.frameTypeName)).toEqual(['HEADERS', 'CONTINUATION']);
    expect(big.start).toBe(frames[0]!.start);
    expect(big.end).toBe(frames[1]!.end);
    expect(Buffer.concat(big.fragments.map((fr) => client.subarray(fr.start, fr.end)))).toEqual(big.block);
    // Spans tile the block.
    expect(big.fields.reduce((n, fl) => n + fl.end - fl.start, 0)).toBe(big.block.length);
  });

  it('names gRPC calls and reads grpc-status / grpc-message from trailers', () => {
    const grpc = of(events, 'http2.headers').filter((h) => h.grpc !== null);
    expect(grpc.map((h) => h.grpc)).toEqual([{ service: 'shop.Catalog', method: 'GetItem' }, { service: 'shop.Admin', method: 'Deny' }]);
    const trailers = of(events, 'http2.headers').filter((h) => h.role === 'trailers');
    expect(trailers.map((t) => [t.streamId, t.grpcStatus, t.grpcMessage, t.endStream])).toEqual([
      [9, 0, null, true],
      [11, 7, 'not allowed: ünïcode', true],
    ]);
  });

  it('reports responses, RST_STREAM and GOAWAY', () => {
    const responses = of(events, 'http2.headers').filter((h) => h.role === 'response');
    expect(responses.map((r) => [r.streamId, r.status])).toEqual([[1, 200], [3, 200], [5, 200], [7, 404], [9, 200], [11, 200]]);
    expect(of(events, 'http2.rst-stream')).toMatchObject([{ side: 'client', streamId: 13, errorCode: 8 }]);
    expect(of(events, 'http2.goaway').some((g) => g.side === 'server' && g.lastStreamId === 13)).toBe(true);
  });

  it('gives every frame its exact byte range: the frames tile each side after the preface', () => {
    for (const side of ['client', 'server'] as const) {
      const frames = of(events, 'http2.frame').filter((fr) => fr.side === side);
      let at = side === 'client' ? HTTP2_CLIENT_PREFACE.length : 0;
      for (const fr of frames) {
        expect(fr.start).toBe(at);
        at = fr.end;
      }
      expect(at).toBe(f.segments.filter((s) => s.side === side).reduce((n, s) => n + s.bytes.length, 0));
    }
  });
});

describe('HTTP/2 header blocks', () => {
  const request = encodeLiteralHeaderBlock([[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':authority', 'a.internal']]);

  it('strips padding and priority fields from HEADERS', () => {
    const padded = Buffer.concat([Buffer.from([3]), Buffer.from([0x80, 0, 0, 0, 16]), request, Buffer.alloc(3)]);
    const frame = buildFrame(FrameType.HEADERS, FrameFlag.END_HEADERS | FrameFlag.PADDED | FrameFlag.PRIORITY | FrameFlag.END_STREAM, 1, padded);
    const { events, error } = run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, frame])]]);
    expect(error).toBeNull();
    const h = of(events, 'http2.headers')[0]!;
    expect(h).toMatchObject({ method: 'GET', path: '/p', authority: 'a.internal', scheme: 'https', endStream: true });
    expect(h.fragments).toEqual([{ start: 24 + 9 + 9 + 6, end: 24 + 9 + 9 + 6 + request.length }]);
  });

  it('keeps separate HPACK state per direction', () => {
    // Both sides insert an entry at index 62 of their own table; each side's later reference
    // must resolve against its own table.
    const clientInsert = Buffer.concat([Buffer.from([0x82, 0x84, 0x87, 0x41, 0x0a]), Buffer.from('a.internal')]);
    const serverInsert = Buffer.concat([Buffer.from([0x88, 0x40, 0x05]), Buffer.from('x-who'), Buffer.from([0x06]), Buffer.from('server')]);
    const steps: Array<[Side, Buffer]> = [
      ['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, buildHeadersFrames(1, clientInsert, { endStream: true })])],
      ['server', Buffer.concat([SETTINGS, buildHeadersFrames(1, serverInsert, { endStream: true })])],
      ['client', buildHeadersFrames(3, Buffer.from([0x82, 0x84, 0x87, 0xbe]), { endStream: true })],
      ['server', buildHeadersFrames(3, Buffer.from([0x88, 0xbe]), { endStream: true })],
    ];
    const { events, error } = run(steps);
    expect(error).toBeNull();
    const blocks = of(events, 'http2.headers');
    expect(blocks[2]!.authority).toBe('a.internal');
    expect(blocks[3]!.headers).toEqual([['x-who', 'server']]);
  });

  it('decodes Huffman-coded literals', () => {
    const path = encodeHuffman('/very/long/path/with/huffman?x=1');
    const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x04, 0x80 | path.length]), path]);
    const { events } = run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, buildHeadersFrames(1, block)])]]);
    expect(of(events, 'http2.headers')[0]!.path).toBe('/very/long/path/with/huffman?x=1');
  });

  it('fails with ERR_PROTOCOL_VIOLATION when another frame interrupts a header block', () => {
    const first = buildFrame(FrameType.HEADERS, 0, 1, request.subarray(0, 4));
    const { error } = run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, first, buildWindowUpdateFrame(0, 100)])]]);
    expect(error).toMatchObject({ code: 'ERR_PROTOCOL_VIOLATION', side: 'client', offset: 24 + 9 + 9 + 4 });
  });

  it('fails with ERR_COMPRESSION and the absolute offset of the bad field', () => {
    const block = Buffer.from([0x82, 0xff, 0x00]); // index 127+0: not in any table
    const { error } = run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, buildHeadersFrames(1, block)])]]);
    expect(error).toMatchObject({ code: 'ERR_COMPRESSION', offset: 24 + 9 + 9 + 1 });
  });

  it('refuses a CONTINUATION flood beyond the header block cap', () => {
    const frames = [buildFrame(FrameType.HEADERS, 0, 1, Buffer.alloc(16384, 0x82))];
    for (let i = 0; i < 20; i++) frames.push(buildFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(16384, 0x82)));
    const { error } = run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, ...frames])]]);
    expect(error?.code).toBe('ERR_HEAD_TOO_LARGE');
  });
});

describe('HTTP/2 framing errors', () => {
  it('refuses a client that does not send the preface, at its first byte', () => {
    const r = new Http2Parser().feed('client', Buffer.from('GET / HTTP/1.1\r\n'));
    expect(r.error).toMatchObject({ code: 'ERR_MALFORMED', offset: 0 });
  });

  it('refuses a first frame that is not SETTINGS', () => {
    const { error } = run([['server', buildWindowUpdateFrame(0, 1)]]);
    expect(error?.code).toBe('ERR_PROTOCOL_VIOLATION');
  });

  it('refuses frames over SETTINGS_MAX_FRAME_SIZE and accepts them once the peer raised it', () => {
    const big = buildFrame(FrameType.DATA, 0, 1, Buffer.alloc(20000));
    expect(run([['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, big])]]).error?.code).toBe('ERR_FRAME_TOO_LARGE');
    const raise = Buffer.alloc(6);
    raise.writeUInt16BE(5, 0);
    raise.writeUInt32BE(65536, 2);
    const ok = run([
      ['server', buildFrame(FrameType.SETTINGS, 0, 0, raise)],
      ['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, big])],
    ]);
    expect(ok.error).toBeNull();
  });
});

describe('frames the proxy injects', () => {
  it('a 403 answer parses as a response that does not change the client\'s HPACK table', () => {
    const { events, error } = run([
      ['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'GET'], [':path', '/'], [':scheme', 'http'], [':authority', 'a']]), { endStream: true })])],
      ['server', Buffer.concat([SETTINGS, buildForbiddenResponse(1)])],
    ]);
    expect(error).toBeNull();
    const response = of(events, 'http2.headers').find((h) => h.side === 'server')!;
    expect(response).toMatchObject({ role: 'response', status: 403, mutatesTable: false });
    expect(of(events, 'http2.frame').filter((fr) => fr.side === 'server').map((fr) => [fr.frameTypeName, fr.endStream])).toEqual([['SETTINGS', false], ['HEADERS', false], ['DATA', true]]);
  });

  it('a gRPC trailers-only answer carries grpc-status 7 and the message', () => {
    const { events } = run([
      ['client', Buffer.concat([HTTP2_CLIENT_PREFACE, SETTINGS, buildHeadersFrames(1, encodeLiteralHeaderBlock([[':method', 'POST'], [':path', '/a.B/C'], [':scheme', 'http'], [':authority', 'a'], ['content-type', 'application/grpc']]))])],
      ['server', Buffer.concat([SETTINGS, buildGrpcTrailersOnly(1, 7, 'denied: 100% sure')])],
    ]);
    const answer = of(events, 'http2.headers').find((h) => h.side === 'server')!;
    expect(answer).toMatchObject({ status: 200, grpcStatus: 7, grpcMessage: 'denied: 100% sure', endStream: true });
  });

  it('splits a large block into HEADERS + CONTINUATION, and RST_STREAM / GOAWAY parse back', () => {
    const block = encodeLiteralHeaderBlock([[':status', '200'], ['x-big', 'y'.repeat(40000)]]);
    const { events, error } = run([['server', Buffer.concat([SETTINGS, buildHeadersFrames(1, block), buildRstStreamFrame(1, 8), buildGoawayFrame(1, 0, 'bye')])]]);
    expect(error).toBeNull();
    expect(of(events, 'http2.frame').map((fr) => fr.frameTypeName)).toEqual(['SETTINGS', 'HEADERS', 'CONTINUATION', 'CONTINUATION', 'RST_STREAM', 'GOAWAY']);
    expect(of(events, 'http2.headers')[0]!.headers).toEqual([['x-big', 'y'.repeat(40000)]]);
    expect(of(events, 'http2.rst-stream')[0]).toMatchObject({ streamId: 1, errorCode: 8 });
    expect(of(events, 'http2.goaway')[0]).toMatchObject({ lastStreamId: 1, errorCode: 0, debugData: 'bye' });
  });
});
