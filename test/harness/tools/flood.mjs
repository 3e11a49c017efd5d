// Hostile clients for the robustness suite (test/e2e/robustness.test.ts), run in the pod namespace
// as an app uid: `flood.mjs MODE HOST PORT CONNS [MS]`. Prints "ready" once the flood runs, and at
// the end (after MS, default forever) one line "done {json}" with what it saw; "connected" once
// CONNS connections were established.
//   segments  unfinished request heads sent as 11-byte segments, reconnecting when closed
//   held      an allowed slow request, a denied one behind it, then bulk bytes held behind the denial
//   slowloris a request head sent a header line every 2 s
//   idle      connections that send nothing (prints "open N" as they connect)
//   headers   requests with 60 KiB of headers, one after another on each connection
//   h2        HTTP/2 (prior knowledge): SETTINGS and PING frames and streams, as fast as accepted
//   fin|rst   an unfinished head, then FIN or RST after 200 ms (prints "sent PORT" when it did)
import { connect } from 'node:net';

const [mode, host, portText, connsText, msText] = process.argv.slice(2);
const port = Number(portText);
const conns = Number(connsText);
const stats = { opened: 0, closed: 0, errors: 0, bytesOut: 0, bytesIn: 0, responses: 0 };
let stopping = false;
const sockets = new Set();

function open(onConnect) {
  const s = connect({ host, port, noDelay: true });
  sockets.add(s);
  s.on('connect', () => {
    if (++stats.opened === conns) process.stdout.write('connected\n');
    onConnect(s);
  });
  s.on('data', (d) => {
    stats.bytesIn += d.length;
    stats.responses += (d.toString('latin1').match(/HTTP\/1\.1 /g) ?? []).length;
  });
  s.on('error', (err) => {
    ++stats.errors;
    stats[err.code ?? 'other'] = (stats[err.code ?? 'other'] ?? 0) + 1;
  });
  s.on('close', () => {
    ++stats.closed;
    sockets.delete(s);
  });
  return s;
}

function send(s, bytes) {
  if (s.destroyed || s.writableEnded) return false;
  stats.bytesOut += bytes.length;
  return s.write(bytes);
}

const HEAD_LINES = Buffer.from(Array.from({ length: 6000 }, (_, i) => `X-h${i}: ${'v'.repeat(i % 7)}\r\n`).join(''));

const modes = {
  segments() {
    const one = () => {
      if (stopping) return;
      const s = open((sock) => {
        send(sock, Buffer.from('GET /ok/seg HTTP/1.1\r\nHost: x\r\n'));
        let at = 0;
        const timer = setInterval(() => {
          if (sock.destroyed) return clearInterval(timer);
          send(sock, HEAD_LINES.subarray(at, at + 11));
          at = (at + 11) % (HEAD_LINES.length - 11);
        }, 1);
        sock.on('close', () => clearInterval(timer));
      });
      s.on('close', () => setTimeout(one, 10));
    };
    for (let i = 0; i < conns; ++i) one();
  },
  held() {
    // Valid pipelined requests after the denied one: parsed, never answered, held until the
    // denial is answered (after the slow response): 1 MiB per connection, past any per-connection cap.
    const one = 'GET /ok/after HTTP/1.1\r\nHost: x\r\n\r\n';
    const bulk = Buffer.from(one.repeat(Math.floor((16 * 1024) / one.length)));
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        send(sock, Buffer.from('GET /ok/slow?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\nGET /denied HTTP/1.1\r\nHost: x\r\n\r\n'));
        let left = 16;
        const pump = () => {
          while (left-- > 0 && send(sock, bulk));
        };
        sock.on('drain', pump);
        pump();
      });
    }
  },
  slowloris() {
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        send(sock, Buffer.from('GET /ok/loris HTTP/1.1\r\n'));
        const timer = setInterval(() => send(sock, Buffer.from(`X-a${i}: b\r\n`)), 2000);
        sock.on('close', () => clearInterval(timer));
      });
    }
  },
  idle() {
    for (let i = 0; i < conns; ++i) open(() => process.stdout.write(`open ${stats.opened}\n`));
  },
  headers() {
    const big = `X-big: ${'b'.repeat(60 * 1024)}\r\n`;
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        const ask = () => send(sock, Buffer.from(`GET /ok/big HTTP/1.1\r\nHost: x\r\n${big}\r\n`));
        sock.on('data', (d) => {
          if (d.includes('HTTP/1.1 ')) ask();
        });
        ask();
      });
    }
  },
  h2() {
    const frame = (type, flags, stream, payload) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    };
    // HEADERS: GET http / (static table), :authority x; END_STREAM | END_HEADERS.
    const block = Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x78]);
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        send(sock, Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
        let stream = 1;
        // Writes that the kernel takes at once never return false: every 64 bursts (~34 KB) the
        // loop yields, so the tool sees a close (a proxy that reads and discards would otherwise
        // keep it spinning here forever).
        const pump = () => {
          for (let n = 0; !stopping && stream < 2_000_000; ++n) {
            if (n === 64) return void setImmediate(pump);
            const burst = [];
            for (let k = 0; k < 20; ++k) burst.push(frame(6, 0, 0, Buffer.alloc(8)), frame(4, 0, 0, Buffer.alloc(0)));
            burst.push(frame(1, 5, stream, block));
            stream += 2;
            if (!send(sock, Buffer.concat(burst))) return;
          }
        };
        sock.on('drain', pump);
        pump();
      });
    }
  },
  fin() {
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        send(sock, Buffer.from('GET /ok/fin HTTP/1.1\r\nHost: x\r\nX-unfinished: '));
        setTimeout(() => {
          sock.end();
          process.stdout.write(`sent ${sock.localPort}\n`);
        }, 200);
      });
    }
  },
  rst() {
    for (let i = 0; i < conns; ++i) {
      open((sock) => {
        send(sock, Buffer.from('GET /ok/rst HTTP/1.1\r\nHost: x\r\nX-unfinished: '));
        setTimeout(() => {
          process.stdout.write(`sent ${sock.localPort}\n`);
          sock.resetAndDestroy();
        }, 200);
      });
    }
  },
};

const run = modes[mode];
if (run === undefined) {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
run();
process.stdout.write('ready\n');
const finish = () => {
  stopping = true;
  process.stdout.write(`done ${JSON.stringify(stats)}\n`);
  for (const s of sockets) s.destroy();
  setTimeout(() => process.exit(0), 50);
};
if (msText !== undefined) setTimeout(finish, Number(msText));
process.on('SIGTERM', finish);
