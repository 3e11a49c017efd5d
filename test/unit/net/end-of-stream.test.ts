// How a stream really ended, as the JS relay asks it (src/net/connection.ts): libuv reports bytes
// followed by an RST as bytes + EOF, and endedByReset() tells that from a FIN (SO_ERROR); a client
// that reset before it was accepted still has its address (peerAddress, SO_PEERNAME). The peer is
// Python, run to its end with spawnSync while Node's loop is blocked, so every segment (bytes, FIN,
// RST) is in the kernel before Node reads any: the same wakeup, every time.
import { spawnSync } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { peerAddress } from '../../../src/net/original-dst.js';
import { endedByReset } from '../../../src/net/socket-mark.js';

const PEER = `
import socket, struct, sys, time
host, port, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
print(s.getsockname()[1], flush=True)
s.sendall(b"x" * 5000)
if how == "fin-then-rst":
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.05)  # the FIN is processed before the RST (CLOSE_WAIT)
if how != "fin":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
`;

interface Ending {
  /** 'end' with endedByReset's answer at that moment, or the 'error' Node itself read. */
  event: string;
  cut: string | undefined;
  bytes: number;
  peerPort: number;
  src: { ip: string; port: number };
}

/** Accepts one connection from the Python peer (which has finished by then) and reads it to its end. */
function ending(host: string, how: 'reset' | 'fin' | 'fin-then-rst'): Promise<Ending> {
  return new Promise((resolve, reject) => {
    let peerPort = 0;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket: Socket) => {
      const src = peerAddress(socket);
      let bytes = 0;
      socket.on('data', (d: Buffer) => (bytes += d.length));
      socket.on('end', () => {
        resolve({ event: 'end', cut: endedByReset(socket), bytes, peerPort, src });
        socket.destroy();
        server.close();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        resolve({ event: `error ${String(err.code)}`, cut: undefined, bytes, peerPort, src });
        server.close();
      });
      socket.resume();
    });
    server.listen(0, host, () => {
      const child = spawnSync('/usr/bin/python3', ['-c', PEER, host, String((server.address() as AddressInfo).port), how], { encoding: 'utf8' });
      if (child.status !== 0) reject(new Error(`peer: ${child.stderr}`));
      peerPort = Number(child.stdout.trim());
    });
  });
}

describe('end of stream: FIN or reset', () => {
  for (const host of ['127.0.0.1', '::1']) {
    it(`${host}: bytes then RST end in 'end' (libuv), and endedByReset says ECONNRESET`, async () => {
      const e = await ending(host, 'reset');
      expect(e).toMatchObject({ event: 'end', cut: 'ECONNRESET', bytes: 5000 });
    });

    it(`${host}: bytes then FIN: a clean end`, async () => {
      const e = await ending(host, 'fin');
      expect(e).toMatchObject({ event: 'end', cut: undefined, bytes: 5000 });
    });

    it(`${host}: FIN, then RST (EPIPE): the stream was complete, a clean end`, async () => {
      const e = await ending(host, 'fin-then-rst');
      expect(e).toMatchObject({ event: 'end', cut: undefined, bytes: 5000 });
    });

    it(`${host}: a client that reset before it was accepted still has its address and port`, async () => {
      const e = await ending(host, 'reset');
      expect(e.src).toEqual({ ip: host, port: e.peerPort });
    });
  }

  it('a socket without a descriptor never counts as a clean end', () => {
    const detached = { _handle: null } as unknown as Socket;
    expect(endedByReset(detached)).toBe('EBADF');
  });
});
