// HTTP/2: a denied request whose header block changed the HPACK dynamic table never reaches the
// server in any form, and later requests that reference the client's table still decode on the
// server to what the client sent (re-encoded from then on). Ambiguous requests are refused.
import { describe, expect, it } from 'vitest';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import type { FilterContext, FilterSink, RequestOutcome } from '../../../src/enforcement/types.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';
import { buildHeadersFrames, buildFrame, FrameType } from '../../../src/protocols/http2/frames.js';
import { createParser } from '../../../src/protocols/registry.js';
import type { Http2HeadersEvent } from '../../../src/protocols/types.js';

function policyOf(rules: unknown[]): CompiledPolicy {
  const r = compilePolicy({ clusterRules: [], workloadRules: rules, defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

class Sink implements FilterSink {
  server: Buffer[] = [];
  outcomes: RequestOutcome[] = [];
  toServer(b: Buffer): void {
    this.server.push(Buffer.from(b));
  }
  toClient(): void {}
  close(): void {}
  request(o: RequestOutcome): void {
    this.outcomes.push(o);
  }
  alert(): void {}
}

const str = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
/** RFC 7541 §6.2.1 literal with incremental indexing, indexed name. */
const incr = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([0x40 | nameIndex]), str(value)]);
/** §6.2.1 with a new name. */
const incrNew = (name: string, value: string) => Buffer.concat([Buffer.from([0x40]), str(name), str(value)]);
const GET_HTTP = Buffer.from([0x82, 0x86]); // :method GET, :scheme http (static 2 and 6)

function run(policy: CompiledPolicy, blocks: Array<[number, Buffer]>): { sink: Sink; served: Http2HeadersEvent[] } {
  const sink = new Sink();
  const facts = { direction: 'egress' as const, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 8080 } };
  const ctx: FilterContext = { facts, policy: () => policy, declaredProtocol: undefined, tunnels: null, dnsMonitor: null, tunnelMode: () => 'off' };
  const f = new ConnectionFilter(ctx, sink, policy.decideConnection(facts));
  f.serverData(buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0)));
  f.clientData(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))]));
  for (const [id, block] of blocks) f.clientData(buildHeadersFrames(id, block, { endStream: true }));
  // The server's view: its own decoder, fed only what reached it.
  const server = createParser('http2');
  const r = server.feed('client', Buffer.concat(sink.server));
  expect(r.error).toBeNull();
  return { sink, served: r.events.filter((e): e is Http2HeadersEvent => e.type === 'http2.headers') };
}

const POLICY = policyOf([{ id: 'public', action: 'allow', protocol: 'http2', http: { paths: ['/public/**'] } }]);

describe('HTTP/2 denied blocks and the HPACK table', () => {
  it('drops a table-changing denied block entirely; later blocks referencing it decode right on the server', () => {
    const denied = Buffer.concat([GET_HTTP, incr(1, 'a.example'), incr(4, '/private/x'), incrNew('x-token', 'secret')]);
    // Dynamic table now: 62 x-token, 63 :path /private/x, 64 :authority a.example.
    const allowed = Buffer.concat([GET_HTTP, Buffer.from([0x80 | 64]), incr(4, '/public/y'), Buffer.from([0x80 | 63])]);
    // 63 is now x-token (the /public/y insert pushed the others down).
    const { served, sink } = run(POLICY, [[1, denied], [3, allowed]]);
    expect(served.map((e) => [e.streamId, e.path, e.authority])).toEqual([[3, '/public/y', 'a.example']]);
    expect(served[0]!.headers).toEqual([['x-token', 'secret']]);
    expect(Buffer.concat(sink.server).includes(Buffer.from('/private/x'))).toBe(false);
    expect(sink.outcomes.map((o) => o.decision.verdict)).toEqual(['denied']);
  });

  it('passes blocks byte for byte while no dropped block changed the table', () => {
    const a = Buffer.concat([GET_HTTP, incr(1, 'a.example'), incr(4, '/public/a')]);
    const b = Buffer.concat([GET_HTTP, Buffer.from([0x80 | 63]), incr(4, '/public/b')]);
    const { served, sink } = run(POLICY, [[1, a], [3, b]]);
    expect(served.map((e) => e.path)).toEqual(['/public/a', '/public/b']);
    expect(Buffer.concat(sink.server).includes(a)).toBe(true);
    expect(Buffer.concat(sink.server).includes(b)).toBe(true);
  });

  it('refuses a request with two content-type fields (grpc-js reads the first) and other duplicates', () => {
    const grpcOnly = policyOf([{ id: 'no-grpc', action: 'deny', protocol: 'grpc' }, { id: 'h2', action: 'allow', protocol: 'http2' }]);
    const twoTypes = Buffer.concat([Buffer.from([0x83, 0x86]), incr(1, 'a'), incr(4, '/pkg.Svc/Method'), incr(31, 'application/grpc'), incr(31, 'text/plain')]);
    const twoPaths = Buffer.concat([GET_HTTP, incr(1, 'a'), incr(4, '/public/x'), incr(4, '/admin')]);
    const hostMismatch = Buffer.concat([GET_HTTP, incr(1, 'a'), incr(4, '/public/x'), incrNew('host', 'b')]);
    const { served, sink } = run(grpcOnly, [[1, twoTypes], [3, twoPaths], [5, hostMismatch]]);
    expect(served).toEqual([]);
    expect(sink.outcomes.map((o) => [o.decision.ruleId, o.l7.ambiguous])).toEqual([
      ['ambiguous-request', 'content-type'],
      ['ambiguous-request', ':path'],
      ['ambiguous-request', 'host'],
    ]);
  });
});
