#!/usr/bin/env node
// A server that logs every connection or datagram it receives, as the server-side proof of what
// reached it (a security test asserts on this log, never on what the proxy said).
// usage: log-server.mjs tcp|udp HOST PORT[,PORT...]
// Prints "listening" once every port listens, then "seen <proto> <local port> <remote ip>" for each
// accepted connection (answered "hello\n") or datagram (echoed).
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const [proto, host, ports] = process.argv.slice(2);
let pending = 0;
const ready = () => {
  if (--pending === 0) console.log('listening');
};
for (const port of ports.split(',').map(Number)) {
  pending++;
  if (proto === 'udp') {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.on('message', (msg, rinfo) => {
      console.log(`seen udp ${port} ${rinfo.address}`);
      socket.send(msg, rinfo.port, rinfo.address);
    });
    socket.on('error', (err) => {
      console.error(`udp ${port}: ${err.message}`);
      process.exit(1);
    });
    socket.bind(port, host, ready);
  } else {
    const server = createServer((s) => {
      console.log(`seen tcp ${port} ${s.remoteAddress}`);
      s.on('error', () => undefined);
      s.end('hello\n');
    });
    server.on('error', (err) => {
      console.error(`tcp ${port}: ${err.message}`);
      process.exit(1);
    });
    server.listen({ port, host, ipv6Only: host.includes(':') }, ready);
  }
}
