#!/usr/bin/env node
// Servers for test/e2e/l7-evasion-misc.test.ts, each logging what it served ("seen <proto> <what>"):
//   :80 HTTP/1.1 (node:http), :8080 h2c (node:http2), :50051 gRPC test.Greeter, :443 TLS (logs SNI)
//   :53/udp a resolver that answers A 10.77.0.1 for every name, `alias.example.com` with a CNAME
//   to `target.attacker.test`, and for names starting with `spoof` first sends three forged
//   answers — from SPOOF_IP (right id and question), wrong id, wrong question — each with A 6.6.6.6,
//   then the genuine answer 100 ms later.
// usage: lm-servers.mjs HOST SPOOF_IP CERT KEY
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createTlsServer } from 'node:tls';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [host, spoofIp, certFile, keyFile] = process.argv.slice(2);
const seen = (what) => process.stdout.write(`seen ${what}\n`);

const http1 = createHttpServer((req, res) => {
  seen(`http1 ${req.method} ${req.url}`);
  req.resume();
  req.on('end', () => res.end(`ok ${req.url}\n`));
});
http1.on('clientError', (_e, socket) => socket.destroy());

const h2 = createH2Server();
h2.on('stream', (stream, headers) => {
  seen(`h2 ${headers[':method']} ${headers[':path']} ${headers['x-token'] ?? ''}`.trim());
  stream.respond({ ':status': 200 });
  stream.end('ok\n');
});
h2.on('sessionError', () => {});

const proto = grpc.loadPackageDefinition(protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), 'greeter.proto')));
const grpcServer = new grpc.Server();
grpcServer.addService(proto.test.Greeter.service, {
  SayHello(call, cb) { seen(`grpc SayHello ${call.request.name}`); cb(null, { message: `hello ${call.request.name}` }); },
  SayGoodbye(call, cb) { seen(`grpc SayGoodbye ${call.request.name}`); cb(null, { message: `goodbye ${call.request.name}` }); },
  StreamHellos(call) { seen(`grpc StreamHellos ${call.request.name}`); call.end(); },
});

const tls = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (socket) => {
  seen(`tls ${socket.servername}`);
  socket.end(`tls ok ${socket.servername}\n`);
});
tls.on('tlsClientError', () => {});

function encodeName(name) {
  return Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}
function readQuestion(query) {
  let pos = 12;
  const labels = [];
  while (query[pos] !== 0) { labels.push(query.toString('latin1', pos + 1, pos + 1 + query[pos])); pos += query[pos] + 1; }
  return { name: labels.join('.'), end: pos + 5 };
}
function answer(query, records, id = query.readUInt16BE(0), question = query.subarray(12, readQuestion(query).end)) {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8180, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, question, ...records]);
}
const a = (ip) => Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(ip.split('.').map(Number))]);

const udp = createSocket('udp4');
const spoofer = createSocket('udp4');
udp.on('message', (query, rinfo) => {
  try {
    const { name } = readQuestion(query);
    seen(`dns ${name}`);
    if (name === 'alias.example.com') {
      const target = encodeName('target.attacker.test');
      const cname = Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, target.length]), target]);
      const targetA = Buffer.concat([target, Buffer.from([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 66])]);
      udp.send(answer(query, [cname, targetA]), rinfo.port, rinfo.address);
      return;
    }
    if (name.startsWith('spoof')) {
      spoofer.send(answer(query, [a('6.6.6.6')]), rinfo.port, rinfo.address);
      udp.send(answer(query, [a('6.6.6.6')], query.readUInt16BE(0) ^ 0x5a5a), rinfo.port, rinfo.address);
      udp.send(answer(query, [a('6.6.6.6')], undefined, Buffer.concat([encodeName('other.example.com'), Buffer.from([0, 1, 0, 1])])), rinfo.port, rinfo.address);
      setTimeout(() => udp.send(answer(query, [a('10.77.0.1')]), rinfo.port, rinfo.address), 100);
      return;
    }
    udp.send(answer(query, [a('10.77.0.1')]), rinfo.port, rinfo.address);
  } catch {}
});

const listen = (server, port) => new Promise((resolve) => server.listen(port, host, resolve));
await listen(http1, 80);
await listen(h2, 8080);
await listen(tls, 443);
await new Promise((resolve) => udp.bind(53, host, resolve));
await new Promise((resolve) => spoofer.bind(53, spoofIp, resolve));
await new Promise((resolve, reject) => grpcServer.bindAsync(`${host}:50051`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
console.log('listening');
