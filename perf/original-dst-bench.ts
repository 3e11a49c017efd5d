// Cost of one SO_ORIGINAL_DST lookup (the native addon) on a real redirected socket.
// Run as root: node dist/perf/original-dst-bench.js — it makes a network namespace, redirects a
// port to a local listener with iptables, connects once, and times N lookups on that socket.
import { spawnSync } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { originalDestination } from '../src/net/original-dst.js';

const NS = 'swodbench';
const N = 200_000;

async function main(): Promise<void> {
  if (process.argv[2] !== 'inside') {
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['netns', 'add', NS]);
    try {
      spawnSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
      spawnSync('ip', ['netns', 'exec', NS, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9999', '-j', 'REDIRECT', '--to-ports', '19001']);
      const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, process.argv[1] as string, 'inside'], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    } finally {
      spawnSync('ip', ['netns', 'del', NS]);
    }
    return;
  }
  const accepted = new Promise<Socket>((resolve) => {
    createServer((s) => resolve(s)).listen(19001, '127.0.0.1', () => connect(9999, '127.0.0.1'));
  });
  const socket = await accepted;
  const first = originalDestination(socket);
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const d = originalDestination(socket);
    if (typeof d !== 'number') sink += d.port;
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`SO_ORIGINAL_DST via the N-API addon: ${JSON.stringify(first)}, ${(ns / 1000).toFixed(2)} µs per lookup (${N} lookups; checksum ${sink % 7})`);
  process.exit(0);
}

void main();
