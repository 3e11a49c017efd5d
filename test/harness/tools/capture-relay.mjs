#!/usr/bin/env node
// The server side's own log of every byte of a connection, for the capture tests: listens on
// HOST:PORT and relays each connection to 127.0.0.1:TARGET (or echoes it back when TARGET is
// "echo"), and when both directions have ended prints one line
//   conn PORT REMOTE_IP REMOTE_PORT C2S_LEN C2S_SHA256 S2C_LEN S2C_SHA256
// with what the server received (c2s) and sent (s2c). Prints "listening" when ready.
// usage: capture-relay.mjs HOST PORT:TARGET[,PORT:TARGET...]
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [host, spec] = process.argv.slice(2);
const pairs = spec.split(',').map((p) => p.split(':'));
let listening = 0;

function digest(parts) {
  const all = Buffer.concat(parts);
  return `${all.length} ${createHash('sha256').update(all).digest('hex')}`;
}

for (const [port, target] of pairs) {
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const c2s = [];
    const s2c = [];
    let ended = 0;
    const remote = `${client.remoteAddress.replace(/^::ffff:/, '')} ${client.remotePort}`;
    const done = () => {
      if (++ended === 2) process.stdout.write(`conn ${port} ${remote} ${digest(c2s)} ${digest(s2c)}\n`);
    };
    client.on('error', () => client.destroy());
    if (target === 'echo') {
      client.on('data', (d) => {
        c2s.push(d);
        s2c.push(d);
        client.write(d);
      });
      client.on('end', () => {
        done();
        client.end(done);
      });
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: Number(target), allowHalfOpen: true });
    upstream.on('error', () => client.destroy());
    client.on('data', (d) => {
      c2s.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      s2c.push(d);
      client.write(d);
    });
    client.on('end', () => {
      upstream.end();
      done();
    });
    upstream.on('end', () => {
      client.end();
      done();
    });
  });
  server.listen({ host, port: Number(port) }, () => {
    if (++listening === pairs.length) process.stdout.write('listening\n');
  });
}
