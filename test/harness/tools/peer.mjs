#!/usr/bin/env node
// A test server for the namespace harness, run as an ordinary process (any uid, /usr/bin/node).
// usage: peer.mjs MODE HOST PORT[,PORT...]
//   echo   echoes bytes; on the client's FIN, finishes its writes then FINs (half-close aware)
//   hash   reads until FIN, answers "<bytes> <sha256>\n", closes
//   whoami answers each connection with "<local port> <remote ip>\n" and closes (no request needed)
//   reset  reads a little, then resets the connection (RST)
//   greet  speaks first: "220 greeting from <port>\n", then echoes
// Prints "listening" once every port listens.
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';

const [mode, host, ports] = process.argv.slice(2);
const handlers = {
  echo(socket) {
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
  },
  hash(socket) {
    const hash = createHash('sha256');
    let n = 0;
    socket.on('data', (d) => { n += d.length; hash.update(d); });
    socket.on('end', () => socket.end(`${n} ${hash.digest('hex')}\n`));
  },
  whoami(socket) {
    socket.end(`${socket.localPort} ${socket.remoteAddress}\n`);
  },
  reset(socket) {
    socket.once('data', () => socket.resetAndDestroy());
  },
  greet(socket) {
    socket.write(`220 greeting from ${socket.localPort}\n`);
    handlers.echo(socket);
  },
};
const handler = handlers[mode];
if (!handler) { console.error(`unknown mode ${mode}`); process.exit(2); }
let pending = 0;
for (const port of ports.split(',')) {
  pending++;
  createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    handler(socket);
  }).listen({ host, port: Number(port), ipv6Only: host.includes(':') }, () => {
    if (--pending === 0) console.log('listening');
  });
}
