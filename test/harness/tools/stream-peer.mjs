#!/usr/bin/env node
// Opaque TCP streams for the kernel-relay suite (test/e2e/kernel-relay.test.ts): a server that
// logs what it received (bytes, sha256) and every socket error it saw, as JSON lines — the
// server's own account — and clients that push and check large streams. Every stream starts with
// a header line no protocol detector recognises ("~SWK MODE N\n"), so the sidecar relays it as
// opaque TCP.
//
//   stream-peer.mjs server HOST PORT
//     per connection, by the header's MODE:
//       sink N        read until FIN (hashing what follows the header), then send N pattern bytes and FIN
//       echo 0        echo what follows the header; FIN after the client's FIN
//       reset N       echo until N bytes came, then reset (RST)
//     logs {"event":"end"|"error"|"reset","remote":PORT,"bytes":N,"sha":HEX,"code":ERR}
//   stream-peer.mjs client HOST PORT sink SEND REPLY      → {"sent","sentSha","received","receivedSha","localPort"}
//   stream-peer.mjs client HOST PORT echo-reset N         echo N bytes back, then RST → {"echoed","localPort"}
//   stream-peer.mjs client HOST PORT await-reset N        push N bytes at a `reset N` server → {"code","localPort"}
//   stream-peer.mjs client HOST PORT chat                 stdin: "send N" (→ {"echoed"}), "end" (→ {"done","received","receivedSha"})
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';

const [role, host, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** Deterministic, incompressible-looking bytes (xorshift32) from `offset` on. */
function pattern(n, seed) {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

if (role === 'server') {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const remote = socket.remotePort;
    const hash = createHash('sha256');
    let header = Buffer.alloc(0);
    let mode = null;
    let arg = 0;
    let bytes = 0;
    socket.on('error', (err) => out({ event: 'error', remote, bytes, code: err.code }));
    socket.on('data', (chunk) => {
      if (mode === null) {
        header = Buffer.concat([header, chunk]);
        const nl = header.indexOf(10);
        if (nl === -1) return;
        const [magic, m, n] = header.subarray(0, nl).toString().split(' ');
        if (magic !== '~SWK') return socket.destroy();
        mode = m;
        arg = Number(n);
        chunk = header.subarray(nl + 1);
      }
      bytes += chunk.length;
      hash.update(chunk);
      if (mode === 'echo' || mode === 'reset') socket.write(chunk);
      if (mode === 'reset' && bytes >= arg) {
        out({ event: 'reset', remote, bytes });
        socket.resetAndDestroy();
      }
    });
    socket.on('end', () => {
      out({ event: 'end', remote, bytes, sha: hash.digest('hex') });
      if (mode === 'sink') socket.end(pattern(arg, 7));
      else socket.end();
    });
  });
  server.listen(port, host, () => out('listening'));
} else if (role === 'client') {
  const [mode, a, b] = rest;
  const socket = connect({ host, port, allowHalfOpen: true });
  const hash = createHash('sha256');
  let received = 0;
  socket.on('connect', () => {
    const localPort = socket.localPort;
    if (mode === 'sink') {
      const body = pattern(Number(a), 3);
      socket.write(`~SWK sink ${Number(b)}\n`);
      socket.end(body);
      socket.on('data', (d) => { received += d.length; hash.update(d); });
      socket.on('end', () => {
        out({ sent: body.length, sentSha: createHash('sha256').update(body).digest('hex'), received, receivedSha: hash.digest('hex'), localPort });
        socket.destroy();
      });
    } else if (mode === 'echo-reset') {
      const n = Number(a);
      socket.write(`~SWK echo 0\n`);
      socket.write(pattern(n, 5));
      socket.on('data', (d) => {
        received += d.length;
        if (received === n) {
          out({ echoed: received, localPort });
          socket.resetAndDestroy();
        }
      });
    } else if (mode === 'await-reset') {
      const n = Number(a);
      socket.write(`~SWK reset ${n}\n`);
      socket.write(pattern(n, 9));
      socket.on('data', (d) => { received += d.length; });
      socket.on('error', (err) => out({ code: err.code, received, localPort }));
      socket.on('end', () => out({ code: 'FIN', received, localPort }));
    } else if (mode === 'chat') {
      socket.write(`~SWK echo 0\n`);
      const sentHash = createHash('sha256');
      let want = 0;
      let seed = 11;
      socket.on('data', (d) => {
        received += d.length;
        hash.update(d);
        if (received === want) out({ echoed: received, localPort });
      });
      socket.on('end', () => out({ done: true, sent: want, sentSha: sentHash.digest('hex'), received, receivedSha: hash.digest('hex'), localPort }));
      const lines = createInterface({ input: process.stdin });
      lines.on('line', (line) => {
        const [cmd, n] = line.trim().split(' ');
        if (cmd === 'send') {
          want += Number(n);
          const bytes = pattern(Number(n), seed++);
          sentHash.update(bytes);
          socket.write(bytes);
        } else if (cmd === 'end') socket.end();
      });
    } else {
      console.error(`unknown client mode ${mode}`);
      process.exit(2);
    }
  });
  socket.on('error', (err) => {
    if (mode !== 'await-reset') {
      out({ error: err.code });
      process.exit(1);
    }
  });
} else {
  console.error('usage: stream-peer.mjs server|client HOST PORT ...');
  process.exit(2);
}
