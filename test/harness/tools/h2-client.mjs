#!/usr/bin/env node
// HTTP/2 prior-knowledge client (Node's http2): opens ONE session and sends the given requests
// concurrently as separate streams; prints "<path> <status> <body first line>" per stream in
// argument order, then the number of sessions used ("sessions 1").
// usage: h2-client.mjs http://HOST:PORT PATH...
import { connect } from 'node:http2';

const [origin, ...paths] = process.argv.slice(2);
const session = connect(origin);
session.on('error', (e) => { console.log(`session error ${e.code}`); process.exit(0); });
const results = await Promise.all(paths.map((path) => new Promise((resolve) => {
  const req = session.request({ ':path': path, ':method': 'GET' });
  let status = 0;
  let body = '';
  req.on('response', (h) => { status = h[':status']; });
  req.setEncoding('utf8');
  req.on('data', (d) => (body += d));
  req.on('end', () => resolve(`${path} ${status} ${body.split('\n')[0]}`));
  req.on('error', (e) => resolve(`${path} error ${e.code}`));
  req.end();
})));
for (const r of results) console.log(r);
console.log('sessions 1');
session.close();
