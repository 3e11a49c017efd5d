// The native addons check their arguments: a call with missing or wrongly typed arguments throws a
// TypeError naming the expected signature, never crashes the process or acts on a default value.
// Each call runs in a child process, so a crash fails the test instead of the test runner.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const release = fileURLToPath(new URL('../../../build/Release/', import.meta.url));

/** Runs `call` (JS text with `addon` in scope) in a child; what it threw, or 'returned'. */
function outcome(addon: string, call: string): string {
  const script = `const addon = require(${JSON.stringify(release + addon + '.node')});
try { ${call}; process.stdout.write('returned'); } catch (e) { process.stdout.write(e.constructor.name + ': ' + e.message); }`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return child.status === 0 ? child.stdout : `exit ${String(child.status)} signal ${String(child.signal)}: ${child.stderr}`;
}

const BAD_CALLS: Record<string, string[]> = {
  socket_mark: [
    'addon.setSocketMark()',
    "addon.setSocketMark('3', 1)",
    'addon.setSocketMark(3, {})',
    'addon.socketMark()',
    'addon.socketMark(null)',
    'addon.socketError()',
    "addon.socketError('3')",
    'addon.socketError(-1)',
    'addon.resetOnClose()',
    "addon.resetOnClose('3')",
    'addon.resetOnClose(-1)',
    "addon.markedSocket(false, 'udp', 1)",
    'addon.markedSocket(false, false)',
    'addon.markedSocket(false, false, 1, 127001, 0)',
    "addon.markedSocket(false, false, 1, '127.0.0.1')",
    "addon.markedSocket(false, false, 1, '127.0.0.1', 70000)",
    'addon.closeFd()',
    "addon.closeFd('7')",
  ],
  original_dst: ['addon.originalDst()', "addon.originalDst('3', false)", 'addon.originalDst(3, 1)', 'addon.peerAddress()', "addon.peerAddress('3')", 'addon.peerAddress(-1)'],
  nfqueue: [
    'addon.open()',
    'addon.open(1, 10, 128)',
    'addon.open(70000, 10, 128, () => {})',
    'addon.open(1, 10, 8, () => {})',
    'addon.verdict()',
    'addon.verdict({}, 1, true, 0)',
    'addon.verdict(1, 1, true, 0)',
    "addon.verdict(null, 'x', true, 0)",
    'addon.verdict(null, 1, 1, 0)',
    'addon.close()',
    'addon.close({})',
    'addon.stats()',
    'addon.stats(7)',
    'addon.flushMarked(5, 1, 1)',
    'addon.flushMarked(4, 1)',
  ],
  splice_relay: [
    'addon.start()',
    "addon.start('3', 4, new Float64Array(6), () => {})",
    'addon.start(3, 4, new Float64Array(2), () => {})',
    'addon.start(3, 4, new Float64Array(6), null)',
    "addon.start(3, 4, new Float64Array(6), () => {}, 'both')",
    'addon.start(3, 4, new Float64Array(6), () => {}, 9)',
    'addon.stop()',
    'addon.stop({})',
    'addon.state(7)',
  ],
  release_memory: ['addon.releasePages()', 'addon.releasePages(65536)', 'addon.releasePages(new Float64Array(8192))', 'addon.releasePages(new ArrayBuffer(65536))'],
};

describe('native addon arguments', () => {
  for (const [addon, calls] of Object.entries(BAD_CALLS)) {
    it.each(calls)(`${addon}: %s throws a TypeError`, (call) => {
      expect(outcome(addon, call)).toMatch(/^TypeError: \S/);
    });
  }

  it('a queue handle from open() is accepted by verdict, stats and close, and refused by the splice relay (type tags), in a network namespace of its own', () => {
    // Root only (as the other net tests); the queue is opened where nothing is queued to it.
    const netns = `cu-nq-${process.pid}`;
    expect(spawnSync('ip', ['netns', 'add', netns]).status).toBe(0);
    try {
      const script = `const a = require(${JSON.stringify(release + 'nfqueue.node')}); const h = a.open(4242, 16, 128, () => {});
const out = [typeof a.stats(h).lost, a.verdict(h, 1, true, 0)];
try { require(${JSON.stringify(release + 'splice_relay.node')}).state(h); out.push('accepted by splice_relay'); } catch (e) { out.push(e.constructor.name); }
a.close(h); out.push(typeof a.stats(h).lost); process.stdout.write(JSON.stringify(out)); process.exit(0);`;
      const child = spawnSync('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { encoding: 'utf8' });
      expect(child.stderr).toBe('');
      // The queue handle works with its own addon and is refused by another's (the type tag).
      expect(JSON.parse(child.stdout)).toEqual(['number', true, 'TypeError', 'number']);
    } finally {
      spawnSync('ip', ['netns', 'del', netns]);
    }
  });

  it('a well-typed call still works (socketMark of a fresh marked socket)', () => {
    expect(outcome('socket_mark', "const fd = addon.markedSocket(false, true, 0x539, undefined); if (addon.socketMark(fd) !== 0x539) throw new Error('mark'); addon.closeFd(fd)")).toBe('returned');
  });

  it('socketError of a fresh socket is 0; of a closed descriptor, an Error with code EBADF', () => {
    expect(outcome('socket_mark', "const fd = addon.markedSocket(false, false, 0x539); const e = addon.socketError(fd); addon.closeFd(fd); if (e !== 0) throw new Error('SO_ERROR ' + e)")).toBe('returned');
    expect(outcome('socket_mark', "const fd = addon.markedSocket(false, false, 0x539); addon.closeFd(fd); try { addon.socketError(fd) } catch (e) { throw new RangeError(e.code) }")).toBe('RangeError: EBADF');
  });

  it('resetOnClose of a fresh socket is 0; of a closed descriptor, the errno EBADF (9), not a throw', () => {
    expect(outcome('socket_mark', "const fd = addon.markedSocket(false, false, 0x539); const e = addon.resetOnClose(fd); addon.closeFd(fd); if (e !== 0) throw new Error('errno ' + e)")).toBe('returned');
    expect(outcome('socket_mark', "const fd = addon.markedSocket(false, false, 0x539); addon.closeFd(fd); const e = addon.resetOnClose(fd); if (e !== 9) throw new Error('errno ' + e)")).toBe('returned');
  });

  it('peerAddress of an unconnected socket is an errno (ENOTCONN), not an address', () => {
    const marks = JSON.stringify(release + 'socket_mark.node');
    expect(outcome('original_dst', `const m = require(${marks}); const fd = m.markedSocket(false, false, 0); const r = addon.peerAddress(fd); m.closeFd(fd); if (r !== 107) throw new Error(String(r))`)).toBe('returned');
  });
});
