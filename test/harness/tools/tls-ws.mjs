#!/usr/bin/env node
// A WebSocket over TLS (wss) kept alive with pings and small messages both ways: the long-lived,
// interactive-looking TLS that the SSH-in-TLS detector must leave alone.
// usage: tls-ws.mjs server HOST PORT CERT KEY
//          answers the Upgrade (RFC 6455 §4.2.2), pongs every ping, echoes every message; prints
//          "listening", then "seen ws <n messages>" when a client closes
//        tls-ws.mjs client HOST PORT ROUNDS INTERVAL_MS
//          opens wss://ws.example.test/chat (ALPN http/1.1), then ROUNDS times: a ping (4 bytes)
//          and a chat message (20-90 bytes), each waiting for its answer, INTERVAL_MS apart;
//          prints "ok <rounds>" and exits 0, or "failed: <why>" and exits 1
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:tls';

const [mode, host, port, a, b] = process.argv.slice(2);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload, mask) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | len]) : Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

/** Reads whole frames from `buf`; returns [frames, rest]. */
function frames(buf) {
  const out = [];
  for (;;) {
    if (buf.length < 2) break;
    let len = buf[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = buf.readUInt16BE(2);
      at = 4;
    }
    const masked = (buf[1] & 0x80) !== 0;
    const end = at + (masked ? 4 : 0) + len;
    if (buf.length < end) break;
    const payload = Buffer.from(buf.subarray(end - len, end));
    if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[at + (i & 3)];
    out.push({ opcode: buf[0] & 0x0f, payload });
    buf = buf.subarray(end);
  }
  return [out, buf];
}

if (mode === 'server') {
  const server = createServer({ cert: readFileSync(a), key: readFileSync(b), ALPNProtocols: ['http/1.1'] }, (socket) => {
    let buf = Buffer.alloc(0);
    let open = false;
    let messages = 0;
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const key = /sec-websocket-key:\s*(\S+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? '';
        const accept = createHash('sha1').update(key + GUID).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        buf = buf.subarray(end + 4);
        open = true;
      }
      const [got, rest] = frames(buf);
      buf = rest;
      for (const f of got) {
        if (f.opcode === 0x9) socket.write(frame(0xa, f.payload, false));
        else if (f.opcode === 0x1 || f.opcode === 0x2) {
          messages++;
          socket.write(frame(f.opcode, f.payload, false));
        } else if (f.opcode === 0x8) {
          console.log(`seen ws ${messages}`);
          socket.end(frame(0x8, f.payload, false));
        }
      }
    });
    socket.on('error', () => {});
  });
  server.listen(Number(port), host, () => console.log('listening'));
} else {
  const rounds = Number(a);
  const interval = Number(b);
  const fail = (why) => {
    console.log(`failed: ${why}`);
    process.exit(1);
  };
  const socket = connect({ host, port: Number(port), servername: 'ws.example.test', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
  socket.on('error', (e) => fail(e.message));
  socket.on('close', () => fail('closed'));
  let buf = Buffer.alloc(0);
  let open = false;
  let waiting = null;
  let done = 0;
  const words = ['hello', 'typing', 'are you there', 'sure', 'see the dashboard', 'latency ok', 'ack', 'deploying now', 'rolled back', 'thanks'];
  const step = () => {
    if (done === rounds) {
      socket.removeAllListeners('close');
      socket.end(frame(0x8, Buffer.from([0x03, 0xe8]), true));
      console.log(`ok ${rounds}`);
      setTimeout(() => process.exit(0), 100);
      return;
    }
    const ping = randomBytes(4);
    waiting = { opcode: 0xa, payload: ping, then: () => {
      const text = Buffer.from(JSON.stringify({ type: 'chat', n: done, text: words[done % words.length] }));
      waiting = { opcode: 0x1, payload: text, then: () => {
        done++;
        setTimeout(step, interval);
      } };
      socket.write(frame(0x1, text, true));
    } };
    socket.write(frame(0x9, ping, true));
  };
  socket.once('secureConnect', () => {
    socket.write(`GET /chat HTTP/1.1\r\nHost: ws.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: sidewall-test\r\n\r\n`);
  });
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (!open) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) fail(`no 101: ${buf.subarray(0, 40).toString()}`);
      buf = buf.subarray(end + 4);
      open = true;
      step();
    }
    const [got, rest] = frames(buf);
    buf = rest;
    for (const f of got) {
      if (waiting !== null && f.opcode === waiting.opcode && f.payload.equals(waiting.payload)) {
        const then = waiting.then;
        waiting = null;
        then();
      }
    }
  });
  setTimeout(() => fail(`timeout after ${done} rounds`), rounds * (interval + 2000) + 10_000);
}
