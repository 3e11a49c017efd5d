// Calls each URL (http://host:port/path), tcp://host:port (reads the greeting) or
// ssh://host:port (speaks first with an SSH banner, as an ssh client tunnelling through an
// HTTP port would) in turn, every INTERVAL ms, forever, printing one line per call.
// usage: caller.mjs INTERVAL TARGET...
import { connect } from 'node:net';

const [interval, ...targets] = process.argv.slice(2);

async function call(target) {
  const url = new URL(target);
  if (url.protocol === 'tcp:' || url.protocol === 'ssh:') {
    return new Promise((resolve) => {
      const s = connect({ host: url.hostname, port: Number(url.port) });
      if (url.protocol === 'ssh:') s.on('connect', () => s.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'));
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('error', (e) => resolve(`${target} -> ${e.code}`));
      s.on('close', () => resolve(`${target} -> ${JSON.stringify(got.trim())}`));
    });
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return `${target} -> ${res.status}`;
  } catch (e) {
    return `${target} -> ${e.cause?.code ?? e.message}`;
  }
}

for (;;) {
  for (const t of targets) console.log(await call(t));
  await new Promise((r) => setTimeout(r, Number(interval)));
}
