// A keep-alive connection pool that carries bulk, rests, then carries bulk again (the idle-memory
// e2e test). Bodies are deterministic per seed, so each side checks every byte by its sha256.
//   server HOST PORT              GET /blob?seed=K → 1 MiB of seed K's bytes; prints 'listening'
//   client HOST PORT N TRIGGER    N connections each fetch one blob, print 'fetched', wait for the
//                                 file TRIGGER to exist, fetch again on the same connections, and
//                                 print {"ok":…,"bad":…,"reused":…} (reused: connections still open)
import { createHash } from 'node:crypto';
import { existsSync, watch } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';

const BLOB_BYTES = 1024 * 1024;

/** 1 MiB of xorshift32 output from the seed: cheap to make on both sides, different per seed. */
function blob(seed) {
  const words = new Uint32Array(BLOB_BYTES / 4);
  let x = (Number(seed) * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer);
}

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');

const [mode, host, port, count, trigger] = process.argv.slice(2);

if (mode === 'server') {
  const server = createServer({ keepAliveTimeout: 600_000 }, (req, res) => {
    const seed = new URL(req.url, 'http://x').searchParams.get('seed') ?? '0';
    const body = blob(seed);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  server.listen(Number(port), host, () => console.log('listening'));
} else if (mode === 'client') {
  // N connections opened first, then each fetches its blob in turn: a blob fits in the socket
  // buffers, so the sidecar's writes complete at once, as with a client that keeps up.
  const n = Number(count);
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const s = connect(Number(port), host, () => resolve(s));
      s.once('error', reject);
    })),
  );
  const fetchOn = (socket, seed) =>
    new Promise((resolve) => {
      let got = Buffer.alloc(0);
      let bodyAt = -1;
      let length = -1;
      const finish = (ok) => {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(ok);
      };
      const onData = (chunk) => {
        got = Buffer.concat([got, chunk]);
        if (bodyAt < 0) {
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = got.subarray(0, end).toString('latin1');
          length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? -1);
          if (!head.startsWith('HTTP/1.1 200 ') || length < 0) return finish(false);
          bodyAt = end + 4;
        }
        if (got.length >= bodyAt + length) finish(got.length === bodyAt + length && sha(got.subarray(bodyAt)) === sha(blob(seed)));
      };
      const onClose = () => finish(false);
      socket.on('data', onData);
      socket.on('close', onClose);
      socket.write(`GET /blob?seed=${seed} HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
    });
  const round = async (base) => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const slow = setTimeout(() => process.stderr.write(`fetch ${base + i} on connection ${i} has no answer after 5 s\n`), 5000);
      if (await fetchOn(sockets[i], base + i)) ok++;
      clearTimeout(slow);
    }
    // reused: the connection is still the one opened at the start (not closed under us).
    return { ok, bad: n - ok, reused: sockets.filter((s) => !s.destroyed && s.readyState === 'open').length };
  };
  const first = await round(0);
  if (first.bad > 0) {
    console.log(JSON.stringify(first));
    process.exit(1);
  }
  console.log('fetched');
  if (!existsSync(trigger)) {
    await new Promise((resolve) => {
      const watcher = watch(dirname(trigger), () => {
        if (existsSync(trigger)) {
          watcher.close();
          resolve();
        }
      });
      if (existsSync(trigger)) {
        watcher.close();
        resolve();
      }
    });
  }
  console.log(JSON.stringify(await round(n)));
  for (const s of sockets) s.end();
} else {
  console.error('usage: idle-pool.mjs server HOST PORT | client HOST PORT N TRIGGER');
  process.exit(2);
}
