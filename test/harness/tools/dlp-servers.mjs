#!/usr/bin/env node
// The DLP suite's servers, and their own log of what they received: the proof a security test
// reads (never the proxy's status code or its records).
// usage: dlp-servers.mjs HOST   → HTTP/1.1 on 80, h2c (prior knowledge) on 8080.
// Every request logs "seen begin <proto> <method> <path>"; when its body ended normally
// "seen complete <proto> <path> <bytes> <sha256 of the body as received>", else (the stream was
// reset or the connection closed first) "seen aborted <proto> <path> <bytes>".
// GET /respond/<name> answers the body of that name (ssn: an SSN after 40 KB of padding; clean:
// a realistic JSON document with nothing sensitive) and logs "seen sent <path> <sha256>".
// A complete request with trailer fields also logs "seen trailers <proto> <path> <JSON of them>".
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';

const host = process.argv[2];
const RESPONSES = {
  ssn: `{"user":"ann","pad":"${'p'.repeat(40_000)}","ssn":"536-22-1234","end":true}`,
  clean: JSON.stringify({ orderId: 'ORD-2026-004211', ts: '2026-12-03T13:14:15.123456789Z', epochMs: 1764767655123, snowflake: '1864767655123456789', phone: '+1 (415) 555-2671', uuid: '3f2c1e9a-8b7d-4c6e-9f1a-2b3c4d5e6f70', amount: 1234567.89, ratio: 0.30000000000000004, image: Buffer.alloc(3000, 7).toString('base64') }),
};
const sha = (buf) => createHash('sha256').update(buf).digest('hex');

function handle(proto, method, path, req, res) {
  console.log(`seen begin ${proto} ${method} ${path}`);
  const parts = [];
  let size = 0;
  let ended = false;
  req.on('data', (d) => {
    parts.push(d);
    size += d.length;
  });
  let gotEnd = false;
  // Decided once, after the events of this turn (Node ends an HTTP/2 request stream when the
  // client resets it, and emits 'close' around 'end'): complete means the message ended with
  // every byte its content-length announced and no reset; anything else is aborted.
  const settle = () => setImmediate(() => {
    if (ended) return;
    ended = true;
    const declared = req.headers['content-length'];
    const resetCode = req.stream?.rstCode;
    if (!gotEnd || req.aborted || (resetCode !== undefined && resetCode !== 0) || (declared !== undefined && Number(declared) !== size)) {
      console.log(`seen aborted ${proto} ${path} ${size}`);
      return;
    }
    console.log(`seen complete ${proto} ${path} ${size} ${sha(Buffer.concat(parts))}`);
    if (Object.keys(req.trailers).length > 0) console.log(`seen trailers ${proto} ${path} ${JSON.stringify(req.trailers)}`);
    const name = path.startsWith('/respond/') ? path.slice(9) : undefined;
    const body = name !== undefined ? RESPONSES[name] : 'ok\n';
    if (name !== undefined) console.log(`seen sent ${path} ${sha(Buffer.from(body))}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  req.on('end', () => {
    gotEnd = true;
    settle();
  });
  req.on('aborted', settle);
  req.on('error', settle);
  req.on('close', settle);
}

const h1 = createServer((req, res) => handle('h1', req.method, req.url, req, res));
h1.on('clientError', (err, socket) => socket.destroy());
const h2 = createH2Server((req, res) => handle('h2', req.method, req.url, req, res));
h2.on('sessionError', () => undefined);
let pending = 2;
const ready = () => {
  if (--pending === 0) console.log('listening');
};
h1.listen(80, host, ready);
h2.listen(8080, host, ready);
