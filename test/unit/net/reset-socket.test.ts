// resetSocket (src/net/socket-mark.ts): an RST in any state, also after end() was called with bytes
// still queued (libuv refuses its own reset then, and a plain close sends a FIN after the part of
// the stream the kernel had: a truncated stream that looks complete). The peer is Python, which
// tells FIN from error with recv(2) itself, and starts reading only after the reset.
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { resetSocket } from '../../../src/net/socket-mark.js';

const PEER = `
import errno, json, socket, sys, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: a slow reader's small window
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
sys.stdin.readline()  # the test reset its socket
got = 0
try:
    while True:
        d = c.recv(65536)
        if not d:
            print(json.dumps({"code": "FIN", "received": got}), flush=True)
            break
        got += len(d)
except OSError as e:
    print(json.dumps({"code": errno.errorcode.get(e.errno, str(e.errno)), "received": got}), flush=True)
`;

const SENT = 4 << 20;

/** Writes SENT bytes to the peer (it does not read yet), runs `cut`, then lets the peer read: what it saw. */
async function peerSees(cut: (s: Socket) => void): Promise<{ code: string; received: number; queued: number; closed: boolean }> {
  const child = spawn('/usr/bin/python3', ['-c', PEER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let more: (() => void) | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    lines.push(...d.split('\n').filter((l) => l !== ''));
    more?.();
  });
  const line = async (n: number): Promise<string> => {
    while (lines.length <= n) await new Promise<void>((r) => (more = r));
    return lines[n] as string;
  };
  const port = Number(await line(0));
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise((r) => socket.once('connect', r));
  socket.on('error', () => undefined);
  const closed = new Promise<boolean>((r) => socket.once('close', () => r(true)));
  socket.write(Buffer.alloc(SENT, 0x61));
  socket.end();
  await new Promise((r) => setTimeout(r, 100)); // the kernel's buffers fill; the rest (and the FIN) wait in Node's queue
  const queued = socket.writableLength;
  cut(socket);
  const wasClosed = await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
  child.stdin.write('\n');
  const result = JSON.parse(await line(1)) as { code: string; received: number };
  return { ...result, queued, closed: wasClosed };
}

describe('resetSocket', () => {
  it('after end() with bytes still queued: the peer gets ECONNRESET, not a FIN after part of the stream; close is emitted', async () => {
    const r = await peerSees(resetSocket);
    expect(r.queued).toBeGreaterThan(0);
    expect(r).toMatchObject({ code: 'ECONNRESET', closed: true });
    expect(r.received).toBeLessThan(SENT);
  });

  it('(what a plain destroy() does there: the peer sees a FIN short of the stream, the defect resetSocket avoids)', async () => {
    const r = await peerSees((s) => s.destroy());
    expect(r.queued).toBeGreaterThan(0);
    expect(r.code).toBe('FIN');
    expect(r.received).toBeLessThan(SENT);
  });
});
