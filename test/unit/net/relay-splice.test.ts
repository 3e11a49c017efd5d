// The kernel relay (native/splice-relay.c through src/net/relay-splice.ts) between real loopback
// TCP sockets: every byte arrives in order both ways, FIN is passed on per direction after the
// bytes before it, a reset ends it with the side that reset, counts are exact, and stop() hands
// back bytes in flight so that nothing is lost when JavaScript takes the connection back.
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SpliceRelay, type SpliceEnd } from '../../../src/net/relay-splice.js';

interface Rig {
  /** The application's client socket and the server's accepted socket (the two ends). */
  app: Socket;
  peer: Socket;
  /** The proxy's two sockets: accepted from the app, dialled to the peer. */
  front: Socket;
  back: Socket;
  /** What the dialled socket reads once JavaScript reads it again (it reads into a reused buffer). */
  onBack: (chunk: Buffer) => void;
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function listen(server: Server): Promise<number> {
  closers.push(() => server.close());
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** app → front (proxy listener) ... back → peer (server), with both proxy sockets paused and idle. */
async function rig(): Promise<Rig> {
  let peerResolve!: (s: Socket) => void;
  const peerP = new Promise<Socket>((r) => (peerResolve = r));
  const peerPort = await listen(createServer({ allowHalfOpen: true }, (s) => peerResolve(s)));
  let frontResolve!: (s: Socket) => void;
  const frontP = new Promise<Socket>((r) => (frontResolve = r));
  const frontPort = await listen(createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => frontResolve(s)));
  const app = connect({ port: frontPort, host: '127.0.0.1', allowHalfOpen: true });
  const front = await frontP;
  // As the proxy dials: reading into its own buffer (onread), so that pause() stops reading at once.
  const r = { onBack: (_chunk: Buffer): void => undefined } as Rig;
  const back = connect({
    port: peerPort,
    host: '127.0.0.1',
    allowHalfOpen: true,
    onread: {
      buffer: Buffer.alloc(64 * 1024),
      callback: (n: number, buf: Uint8Array) => {
        r.onBack(Buffer.from(buf.subarray(0, n)));
        return true;
      },
    },
  });
  await new Promise<void>((r) => back.once('connect', () => r()));
  back.pause();
  const peer = await peerP;
  for (const s of [app, peer, front, back]) {
    s.on('error', () => undefined);
    closers.push(() => s.destroy());
  }
  return Object.assign(r, { app, peer, front, back });
}

function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function started(r: Rig): { relay: SpliceRelay; end: Promise<SpliceEnd> } {
  let done!: (e: SpliceEnd) => void;
  const end = new Promise<SpliceEnd>((resolve) => (done = resolve));
  const relay = SpliceRelay.start(r.front, r.back, done);
  expect(relay).not.toBeNull();
  return { relay: relay as SpliceRelay, end };
}

describe('SpliceRelay', () => {
  it('moves 4 MiB each way unchanged, passes each FIN after its bytes, and counts both directions', async () => {
    const r = await rig();
    const { relay, end } = started(r);
    const up = randomBytes(4 << 20);
    const down = randomBytes(4 << 20);
    const atPeer = collect(r.peer);
    const atApp = collect(r.app);
    r.app.end(up);
    // The peer sees the app's FIN only after all of its bytes, and can still answer (half-close).
    expect(sha(await atPeer)).toBe(sha(up));
    r.peer.end(down);
    expect(sha(await atApp)).toBe(sha(down));
    expect(await end).toEqual({ kind: 'done' });
    expect([relay.fromClient, relay.toServer, relay.fromServer, relay.toClient]).toEqual([up.length, up.length, down.length, down.length]);
    expect(relay.pending).toBe(0);
    expect(relay.active).toBe(false);
  });

  it('takes over a connection whose client already finished: the download, then done', async () => {
    const r = await rig();
    const atPeer = collect(r.peer);
    r.app.end('request');
    // The JS relay's part: the client's FIN read and passed on, before the kernel relay starts.
    const requestP = collect(r.front);
    r.front.resume(); // accepted paused (pauseOnConnect), as the proxy's listener does
    const request = await requestP;
    r.back.end(request);
    await new Promise<void>((resolve) => r.back.once('finish', resolve));
    r.front.pause();
    expect((await atPeer).toString()).toBe('request');
    let done!: (e: SpliceEnd) => void;
    const end = new Promise<SpliceEnd>((resolve) => (done = resolve));
    const relay = SpliceRelay.start(r.front, r.back, done, { clientToServer: true, serverToClient: false }) as SpliceRelay;
    expect(relay).not.toBeNull();
    const down = randomBytes(3 << 20);
    const atApp = collect(r.app);
    r.peer.end(down);
    expect(sha(await atApp)).toBe(sha(down));
    expect(await end).toEqual({ kind: 'done' });
    expect([relay.fromClient, relay.fromServer]).toEqual([0, down.length]);
  });

  it('ends with the side that reset', async () => {
    const r = await rig();
    const { relay, end } = started(r);
    const atPeer = new Promise<void>((resolve) => r.peer.once('data', () => resolve()));
    r.app.write('hello');
    await atPeer;
    r.app.resetAndDestroy();
    expect(await end).toEqual({ kind: 'error', side: 'client', code: 'ECONNRESET' });
    expect(relay.fromClient).toBe(5);
  });

  it('a server reset ends it on the server side', async () => {
    const r = await rig();
    const { end } = started(r);
    r.peer.resetAndDestroy();
    expect(await end).toMatchObject({ kind: 'error', side: 'server' });
  });

  it('stop() hands back what was in flight toward a slow reader, so the JS relay loses no byte', async () => {
    const r = await rig();
    const { relay } = started(r);
    // The app reads nothing: the peer's bytes fill the app's socket buffers, then the pipe.
    r.app.pause();
    const down = randomBytes(16 << 20);
    r.peer.write(down);
    // Wait until the relay is stuck: something in flight and no progress.
    for (;;) {
      const before = relay.fromServer;
      await new Promise((res) => setTimeout(res, 50));
      if (relay.pending > 0 && relay.fromServer === before) break;
    }
    const sent = relay.toClient;
    const taken = relay.stop();
    expect(relay.active).toBe(false);
    expect(taken.toClient?.length).toBe(relay.fromServer - sent);
    // The JS relay from here: bytes in flight first, then the rest as it comes.
    const atApp: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) =>
      r.app.on('data', (c: Buffer) => {
        atApp.push(c);
        got += c.length;
        if (got === down.length) resolve();
      }),
    );
    r.front.write(taken.toClient as Buffer);
    r.onBack = (c) => r.front.write(c);
    r.back.resume();
    r.app.resume();
    await all;
    expect(sha(Buffer.concat(atApp))).toBe(sha(down));
  });
});
