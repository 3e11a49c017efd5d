#!/usr/bin/env node
// The DLP hold suite's servers (test/e2e/dlp-hold.test.ts), and their own log of what they did
// and received: the proof a security test reads (never the proxy's status code or its records).
// usage: dlp-hold-servers.mjs HOST   → HTTP/1.1 on 80, h2c (prior knowledge) on 8080.
// - GET /split/<name> (HTTP/1.1): a response whose body is a card number cut in two
//   (RESPONSES[name] = [first, rest]): the head and `first` are written, "seen sent-first <path>"
//   logged, then nothing until POST /resume/<name> arrives; then `rest` is written and
//   "seen sent-rest <path>" logged. Two writes with a pause the test controls: two reads at the
//   proxy, whatever the machine's load.
// - Any other request: "seen begin <proto> <method> <path>", then when its body ended normally
//   "seen complete <proto> <path> <bytes> <sha256>" (the body as received, also searched:
//   "seen card <path>" when it holds the complete test card, gRPC messages inflated), else
//   "seen aborted <proto> <path> <bytes>".
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { gunzipSync } from 'node:zlib';

/** The messages of a gRPC body (Length-Prefixed-Message), gzip ones inflated, as one string. */
function grpcText(body) {
  let out = '';
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    const msg = body.subarray(at + 5, at + 5 + len);
    try {
      out += (body[at] === 1 ? gunzipSync(msg) : msg).toString('latin1');
    } catch {
      out += msg.toString('latin1');
    }
    at += 5 + len;
  }
  return out;
}

const host = process.argv[2];
const CARD = '4111 1111 1111 1111';
const RESPONSES = {
  // The first digits, then (after the pause) the rest of the card and of the document.
  card: [`{"user":"ann","pad":"${'p'.repeat(3000)}","card":"4111 1111 1111`, ` 1111","end":true}`],
  // Same cut, paused by the test until the sidecar's hold timer has released the first digits.
  pause: [`{"user":"bob","pad":"${'q'.repeat(3000)}","card":"4111 1111 1111`, ` 1111","end":true}`],
  // Digits that are no card (bad Luhn): the client gets every byte.
  clean: [`{"user":"cy","pad":"${'r'.repeat(3000)}","ref":"4111 1111 1111`, ` 2222","end":true}`],
};
const sha = (buf) => createHash('sha256').update(buf).digest('hex');
const resumers = new Map();

function split(name, path, res) {
  const [first, rest] = RESPONSES[name];
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(first.length + rest.length) });
  res.write(first, () => console.log(`seen sent-first ${path}`));
  resumers.set(name, () => res.end(rest, () => console.log(`seen sent-rest ${path}`)));
}

function handle(proto, method, path, req, res) {
  if (proto === 'h1' && method === 'GET' && path.startsWith('/split/') && RESPONSES[path.slice(7)] !== undefined) return split(path.slice(7), path, res);
  if (proto === 'h1' && method === 'POST' && path.startsWith('/resume/')) {
    const go = resumers.get(path.slice(8));
    resumers.delete(path.slice(8));
    res.end(go === undefined ? 'none\n' : 'resumed\n');
    go?.();
    return;
  }
  console.log(`seen begin ${proto} ${method} ${path}`);
  const parts = [];
  let size = 0;
  let ended = false;
  let gotEnd = false;
  req.on('data', (d) => {
    parts.push(d);
    size += d.length;
  });
  // Decided once, after the events of this turn (an HTTP/2 request stream also ends when the
  // client resets it): complete means the body ended with no reset and every announced byte.
  const settle = () => setImmediate(() => {
    if (ended) return;
    ended = true;
    const body = Buffer.concat(parts);
    const text = String(req.headers['content-type']).startsWith('application/grpc') ? grpcText(body) : body.toString('latin1');
    if (text.replace(/[ -]/g, '').includes(CARD.replaceAll(' ', ''))) console.log(`seen card ${path}`);
    const declared = req.headers['content-length'];
    const resetCode = req.stream?.rstCode;
    if (!gotEnd || req.aborted || (resetCode !== undefined && resetCode !== 0) || (declared !== undefined && Number(declared) !== size)) {
      console.log(`seen aborted ${proto} ${path} ${size}`);
      return;
    }
    console.log(`seen complete ${proto} ${path} ${size} ${sha(body)}`);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
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
