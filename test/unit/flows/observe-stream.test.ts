import { afterEach, describe, expect, it, vi } from 'vitest';
import { connect, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createFlowPipeline, createObserveStreamHandler, ObserveHub, OBSERVE_PATH } from '../../../src/flows/index.js';
import type { FlowPipeline, FlowRecord, FlowRecordDraft } from '../../../src/flows/index.js';
import { observeFlows, ObserveStreamError } from '../../../src/flows/observe-client.js';
import { loadProto, protoMethod } from '../../../src/flows/proto-files.js';
import { run as observeCli } from '../../../src/cli/observe.js';
import { assertValidFlowRecords } from './flow-schema.js';
import { draftFor, testPod } from './fixtures.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sidecar {
  pipeline: FlowPipeline;
  hub: ObserveHub;
  server: Http2Server;
  admin: string;
}
const running: Sidecar[] = [];

/** A sidecar's admin HTTP/2 side: a bare http2 server with the flow stream handler mounted. */
async function startSidecar(subscriberQueueSize?: number): Promise<Sidecar> {
  const hub = new ObserveHub(1000);
  const pipeline = createFlowPipeline({ pod: testPod, stdout: false, hub });
  const server = createServer();
  server.on('stream', createObserveStreamHandler(() => hub, subscriberQueueSize === undefined ? {} : { subscriberQueueSize }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sidecar = { pipeline, hub, server, admin: `127.0.0.1:${(server.address() as AddressInfo).port}` };
  running.push(sidecar);
  return sidecar;
}

afterEach(async () => {
  for (const sidecar of running.splice(0)) {
    await sidecar.pipeline.close();
    await new Promise<void>((resolve) => sidecar.server.close(() => resolve()));
  }
  vi.restoreAllMocks();
});

function deniedRequest(path: string): FlowRecordDraft {
  return { ...draftFor(1), l7: { method: 'POST', path, host: 'catalog', status: 403 } };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('admin flow stream (gRPC over node:http2, grpc-js client)', () => {
  it('serves the last N matching records from the ring, then ends', async () => {
    const sidecar = await startSidecar();
    for (let i = 0; i < 100; i++) sidecar.pipeline.emit(draftFor(i));
    const got: FlowRecord[] = [];
    const session = observeFlows({ admin: sidecar.admin, last: 5, follow: false, filter: { verdict: ['denied'], type: ['request'] } }, (r) => got.push(r));
    await session.done;
    assertValidFlowRecords(got);
    // draftFor(i) is a denied request when i % 4 === 1: seq = i + 1 = 82, 86, 90, 94, 98.
    expect(got.map((r) => r.seq)).toEqual([82, 86, 90, 94, 98]);
    expect(got.every((r) => r.verdict === 'denied' && r.type === 'request')).toBe(true);
  });

  it('filters by peer (CIDR, IPv6, namespace/pod), rule and tunnel', async () => {
    const sidecar = await startSidecar();
    for (let i = 0; i < 40; i++) sidecar.pipeline.emit(draftFor(i));
    const seqs = async (filter: Parameters<typeof observeFlows>[0]['filter']): Promise<number[]> => {
      const got: number[] = [];
      await observeFlows({ admin: sidecar.admin, last: 1000, follow: false, filter }, (r) => got.push(r.seq)).done;
      return got;
    };
    expect(await seqs({ peer: ['fd00::/16'] })).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i + 2));
    expect(await seqs({ peer: ['10.0.1.0/24'], rule: ['deny-admin'] })).toEqual([]); // deny-admin records go to fd00::7
    expect((await seqs({ peer: ['shop/cart-0'] })).length).toBe(40);
    expect((await seqs({ peer: ['other/'] })).length).toBe(0);
    expect(await seqs({ tunnel: ['any'] })).toEqual(Array.from({ length: 10 }, (_, i) => 4 * i + 3));
    expect(await seqs({ rule: ['default'], type: ['connection'] })).toEqual(Array.from({ length: 10 }, (_, i) => 4 * i + 4));
  });

  it('follows: denied requests show up as they happen', async () => {
    const sidecar = await startSidecar();
    sidecar.pipeline.emit(deniedRequest('/before'));
    const got: FlowRecord[] = [];
    const session = observeFlows({ admin: sidecar.admin, last: 0, follow: true, filter: { verdict: ['denied'] } }, (r) => got.push(r));
    await waitFor(() => sidecar.hub.subscriberCount === 1);
    for (let i = 0; i < 5; i++) {
      sidecar.pipeline.emit(draftFor(0)); // allowed: filtered out
      sidecar.pipeline.emit(deniedRequest(`/live-${i}`));
      await waitFor(() => got.length === i + 1);
    }
    session.cancel();
    await session.done;
    expect(got.map((r) => r.l7?.['path'])).toEqual(['/live-0', '/live-1', '/live-2', '/live-3', '/live-4']);
    await waitFor(() => sidecar.hub.subscriberCount === 0);
  });

  it('refuses an invalid filter with INVALID_ARGUMENT naming the value', async () => {
    const sidecar = await startSidecar();
    const session = observeFlows({ admin: sidecar.admin, last: 1, follow: false, filter: { peer: ['10.0.0.0/99'] } }, () => undefined);
    const error = await session.done.then(() => null, (err: unknown) => err);
    expect(error).toBeInstanceOf(ObserveStreamError);
    expect((error as ObserveStreamError).grpcCode).toBe(3);
    expect((error as ObserveStreamError).message).toContain('10.0.0.0/99');
  });

  it('a slow observer loses its oldest records and is told exactly how many', async () => {
    const sidecar = await startSidecar(50);
    const method = protoMethod(loadProto('sidewall/flows/v1/flows.proto'), 'sidewall.flows.v1.FlowStream', 'Observe');
    const body = method.requestSerialize({ last: 0, follow: true, filter: {} });
    const prefix = Buffer.from([0, 0, 0, 0, 0]);
    prefix.writeUInt32BE(body.length, 1);
    const session = connect(`http://${sidecar.admin}`);
    const stream = session.request({ ':method': 'POST', ':path': OBSERVE_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    stream.end(Buffer.concat([prefix, body]));
    stream.pause(); // a reader that does not keep up
    await waitFor(() => sidecar.hub.subscriberCount === 1);
    const total = 20_000;
    for (let i = 0; i < total; i++) {
      sidecar.pipeline.emit(draftFor(i));
      if (i % 1000 === 999) await sleep(1);
    }
    // Read everything that was queued, decode the gRPC frames.
    const seqs: number[] = [];
    let lost = 0;
    let pending = Buffer.alloc(0);
    stream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const length = pending.readUInt32BE(1);
        const message = method.responseDeserialize(pending.subarray(5, 5 + length)) as { seq: string; lost?: string };
        seqs.push(Number(message.seq));
        lost += Number(message.lost ?? 0);
        pending = pending.subarray(5 + length);
      }
    });
    stream.resume();
    await waitFor(() => seqs[seqs.length - 1] === total);
    stream.close();
    session.close();
    expect(lost).toBeGreaterThan(0);
    // What arrived plus what was reported lost is everything, in order, without duplicates.
    expect(seqs.length + lost).toBe(total);
    for (let i = 1; i < seqs.length; i++) expect((seqs[i] ?? 0) > (seqs[i - 1] ?? 0)).toBe(true);
  });
});

describe('sidewall observe', () => {
  it('prints denied requests as they happen in a table, and raw JSON with -o json', async () => {
    const sidecar = await startSidecar();
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(...String(chunk).split('\n').filter((l) => l !== ''));
      return true;
    });
    const exit = observeCli(['--admin', sidecar.admin, '--verdict', 'denied', '--follow']);
    await waitFor(() => sidecar.hub.subscriberCount === 1);
    sidecar.pipeline.emit(draftFor(0));
    sidecar.pipeline.emit(deniedRequest('/admin/users'));
    await waitFor(() => lines.length === 2);
    process.emit('SIGINT');
    expect(await exit).toBe(0);
    expect(lines[0]).toMatch(/^TIME\s+TYPE\s+DIR\s+SOURCE\s+DESTINATION\s+PROTO\s+VERDICT\s+RULE\s+DETAIL$/);
    expect(lines[1]).toMatch(/req\s+egress\s+shop\/cart-0:\d+\s+\[fd00::7\]:8080\s+http\s+DENIED\s+deny-admin\s+POST catalog\/admin\/users 403/);

    lines.length = 0;
    expect(await observeCli(['--admin', sidecar.admin, '--last', '1', '-o', 'json', '--rule', 'deny-admin'])).toBe(0);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ seq: 2, verdict: 'denied', l7: { path: '/admin/users' } });
  });

  it('exits 2 with the flag named on bad flags, 1 when no sidecar answers', async () => {
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    expect(await observeCli(['--verdict', 'maybe'])).toBe(2);
    expect(errors.join('')).toContain("--verdict value 'maybe'");
    expect(await observeCli(['--last', 'x'])).toBe(2);
    expect(await observeCli(['--admin', '127.0.0.1:1'])).toBe(1);
    expect(errors.join('')).toMatch(/flow stream of 127\.0\.0\.1:1: UNAVAILABLE/);
  });
});
