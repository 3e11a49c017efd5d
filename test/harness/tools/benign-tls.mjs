#!/usr/bin/env node
// Long-lived benign TLS the tunnel detectors must leave alone (tunnels-benign.test.ts):
// usage: benign-tls.mjs grpc-server HOST PORT CERT KEY
//          grpc-js over TLS (ALPN h2), service /chat.Chat/Talk: a bidirectional stream that
//          answers every message with one of its own; prints "listening"
//        benign-tls.mjs grpc-client HOST PORT CERT MESSAGES INTERVAL_MS
//          one Talk call held open: MESSAGES small messages (12-120 bytes, chat- and
//          keystroke-sized, the hard case for SSH-in-TLS), each waiting for its answer,
//          INTERVAL_MS apart; prints "ok <answers>" or "failed: <why>"
//        benign-tls.mjs push-server HOST PORT CERT KEY
//          node:http2 over TLS: GET /page answers with a page and pushes /app.js, /style.css
//          and /data-<i>.json (RFC 9113 §8.4 PUSH_PROMISE); prints "listening"
//        benign-tls.mjs push-client HOST PORT CERT ROUNDS
//          one HTTP/2 connection, ROUNDS GETs of /page, each with its pushes read to the end;
//          prints "ok <pages> <pushes>" or "failed: <why>"
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import grpc from '@grpc/grpc-js';

const [mode, host, port, a, b, c] = process.argv.slice(2);
const NAME = 'www.example.test';
const pass = (x) => x;
const TALK = { talk: { path: '/chat.Chat/Talk', requestStream: true, responseStream: true, requestSerialize: pass, requestDeserialize: pass, responseSerialize: pass, responseDeserialize: pass } };
const fail = (why) => {
  console.log(`failed: ${why}`);
  process.exit(1);
};

if (mode === 'grpc-server') {
  const server = new grpc.Server();
  server.addService(TALK, {
    talk(call) {
      call.on('data', (m) => call.write(Buffer.concat([Buffer.from('re: '), m])));
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(a), private_key: readFileSync(b) }], false);
  server.bindAsync(`${host}:${port}`, creds, (err) => {
    if (err) fail(err.message);
    console.log('listening');
  });
} else if (mode === 'grpc-client') {
  const Client = grpc.makeGenericClientConstructor(TALK, 'Chat');
  const client = new Client(`${host}:${port}`, grpc.credentials.createSsl(readFileSync(a)), { 'grpc.ssl_target_name_override': NAME, 'grpc.default_authority': NAME });
  const total = Number(b);
  const interval = Number(c);
  const call = client.talk();
  let answers = 0;
  const words = ['ok', 'ls -la', 'typing a longer line of chat text here', 'x', '{"op":"cursor","x":12,"y":40}', 'status?'];
  const send = (i) => call.write(Buffer.from(`${i} ${words[i % words.length].repeat(1 + (i % 3))}`));
  call.on('data', () => {
    answers++;
    if (answers === total) {
      call.end();
      return;
    }
    setTimeout(() => send(answers), interval);
  });
  call.on('error', (err) => fail(err.message));
  call.on('end', () => {
    console.log(`ok ${answers}`);
    process.exit(answers === total ? 0 : 1);
  });
  send(0);
} else if (mode === 'push-server') {
  const server = http2.createSecureServer({ cert: readFileSync(a), key: readFileSync(b), allowHTTP1: false });
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== '/page') {
      stream.respond({ ':status': 404 });
      stream.end();
      return;
    }
    const pushes = [['/app.js', 'application/javascript', 'console.log("app");\n'.repeat(200)], ['/style.css', 'text/css', 'body { margin: 0 }\n'.repeat(150)]];
    for (let i = 0; i < 3; i++) pushes.push([`/data-${i}.json`, 'application/json', JSON.stringify({ i, items: Array.from({ length: 40 }, (_, k) => ({ k, name: `item ${k}` })) })]);
    for (const [path, type, body] of pushes) {
      stream.pushStream({ ':path': path }, (err, push) => {
        if (err) return;
        push.on('error', () => {});
        push.respond({ ':status': 200, 'content-type': type });
        push.end(body);
      });
    }
    stream.respond({ ':status': 200, 'content-type': 'text/html' });
    stream.end('<html><head><script src="/app.js"></script><link rel="stylesheet" href="/style.css"></head><body>page</body></html>\n'.repeat(20));
  });
  server.on('sessionError', () => {});
  server.listen(Number(port), host, () => console.log('listening'));
} else if (mode === 'push-client') {
  const session = http2.connect(`https://${host}:${port}`, { ca: readFileSync(a), servername: NAME });
  session.on('error', (err) => fail(err.message));
  const rounds = Number(b);
  let pages = 0;
  let pushes = 0;
  session.on('stream', (push) => {
    push.on('push', () => {});
    push.on('data', () => {});
    push.on('end', () => pushes++);
    push.on('error', () => {});
  });
  const get = () =>
    new Promise((resolve, reject) => {
      const req = session.request({ ':path': '/page' });
      req.on('response', (h) => h[':status'] !== 200 && reject(new Error(`status ${h[':status']}`)));
      req.on('data', () => {});
      req.on('end', resolve);
      req.on('error', reject);
      req.end();
    });
  (async () => {
    for (let i = 0; i < rounds; i++) {
      await get();
      pages++;
      await new Promise((r) => setTimeout(r, 50));
    }
    // The last page's pushes may still be arriving.
    for (let i = 0; i < 100 && pushes < rounds * 5; i++) await new Promise((r) => setTimeout(r, 20));
    console.log(`ok ${pages} ${pushes}`);
    session.close();
    process.exit(pushes === rounds * 5 ? 0 : 1);
  })().catch((err) => fail(err.message));
} else {
  fail(`unknown mode ${mode}`);
}
