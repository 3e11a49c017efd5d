// Sends raw bytes over TCP and prints what comes back (latin1) until the peer closes: for requests
// no HTTP client would send. Usage: raw-http.mjs HOST PORT BASE64 [REGEX BASE64]... — each later
// part is sent once the bytes received so far match REGEX; after the last part we half-close.
import { connect } from 'node:net';

const [host, port, first, ...rest] = process.argv.slice(2);
const steps = [];
for (let i = 0; i + 1 < rest.length; i += 2) steps.push({ wait: new RegExp(rest[i]), bytes: Buffer.from(rest[i + 1], 'base64') });
let received = '';
const socket = connect(Number(port), host, () => {
  socket.write(Buffer.from(first, 'base64'));
  if (steps.length === 0) socket.end();
});
const timer = setTimeout(() => {
  process.stdout.write(received + '\n[timeout]\n');
  socket.destroy();
  process.exit(0);
}, 8000);
socket.on('data', (d) => {
  received += d.toString('latin1');
  while (steps.length > 0 && steps[0].wait.test(received)) {
    const step = steps.shift();
    socket.write(step.bytes);
    if (steps.length === 0) socket.end();
  }
});
socket.on('error', (err) => {
  received += `\n[error ${err.code}]`;
});
socket.on('close', () => {
  clearTimeout(timer);
  process.stdout.write(received + '\n[closed]\n');
});
