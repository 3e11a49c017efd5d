// The native SO_MARK helpers: a dial carries the mark from its first packet (the socket is marked
// before connect()), marked UDP sockets bind and send, failures are clear errors with errno codes.
// Runs as root (CI and the dev box do), which may set marks; the EPERM case runs a child as uid 1000.
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { bindMarkedUdp, connectMarked, markLibraryDials, markOf, markServer } from '../../../src/net/socket-mark.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function echoServer(host: string): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.pipe(s);
  });
  closers.push(() => server.close());
  return new Promise((resolve) => server.listen(0, host, () => resolve({ server, port: (server.address() as AddressInfo).port, accepted })));
}

/** TCP_NODELAY as the kernel has it on the socket's descriptor (read by a child that inherits it). */
function kernelNoDelay(socket: Socket): number {
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  const py = 'import socket; s = socket.socket(fileno=3); print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)); s.detach()';
  const r = spawnSync('/usr/bin/python3', ['-c', py], { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return Number(r.stdout.trim());
}

describe('socket marks', () => {
  for (const host of ['127.0.0.1', '::1']) {
    it(`connectMarked dials ${host} with the mark set, and the socket relays both ways`, async () => {
      const { port } = await echoServer(host);
      const chunks: Buffer[] = [];
      const socket = connectMarked({ host, port, mark: 0x539, noDelay: true, allowHalfOpen: true });
      closers.push(() => socket.destroy());
      // Set before the connect completes: the SYN itself carried it.
      expect(markOf(socket)).toBe(0x539);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      expect(socket.remotePort).toBe(port);
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.end('ping');
      await new Promise<void>((resolve) => socket.once('end', () => resolve()));
      expect(Buffer.concat(chunks).toString()).toBe('ping');
    });
  }

  it('connectMarked sets TCP_NODELAY when asked (Nagle off on the upstream leg), and only then', async () => {
    const { port } = await echoServer('127.0.0.1');
    const dial = async (noDelay: boolean | undefined): Promise<number> => {
      const socket = connectMarked({ host: '127.0.0.1', port, mark: 3, ...(noDelay === undefined ? {} : { noDelay }) });
      closers.push(() => socket.destroy());
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      return kernelNoDelay(socket);
    };
    expect(await dial(true)).toBe(1);
    expect(await dial(false)).toBe(0);
    expect(await dial(undefined)).toBe(0);
  });

  it('connectMarked reports a refused connection as an error event, like net.connect', async () => {
    const { server, port } = await echoServer('127.0.0.1');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const socket = connectMarked({ host: '127.0.0.1', port, mark: 7 });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    expect(err.code).toBe('ECONNREFUSED');
  });

  it('connectMarked honours onread (the relay reads into its own buffers)', async () => {
    const { port } = await echoServer('127.0.0.1');
    const buffer = Buffer.alloc(1024);
    let got = '';
    const socket = connectMarked({ host: '127.0.0.1', port, mark: 1, onread: { buffer, callback: (n: number, b: Uint8Array) => ((got += Buffer.from(b.subarray(0, n)).toString()), true) } });
    closers.push(() => socket.destroy());
    socket.end('hello');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(got).toBe('hello');
  });

  it('markServer marks a listener, and its accepted sockets inherit the mark', async () => {
    const { server, port, accepted } = await echoServer('127.0.0.1');
    markServer(server, 0x539);
    expect(markOf(server)).toBe(0x539);
    const socket = connectMarked({ host: '127.0.0.1', port, mark: 0 });
    closers.push(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    while (accepted.length === 0) await new Promise((r) => setImmediate(r));
    expect(markOf(accepted[0]!)).toBe(0x539);
  });

  // Once a listener was marked, dials wrap their descriptor in a TCP handle of their own instead
  // of `new Socket({ fd })` (no uv_guess_handle per dial): the same behaviour is asked of that path.
  for (const host of ['127.0.0.1', '::1']) {
    it(`after markServer, connectMarked to ${host} still carries the mark, relays both ways, half-closes, and refusals are errors`, async () => {
      const { server, port } = await echoServer(host);
      markServer(server, 0x539);
      const chunks: Buffer[] = [];
      let got = '';
      const socket = connectMarked({ host, port, mark: 0x540, noDelay: true, allowHalfOpen: true, onread: { buffer: Buffer.alloc(64), callback: (n: number, b: Uint8Array) => ((got += Buffer.from(b.subarray(0, n)).toString()), true) } });
      closers.push(() => socket.destroy());
      expect(markOf(socket)).toBe(0x540);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      expect(socket.remotePort).toBe(port);
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.end('x'.repeat(200)); // longer than the 64-byte read buffer: several reads
      await new Promise<void>((resolve) => socket.once('end', () => resolve()));
      expect(got).toBe('x'.repeat(200));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const refused = connectMarked({ host, port, mark: 0x540 });
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
      expect(err.code).toBe('ECONNREFUSED');
    });
  }

  it('markLibraryDials marks what CommonJS libraries (grpc-js) dial through net.connect, and undoes', async () => {
    const { port } = await echoServer('127.0.0.1');
    const net = createRequire(import.meta.url)('node:net') as typeof import('node:net');
    const undo = markLibraryDials(0x539);
    let connected = false;
    const socket = net.connect({ host: '127.0.0.1', port }, () => (connected = true));
    closers.push(() => socket.destroy());
    expect(markOf(socket)).toBe(0x539);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    expect(connected).toBe(true);
    undo();
    const plain = net.connect({ host: '127.0.0.1', port });
    closers.push(() => plain.destroy());
    await new Promise<void>((resolve) => plain.once('connect', () => resolve()));
    expect(markOf(plain)).toBe(0);
  });

  it('bindMarkedUdp binds a marked datagram socket that sends and receives', async () => {
    const receiver = createSocket('udp4');
    closers.push(() => receiver.close());
    await bindMarkedUdp(receiver, 0x539, false, '127.0.0.1', 0);
    const sender = createSocket('udp4');
    closers.push(() => sender.close());
    await bindMarkedUdp(sender, 0x539, false);
    const got = new Promise<string>((resolve) => receiver.once('message', (m) => resolve(m.toString())));
    sender.send('dgram', receiver.address().port, '127.0.0.1');
    expect(await got).toBe('dgram');
  });

  it('a port in use is EADDRINUSE with the address in the message', async () => {
    const taken = createSocket('udp4');
    closers.push(() => taken.close());
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', () => resolve()));
    const second = createSocket('udp4');
    closers.push(() => second.close());
    const err = (await bindMarkedUdp(second, 1, false, '127.0.0.1', taken.address().port).catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe('EADDRINUSE');
    expect(err.message).toContain(`127.0.0.1:${taken.address().port}`);
  });

  it('without CAP_NET_ADMIN the mark is refused with EPERM and a message that says what is missing', () => {
    const addon = new URL('../../../build/Release/socket_mark.node', import.meta.url).pathname;
    const script = `try { require('${addon}').markedSocket(false, false, 0x539); console.log('marked'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
    const r = spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^EPERM setsockopt\(SO_MARK\): Operation not permitted \(the sidecar needs CAP_NET_ADMIN/);
  });
});
