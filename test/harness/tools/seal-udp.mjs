#!/usr/bin/env node
// UDP for the non-TCP guard's tests: a server that logs every datagram it receives (the proof of
// what got through is this log, not anything the sidecar says), and a client.
// usage: seal-udp.mjs listen PORT[,PORT...]
//          binds [::] dual-stack on each port; per datagram prints "seen <port> <from ip> <payload>"
//          and answers "pong:<payload>"; prints "listening" once every port is bound.
//        seal-udp.mjs send HOST PORT PAYLOAD [SRCPORT] [WAITMS]
//          sends one datagram (from SRCPORT if given) and prints the answer, or "no-answer" after WAITMS (default 1000).
import { createSocket } from 'node:dgram';

const [mode, ...args] = process.argv.slice(2);
if (mode === 'listen') {
  const ports = args[0].split(',').map(Number);
  let pending = ports.length;
  for (const port of ports) {
    const socket = createSocket({ type: 'udp6', ipv6Only: false });
    socket.on('message', (msg, rinfo) => {
      const from = rinfo.address.startsWith('::ffff:') ? rinfo.address.slice(7) : rinfo.address;
      process.stdout.write(`seen ${port} ${from} ${msg.toString()}\n`);
      socket.send(`pong:${msg.toString()}`, rinfo.port, rinfo.address);
    });
    socket.bind(port, '::', () => {
      if (--pending === 0) process.stdout.write('listening\n');
    });
  }
} else if (mode === 'send') {
  const [host, port, payload, srcPort, waitMs] = args;
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: true });
  const timer = setTimeout(() => {
    process.stdout.write('no-answer\n');
    socket.close();
  }, Number(waitMs ?? 1000));
  socket.on('message', (msg) => {
    clearTimeout(timer);
    process.stdout.write(`${msg.toString()}\n`);
    socket.close();
  });
  socket.on('error', (err) => {
    clearTimeout(timer);
    process.stdout.write(`error ${err.code}\n`);
    socket.close();
  });
  socket.bind(srcPort ? Number(srcPort) : 0, () => socket.send(payload, Number(port), host));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
