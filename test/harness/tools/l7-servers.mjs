#!/usr/bin/env node
// The peer's L7 servers for the firewall's end-to-end tests, in one process:
//   :80    HTTP/1.1  GET/POST/PUT; answers "<METHOD> <path> <body bytes> <sha256 of body>"
//   :8080  HTTP/2 cleartext (prior knowledge), same answers
//   :50051 gRPC test.Greeter (SayHello, SayGoodbye, StreamHellos)
//   :443   TLS (any SNI); answers "tls ok <servername>\n" and closes
//   :53    DNS over UDP and TCP: A 10.77.0.99 for every name, NXDOMAIN for *.nx
// Every request the servers see is printed as one line "seen <proto> <what>" on stdout, so a
// test can prove a denied request never reached the server. Prints "listening" when ready.
// usage: l7-servers.mjs HOST CERT KEY
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createTcpServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [host, certFile, keyFile] = process.argv.slice(2);
const seen = (what) => process.stdout.write(`seen ${what}\n`);

function answer(method, path, body) {
  return `${method} ${path} ${body.length} ${createHash('sha256').update(body).digest('hex')}\n`;
}

function collect(stream, done) {
  const parts = [];
  stream.on('data', (d) => parts.push(d));
  stream.on('end', () => done(Buffer.concat(parts)));
}

const http1 = createHttpServer((req, res) => {
  seen(`http1 ${req.method} ${req.url}`);
  collect(req, (body) => res.end(answer(req.method, req.url, body)));
});
http1.keepAliveTimeout = 30_000;

const h2 = createH2Server();
h2.on('stream', (stream, headers) => {
  seen(`h2 ${headers[':method']} ${headers[':path']}`);
  collect(stream, (body) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(answer(headers[':method'], headers[':path'], body));
  });
});
h2.on('sessionError', () => {});

const proto = grpc.loadPackageDefinition(protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), 'greeter.proto')));
const grpcServer = new grpc.Server();
grpcServer.addService(proto.test.Greeter.service, {
  SayHello(call, cb) { seen(`grpc SayHello ${call.request.name}`); cb(null, { message: `hello ${call.request.name}` }); },
  SayGoodbye(call, cb) { seen(`grpc SayGoodbye ${call.request.name}`); cb(null, { message: `goodbye ${call.request.name}` }); },
  StreamHellos(call) {
    seen(`grpc StreamHellos ${call.request.name}`);
    for (let i = 0; i < (call.request.count || 3); i++) call.write({ message: `hello ${call.request.name} #${i}` });
    call.end();
  },
});

const tls = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (socket) => {
  seen(`tls ${socket.servername}`);
  socket.end(`tls ok ${socket.servername}\n`);
});
tls.on('tlsClientError', () => {});

// RFC 1035 answers: copy the question, add one A record (or NXDOMAIN).
function dnsAnswer(query) {
  let pos = 12;
  const labels = [];
  while (query[pos] !== 0) { labels.push(query.toString('latin1', pos + 1, pos + 1 + query[pos])); pos += query[pos] + 1; }
  const name = labels.join('.');
  const qtype = query.readUInt16BE(pos + 1);
  const questionEnd = pos + 5;
  seen(`dns ${name} ${qtype}`);
  const nx = name.endsWith('.nx');
  const header = Buffer.from(query.subarray(0, 12));
  header.writeUInt16BE(0x8180 | (nx ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(nx || qtype !== 1 ? 0 : 1, 6);
  header.writeUInt32BE(0, 8);
  const parts = [header, query.subarray(12, questionEnd)];
  if (!nx && qtype === 1) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 99]));
  return Buffer.concat(parts);
}
const udp = createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  try {
    const answer = dnsAnswer(msg);
    // The bytes as this server got and sent them (the capture e2e compares its pcap with them).
    seen(`dns-udp ${msg.toString('hex')} ${answer.toString('hex')}`);
    udp.send(answer, rinfo.port, rinfo.address);
  } catch {}
});
const dnsTcp = createTcpServer((socket) => {
  let buf = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const reply = dnsAnswer(msg);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(reply.length);
      socket.write(Buffer.concat([len, reply]));
    }
  });
});

const listen = (server, port) => new Promise((resolve) => server.listen(port, host, resolve));
await listen(http1, 80);
await listen(h2, 8080);
await listen(tls, 443);
await listen(dnsTcp, 53);
await new Promise((resolve) => udp.bind(53, host, resolve));
await new Promise((resolve, reject) => grpcServer.bindAsync(`${host}:50051`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
console.log('listening');
