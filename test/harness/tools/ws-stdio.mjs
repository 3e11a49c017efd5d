#!/usr/bin/env node
// A WebSocket client that joins stdin/stdout to a WebSocket (RFC 6455), as websockify's clients
// (noVNC and the like) carry a TCP stream: an ssh ProxyCommand through websockify.
// usage: ws-stdio.mjs HOST PORT [PATH]
// stdin goes out as masked binary frames; the server's binary/text frames' payloads go to stdout.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const [host, port, path = '/'] = process.argv.slice(2);
const socket = connect(Number(port), host);
socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`);

function frame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : len < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), Buffer.from([0, 0, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff])]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

let buf = Buffer.alloc(0);
let open = false;
const pending = [];
process.stdin.on('data', (d) => (open ? socket.write(frame(0x2, d)) : pending.push(d)));
process.stdin.on('end', () => socket.end(frame(0x8, Buffer.from([0x03, 0xe8]))));
socket.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (!open) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
      process.stderr.write(`ws-stdio: no 101: ${buf.subarray(0, end).toString()}\n`);
      process.exit(1);
    }
    buf = buf.subarray(end + 4);
    open = true;
    for (const p of pending.splice(0)) socket.write(frame(0x2, p));
  }
  for (;;) {
    if (buf.length < 2) break;
    let len = buf[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = buf.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (buf.length < 10) break;
      len = buf.readUInt32BE(6);
      at = 10;
    }
    if (buf.length < at + len) break;
    const opcode = buf[0] & 0x0f;
    if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) process.stdout.write(buf.subarray(at, at + len));
    if (opcode === 0x8) process.exit(0);
    buf = buf.subarray(at + len);
  }
});
socket.on('error', (e) => {
  process.stderr.write(`ws-stdio: ${e.message}\n`);
  process.exit(1);
});
socket.on('close', () => process.exit(0));
