#!/usr/bin/env node
// Sends random bytes to HOST:PORT in ROUNDS rounds, each waiting for its bytes to come back
// (through an echo server at the far end of a tunnel), with a pause between rounds.
// usage: echo-roundtrip.mjs HOST PORT BYTES TIMEOUT_MS [ROUNDS]
// Prints "ok <bytes>" and exits 0 when every byte of every round came back unchanged;
// otherwise prints "failed: <why> in round <n> ..." and exits 1.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const [host, port, size, timeout, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 1);
let round = 0;
let payload = Buffer.alloc(0);
let received = [];
let got = 0;
let total = 0;
const fail = (why) => {
  console.log(`failed: ${why} in round ${round + 1} of ${rounds}, after ${got} of ${payload.length} bytes`);
  process.exit(1);
};
const timer = setTimeout(() => fail('timeout'), Number(timeout));
const socket = connect(Number(port), host, () => next());
function next() {
  payload = randomBytes(Number(size));
  received = [];
  got = 0;
  socket.write(payload);
}
socket.on('data', (d) => {
  received.push(d);
  got += d.length;
  if (got < payload.length) return;
  if (!Buffer.concat(received).subarray(0, payload.length).equals(payload)) fail('bytes differ');
  total += payload.length;
  if (++round < rounds) return void setTimeout(next, 300);
  clearTimeout(timer);
  console.log(`ok ${total}`);
  process.exit(0);
});
socket.on('error', (e) => fail(e.code ?? e.message));
socket.on('close', () => fail('closed'));
