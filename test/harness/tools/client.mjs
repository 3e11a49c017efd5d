#!/usr/bin/env node
// A test client for the namespace harness.
// usage: client.mjs MODE HOST PORT [ARG]
//   send N        sends N deterministic pseudo-random bytes, shuts its write side (FIN), prints
//                 "<sent> <sha256 of sent>" then what the server answered (after the FIN)
//   halfclose TXT sends TXT, FINs, then reads the whole answer and prints it
//   read          prints what the server sends until it closes
//   concurrent N  opens N connections at once to an echo server, each sends 64 KiB and checks
//                 its echo; prints "ok N" or the failures
//   slow-reader N sends N pattern bytes to an echo server and reads the echo slowly (a 1 ms
//                 pause every 24 KiB), so the proxy's writes to it back up; prints
//                 "<sent> <sha256 of sent>" then "<received> <sha256 of received>"
//   slow N        sends "tick i\n" every 200 ms N times, then FINs; prints the echoed text
//   hold          connects and sends nothing until killed
//   first-line    sends nothing; prints the server's first line and how many ms it took
//   keepalive P1 P2 FILE  on ONE connection: GET P1, print the status line; wait until FILE
//                 exists; GET P2, print the status line
//   expect-error  connects, sends a line, prints the error code it gets (or "closed") and how
//                 many ms it took
// Exit code 0 unless the client itself broke.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';

const [mode, host, portText, arg] = process.argv.slice(2);
const port = Number(portText);

function pattern(n, seed = 1) {
  // xorshift32: deterministic, fast, incompressible enough for a transfer test.
  const buf = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < n; i++) buf[i] = i & 0xff;
  return buf;
}

function readAll(socket) {
  return new Promise((resolve, reject) => {
    const parts = [];
    socket.on('data', (d) => parts.push(d));
    socket.on('end', () => resolve(Buffer.concat(parts)));
    socket.on('error', reject);
  });
}

async function main() {
  if (mode === 'send') {
    const total = Number(arg);
    const socket = connect({ host, port, allowHalfOpen: true });
    const hash = createHash('sha256');
    const answer = readAll(socket);
    const chunk = 1 << 20;
    let sent = 0;
    await new Promise((r) => socket.once('connect', r));
    while (sent < total) {
      const n = Math.min(chunk, total - sent);
      const piece = pattern(n, sent + 1);
      hash.update(piece);
      sent += n;
      if (!socket.write(piece)) await new Promise((r) => socket.once('drain', r));
    }
    socket.end();
    const got = await answer;
    process.stdout.write(`${sent} ${hash.digest('hex')}\n${got.toString()}`);
  } else if (mode === 'slow-reader') {
    const total = Number(arg);
    const payload = pattern(total, 11);
    const socket = connect({ host, port, allowHalfOpen: true });
    const received = createHash('sha256');
    let got = 0;
    let sinceBreak = 0;
    const done = new Promise((resolve, reject) => {
      socket.on('data', (d) => {
        received.update(d);
        got += d.length;
        sinceBreak += d.length;
        if (sinceBreak >= 24 * 1024) {
          sinceBreak = 0;
          socket.pause();
          setTimeout(() => socket.resume(), 1);
        }
      });
      socket.on('end', resolve);
      socket.on('error', reject);
    });
    socket.end(payload);
    await done;
    process.stdout.write(`${total} ${createHash('sha256').update(payload).digest('hex')}\n${got} ${received.digest('hex')}\n`);
  } else if (mode === 'halfclose') {
    const socket = connect({ host, port, allowHalfOpen: true });
    const answer = readAll(socket);
    socket.end(arg);
    process.stdout.write((await answer).toString());
  } else if (mode === 'read') {
    const socket = connect({ host, port });
    process.stdout.write((await readAll(socket)).toString());
  } else if (mode === 'concurrent') {
    const n = Number(arg);
    const payload = pattern(64 * 1024, 7);
    const results = await Promise.allSettled(Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const socket = connect({ host, port, allowHalfOpen: true });
      readAll(socket).then((got) => (got.equals(payload) ? resolve() : reject(new Error(`echo mismatch ${got.length}`))), reject);
      socket.end(payload);
    })));
    const failed = results.filter((r) => r.status === 'rejected');
    console.log(failed.length === 0 ? `ok ${n}` : `failed ${failed.length}: ${failed[0].reason.message}`);
  } else if (mode === 'slow') {
    const socket = connect({ host, port, allowHalfOpen: true });
    const answer = readAll(socket);
    for (let i = 0; i < Number(arg); i++) {
      socket.write(`tick ${i}\n`);
      await new Promise((r) => setTimeout(r, 200));
    }
    socket.end();
    process.stdout.write((await answer).toString());
  } else if (mode === 'hold') {
    const socket = connect({ host, port });
    socket.on('connect', () => console.log('connected'));
    socket.on('error', (e) => { console.log(e.code); process.exit(0); });
    socket.on('close', () => { console.log('closed'); process.exit(0); });
  } else if (mode === 'first-line') {
    const started = Date.now();
    const socket = connect({ host, port });
    let got = '';
    socket.setEncoding('latin1');
    const line = await new Promise((resolve) => {
      socket.on('data', (d) => { got += d; if (got.includes('\n')) resolve(got.split('\n')[0]); });
      socket.on('error', (e) => resolve(`error ${e.code}`));
      socket.on('close', () => resolve(got || 'closed'));
    });
    console.log(`${line.trim()} ${Date.now() - started}`);
    socket.destroy();
  } else if (mode === 'keepalive') {
    const [p1, p2, trigger] = [arg, process.argv[6], process.argv[7]];
    const socket = connect({ host, port });
    socket.setEncoding('latin1');
    let buf = '';
    const statusLine = () => new Promise((resolve) => {
      const check = () => {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return false;
        const head = buf.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return false;
        buf = buf.slice(end + 4 + length);
        resolve(head.split('\r\n')[0]);
        return true;
      };
      if (check()) return;
      const onData = (d) => { buf += d; if (check()) socket.off('data', onData); };
      socket.on('data', onData);
      socket.once('close', () => resolve('closed'));
    });
    const get = (p) => socket.write(`GET ${p} HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
    get(p1);
    console.log(await statusLine());
    while (!existsSync(trigger)) await new Promise((r) => setTimeout(r, 50));
    get(p2);
    console.log(await statusLine());
    socket.destroy();
  } else if (mode === 'expect-error') {
    const started = Date.now();
    const socket = connect({ host, port });
    socket.on('connect', () => socket.write('hello\n'));
    const outcome = await new Promise((resolve) => {
      socket.on('error', (e) => resolve(e.code ?? e.message));
      socket.on('close', () => resolve('closed'));
      socket.on('data', () => {});
    });
    console.log(`${outcome} ${Date.now() - started}`);
  } else {
    console.error(`unknown mode ${mode}`);
    process.exit(2);
  }
}
main().catch((e) => { console.error(e.code ?? e.message); process.exit(1); });
