// Servers for the robustness suite (test/e2e/robustness.test.ts), in the peer namespace:
//   :80   HTTP/1.1; /ok/slow?ms=N answers after N ms; its own header timeout is off (10 min), so
//         any early close of an unfinished head is the proxy's doing
//   :8080 HTTP/2 over cleartext (prior knowledge)
//   :7    answers 800 ms after the client's FIN
//   :25   a server that speaks first (SMTP-like greeting), and logs what it receives
// Lines on stdout: "listening"; "seen http1 METHOD URL"; "open http1 PORT" / "closed http1 PORT MS"
// per connection (what the proxy's upstream connections did, seen from the server);
// "greeted PORT"; "got smtp PORT N" (bytes received); "h2 session PORT pings N streams N" when an
// HTTP/2 session ends (PING frames and requests it received: what a flood got through).
import { createServer as createHttpServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createTcpServer } from 'node:net';

const host = process.argv[2] ?? '0.0.0.0';
const out = (line) => process.stdout.write(`${line}\n`);

const http1 = createHttpServer({ maxHeaderSize: 128 * 1024, headersTimeout: 600_000, requestTimeout: 600_000, keepAliveTimeout: 600_000 }, (req, res) => {
  out(`seen http1 ${req.method} ${req.url}`);
  const url = new URL(req.url, 'http://x');
  const ms = url.pathname === '/ok/slow' ? Number(url.searchParams.get('ms') ?? '1000') : 0;
  req.resume();
  req.on('end', () => setTimeout(() => res.end(`ok ${req.url}\n`), ms));
});
http1.on('connection', (socket) => {
  const port = socket.remotePort;
  const t0 = performance.now();
  out(`open http1 ${port}`);
  socket.on('close', () => out(`closed http1 ${port} ${Math.round(performance.now() - t0)}`));
});

const h2 = createH2Server({ settings: { maxConcurrentStreams: 1000 } }, (req, res) => {
  out(`seen h2 ${req.method} ${req.url}`);
  res.end('ok h2\n');
});
h2.on('sessionError', () => {});
h2.on('session', (session) => {
  const port = session.socket?.remotePort;
  let pings = 0;
  let streams = 0;
  session.on('ping', () => ++pings);
  session.on('stream', () => ++streams);
  session.on('close', () => out(`h2 session ${port} pings ${pings} streams ${streams}`));
});

const smtp = createTcpServer((socket) => {
  out(`greeted ${socket.remotePort}`);
  socket.write('220 secret-greeting.example ESMTP\r\n');
  let n = 0;
  socket.on('data', (d) => {
    n += d.length;
    out(`got smtp ${socket.remotePort} ${n}`);
  });
  socket.on('error', () => {});
});

// :7 answers after the client's FIN (a half-closed connection with its answer still to come).
const afterFin = createTcpServer({ allowHalfOpen: true }, (socket) => {
  socket.resume();
  socket.on('end', () => {
    out(`fin 7 ${socket.remotePort}`);
    setTimeout(() => socket.end('bye-after-fin\n'), 800);
  });
  socket.on('error', () => {});
});

const listen = (server, port) => new Promise((resolve) => server.listen(port, host, resolve));
await listen(http1, 80);
await listen(h2, 8080);
await listen(smtp, 25);
await listen(afterFin, 7);
out('listening');
