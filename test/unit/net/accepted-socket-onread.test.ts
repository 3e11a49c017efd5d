import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { useReadBuffers } from '../../../src/net/accepted-socket-onread.js';

describe('useReadBuffers (onread for accepted sockets)', () => {
  const closers: Array<() => void> = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('delivers every byte of an accepted socket into the buffers it is given, then end', async () => {
    const reused = Buffer.allocUnsafe(16 * 1024);
    const seen: Buffer[] = [];
    const buffersUsed = new Set<Uint8Array>();
    const result = new Promise<{ adopted: boolean; bytes: Buffer; bytesRead: number }>((resolve) => {
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket: Socket) => {
        const adopted = useReadBuffers(
          socket,
          function (length, buffer) {
            buffersUsed.add(buffer);
            seen.push(Buffer.from(buffer.subarray(0, length)));
            return true;
          },
          () => reused,
        );
        socket.on('end', () => {
          resolve({ adopted, bytes: Buffer.concat(seen), bytesRead: socket.bytesRead });
          socket.end();
        });
        socket.resume();
      });
      closers.push(() => server.close());
      server.listen(0, '127.0.0.1', () => {
        const address = server.address() as { port: number };
        const client = connect(address.port, '127.0.0.1', () => {
          for (let i = 0; i < 64; i++) client.write(Buffer.alloc(8192, i));
          client.end();
        });
        client.resume();
        closers.push(() => client.destroy());
      });
    });
    const { adopted, bytes, bytesRead } = await result;
    expect(adopted).toBe(true);
    expect(bytes.length).toBe(64 * 8192);
    expect(bytesRead).toBe(64 * 8192);
    for (let i = 0; i < 64; i++) expect(bytes[i * 8192]).toBe(i);
    expect([...buffersUsed]).toEqual([reused]); // no read went into memory of Node's own
  });

  it('refuses a socket that is already reading, leaving its data events alone', async () => {
    const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
      const adopted = useReadBuffers(socket, () => true, () => Buffer.alloc(1024));
      socket.end(String(adopted));
    });
    closers.push(() => server.close());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const answer = await new Promise<string>((resolve) => {
      const client = connect((server.address() as { port: number }).port, '127.0.0.1');
      let text = '';
      client.on('data', (d) => (text += d.toString()));
      client.on('end', () => resolve(text));
      closers.push(() => client.destroy());
    });
    expect(answer).toBe('false');
  });
});
