#!/usr/bin/env node
// HTTP/1.1 (node:http) and HTTP/2 cleartext with prior knowledge (node:http2) servers that log
// what of each request body they received, as the server-side proof for tunnel tests:
//   "seen banner <proto> <path>" as soon as the body so far holds an SSH identification line
//   "seen end <proto> <path> <bytes>" when the body ended
// usage: body-log-server.mjs HOST HTTP1_PORT H2C_PORT; prints "listening" when both listen.
import { createServer } from 'node:http';
import { createServer as createH2 } from 'node:http2';

const [host, p1, p2] = process.argv.slice(2);
const BANNER = 'SSH-2.0-';
function handle(proto, req, res) {
  const parts = [];
  let said = false;
  req.on('data', (d) => {
    parts.push(d);
    if (!said && Buffer.concat(parts).includes(BANNER)) {
      said = true;
      console.log(`seen banner ${proto} ${req.url}`);
    }
  });
  req.on('end', () => {
    console.log(`seen end ${proto} ${req.url} ${Buffer.concat(parts).length}`);
    res.end('ok\n');
  });
  req.on('error', () => {});
}
let pending = 2;
const ready = () => --pending === 0 && console.log('listening');
createServer((req, res) => handle('http1', req, res)).listen(Number(p1), host, ready);
const h2 = createH2((req, res) => handle('h2', req, res));
h2.on('sessionError', () => {});
h2.listen(Number(p2), host, ready);
