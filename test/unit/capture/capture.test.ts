// The capture pieces without sockets: frames (checksums, sequence numbers), the tap's pre-buffer
// and the alert that starts a capture in the middle of a read, the store's budget, and the config.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureStore, DEFAULT_CAPTURE, type TappableConnection } from '../../../src/capture/store.js';
import { TcpFrames } from '../../../src/capture/tcp-frames.js';
import { byteSize, parseConfig } from '../../../src/config/load.js';

/** The frames of a pcapng file (EPB payloads), after checking every block's framing. */
function framesOf(file: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < file.length; ) {
    const type = file.readUInt32LE(at);
    const len = file.readUInt32LE(at + 4);
    expect(len % 4).toBe(0);
    expect(file.readUInt32LE(at + len - 4)).toBe(len);
    if (type === 6) out.push(file.subarray(at + 28, at + 28 + file.readUInt32LE(at + 20)));
    at += len;
  }
  return out;
}

function checksum(buf: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Payload of a TCP-over-IPv4 frame, after verifying both checksums. */
function tcpPayload(frame: Buffer): { seq: number; ack: number; flags: number; data: Buffer } {
  const ip = frame.subarray(14, 34);
  expect(checksum(ip)).toBe(0xffff);
  const total = ip.readUInt16BE(2);
  const seg = frame.subarray(34, 14 + total);
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 6, seg.length >> 8, seg.length & 0xff]), seg]);
  expect(checksum(pseudo)).toBe(0xffff);
  const off = (seg[12]! >> 4) * 4;
  return { seq: seg.readUInt32BE(4), ack: seg.readUInt32BE(8), flags: seg[13]!, data: seg.subarray(off) };
}

describe('TcpFrames', () => {
  it('numbers the bytes both ways, wraps at 2^32, and checksums every frame', () => {
    const f = new TcpFrames({ ip: '10.0.0.1', port: 40000 }, { ip: '10.0.0.2', port: 80 }, { client: 0xffffffff, server: 7 });
    const [syn, synAck, ack] = f.handshake().map(tcpPayload);
    expect(syn!.flags & 0x02).toBe(2);
    expect(synAck!.ack).toBe(0);
    expect(ack!.seq).toBe(0);
    const [data, dataAck] = f.data('client', Buffer.from('hello')).map(tcpPayload);
    expect(data!.data.toString()).toBe('hello');
    expect(dataAck!.ack).toBe(5);
    const big = f.data('server', Buffer.alloc(140_000, 1)).map(tcpPayload);
    expect(big.filter((p) => p.data.length > 0).map((p) => p.data.length)).toEqual([65_000, 65_000, 10_000]);
    expect(big.at(-1)!.ack).toBe(8 + 140_000);
  });
});

describe('CaptureStore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function setup(settings: Partial<typeof DEFAULT_CAPTURE> = {}): { store: CaptureStore; conns: Map<string, TappableConnection>; dir: string } {
    const dir = mkdtempSync(join(tmpdir(), 'sidewall-capture-unit-'));
    dirs.push(dir);
    const conns = new Map<string, TappableConnection>();
    const store = new CaptureStore({ ...DEFAULT_CAPTURE, dir, ...settings }, { get: (id) => conns.get(id), all: () => conns.values() });
    return { store, conns, dir };
  }

  function connection(conns: Map<string, TappableConnection>, flowId: string, already = { fromClient: 0, toClient: 0 }): TappableConnection {
    const conn: TappableConnection = { flowId, src: { ip: '10.0.0.1', port: 40000 }, dst: { ip: '10.0.0.2', port: 80 }, tap: undefined, bytesFromClient: already.fromClient, bytesToClient: already.toClient };
    conns.set(flowId, conn);
    return conn;
  }

  it('starts nothing and writes nothing when no trigger is on', () => {
    const { store, conns, dir } = setup();
    const conn = connection(conns, 'f1');
    store.opened(conn);
    expect(conn.tap).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an alert captures its connection from the first byte, including the read that raised it past the pre-buffer', () => {
    const { store, conns } = setup({ onAlert: true, preBufferBytes: 1024 });
    const conn = connection(conns, 'f1');
    store.opened(conn);
    const tap = conn.tap!;
    tap.fromClient(Buffer.from('first '));
    tap.settle();
    tap.toClient(Buffer.from('reply '));
    // A read larger than the pre-buffer: the alert comes while the L7 layer reads it.
    const big = Buffer.alloc(5000, 'b');
    tap.fromClient(big);
    const id = store.alerted(conn)!;
    tap.settle();
    tap.fromClient(Buffer.from(' later'));
    tap.settle();
    tap.fin('client');
    tap.close();
    const frames = framesOf(readFileSync(store.path(id)!)).map(tcpPayload);
    expect(frames[0]!.flags & 0x02).toBe(2); // SYN: the beginning is there
    const client = Buffer.concat(frames.map((p) => p.data));
    expect(client.toString()).toBe('first reply ' + 'b'.repeat(5000) + ' later');
    expect(store.list()[0]).toMatchObject({ id, trigger: 'alert', active: false, flows: ['f1'], truncated: false });
  });

  it('bytes between the full pre-buffer and the alert are an explicit gap: counted, noted on the frame after it, and tshark reports it', () => {
    const { store, conns, dir } = setup({ onAlert: true, preBufferBytes: 1024 });
    const conn = connection(conns, 'f1');
    store.opened(conn);
    const tap = conn.tap!;
    tap.fromClient(Buffer.alloc(300, 'a'));
    tap.settle();
    tap.toClient(Buffer.alloc(200, 'b'));
    // Past the 1 KiB pre-buffer, nothing captures the connection yet: only counted.
    tap.fromClient(Buffer.alloc(4000, 'c'));
    tap.settle();
    tap.toClient(Buffer.alloc(3000, 'd'));
    tap.fromClient(Buffer.from('ALERT'));
    const id = store.alerted(conn)!;
    tap.settle();
    tap.toClient(Buffer.from('after'));
    tap.fin('client');
    tap.close();
    expect(tap.gapOf(id)).toEqual({ fromClient: 4000, toClient: 3000 });
    const file = join(dir, 'copy.pcapng');
    writeFileSync(file, readFileSync(store.path(id)!));
    const tshark = (args: string[]): string => {
      const r = spawnSync('tshark', ['-r', file, ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    // "Follow TCP stream" has every captured byte in place and names the missing ones.
    const follow = tshark(['-q', '-z', 'follow,tcp,ascii,0']);
    expect(follow).toContain('[4000 bytes missing in capture file]');
    expect(follow).toContain('[3000 bytes missing in capture file]');
    expect(follow).toContain('a'.repeat(300));
    expect(follow).toContain('ALERT');
    expect(follow).toContain('after');
    expect(follow).not.toContain('c'.repeat(10));
    expect(tshark(['-q', '-z', 'expert,warn'])).toContain('Previous segment(s) not captured');
    // The first frame after the gap says what is missing, and why.
    const comments = tshark(['-T', 'fields', '-e', 'frame.comment']).split('\n').filter((l) => l.trim() !== '');
    expect(comments).toEqual(['sidewall flow f1', 'sidewall: 4000 bytes from the client and 3000 bytes to it not captured here (sent after the 1024-byte pre-buffer filled, before this capture began)']);
    // A capture whose pre-buffer held everything has no gap.
    const whole = connection(conns, 'f2');
    store.opened(whole);
    whole.tap!.fromClient(Buffer.from('short'));
    const wholeId = store.alerted(whole)!;
    whole.tap!.settle();
    expect(whole.tap!.gapOf(wholeId)).toBeUndefined();
  }, 60_000); // three tshark runs: seconds each on a loaded 2-core machine

  it('a first read larger than the pre-buffer leaves its beginning there; the rest up to the alert is the gap', () => {
    const { store, conns } = setup({ onAlert: true, preBufferBytes: 2048 });
    const conn = connection(conns, 'f1');
    store.opened(conn);
    const tap = conn.tap!;
    const first = Buffer.concat([Buffer.from('POST /big HTTP/1.1\r\n\r\n'), Buffer.alloc(10_000, 'p')]);
    tap.fromClient(first);
    tap.settle();
    tap.toClient(Buffer.alloc(5000, 'r')); // past the pre-buffer: counted only
    tap.fromClient(Buffer.from('ALERT'));
    const id = store.alerted(conn)!;
    tap.settle();
    tap.close();
    const frames = framesOf(readFileSync(store.path(id)!)).map(tcpPayload);
    const data = frames.filter((f) => f.data.length > 0);
    expect(data[0]!.data.subarray(0, 19).toString()).toBe('POST /big HTTP/1.1\r');
    expect(data.at(-1)!.data.toString()).toBe('ALERT');
    const keptClient = data.slice(0, -1).reduce((n, f) => n + f.data.length, 0);
    expect(keptClient).toBeGreaterThan(1000);
    // Every byte is either in the capture or in the gap, and the numbers say where.
    expect(tap.gapOf(id)).toEqual({ fromClient: first.length - keptClient, toClient: 5000 });
    expect(data.at(-1)!.seq - data[0]!.seq).toBe(first.length);
  });

  it('a DNS query and its answer (capture: true rule, on-demand --peer): UDP datagrams with the app\'s port and the resolver\'s address, exactly', () => {
    const { store } = setup();
    const question = '03777777076578616d706c6503636f6d0000010001';
    const query = Buffer.from(`abcd01000001000000000000${question}`, 'hex');
    const answer = Buffer.from(`abcd81800001000100000000${question}c00c000100010000003c00040a4d0063`, 'hex');
    const peer = store.start({ peer: '10.1.0.3', durationMs: 60_000 });
    const flow = { flowId: 'd1', client: { ip: '10.1.0.2', port: 53184 }, server: { ip: '10.1.0.3', port: 53 }, datagrams: [{ micros: 1_000_000, fromClient: true, bytes: query }, { micros: 1_000_700, fromClient: false, bytes: answer }] };
    const own = store.datagramFlow({ ...flow, decision: { action: 'allow', verdict: 'allowed', ruleId: 'dns-r', policy: 'p', capture: true } as never })!;
    expect(own).toEqual(expect.any(String));
    expect(store.info(own)).toMatchObject({ trigger: 'rule', ruleId: 'dns-r', active: false, flows: ['d1'], packets: 2 });
    store.stop(peer.id);
    for (const id of [own, peer.id]) {
      const r = spawnSync('tshark', ['-r', store.path(id)!, '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=,', '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'dns.qry.name', '-e', 'dns.a', '-e', 'udp.checksum.status', '-e', 'udp.payload'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual([
        `10.1.0.2,53184,10.1.0.3,53,www.example.com,,1,${query.toString('hex')}`,
        `10.1.0.3,53,10.1.0.2,53184,www.example.com,10.77.0.99,1,${answer.toString('hex')}`,
      ]);
    }
    // A flow no trigger wants is in no capture.
    expect(store.datagramFlow({ ...flow, flowId: 'd2', server: { ip: '10.9.9.9', port: 53 } })).toBeUndefined();
    expect(store.list().every((c) => !c.flows.includes('d2'))).toBe(true);
  }, 60_000); // two tshark runs

  it('the first packet of a non-TCP flow (capture: true rule, on-demand --rule): written as the guard got it, cut to its copy range with the original length kept', () => {
    const { store } = setup();
    const session = store.start({ rule: 'udp-r', durationMs: 60_000 });
    // IPv4/UDP 10.1.0.2:40000 -> 10.1.0.3:5000 with 600 bytes of payload; the guard copied 512 bytes.
    const packet = Buffer.alloc(20 + 8 + 600, 0x61);
    packet.set([0x45, 0, (628 >> 8) & 0xff, 628 & 0xff, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 1, 0, 3]);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += packet.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    packet.writeUInt16BE(~sum & 0xffff, 10);
    packet.writeUInt16BE(40000, 20);
    packet.writeUInt16BE(5000, 22);
    packet.writeUInt16BE(608, 24);
    packet.writeUInt16BE(0, 26); // no UDP checksum (allowed over IPv4)
    const decision = { action: 'allow', verdict: 'allowed', ruleId: 'udp-r', policy: 'p', capture: true } as never;
    const id = store.firstPacket({ flowId: 'u1', client: { ip: '10.1.0.2', port: 40000 }, server: { ip: '10.1.0.3', port: 5000 }, decision, ip: packet.subarray(0, 512), length: 628 })!;
    expect(store.info(id)).toMatchObject({ trigger: 'rule', ruleId: 'udp-r', flows: ['u1'], packets: 1, active: false });
    store.stop(session.id);
    for (const file of [id, session.id]) {
      const r = spawnSync('tshark', ['-r', store.path(file)!, '-T', 'fields', '-E', 'separator=,', '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'frame.len', '-e', 'frame.cap_len', '-e', 'frame.comment'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('10.1.0.2,40000,10.1.0.3,5000,642,526,sidewall flow u1 (first packet, as the non-TCP guard decided it)');
    }
  }, 60_000); // two tshark runs

  it('keeps within maxBytes by deleting the oldest finished captures', () => {
    const { store, conns, dir } = setup({ onAlert: true, maxBytes: 20_000 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const conn = connection(conns, `f${i}`);
      store.opened(conn);
      conn.tap!.fromClient(Buffer.alloc(4000, 'x'));
      ids.push(store.alerted(conn)!);
      conn.tap!.settle();
      conn.tap!.close();
      store.path(ids.at(-1)!); // flush
    }
    const left = store.list();
    expect(left.reduce((n, c) => n + c.bytes, 0)).toBeLessThanOrEqual(20_000);
    expect(left.map((c) => c.id)).toEqual(ids.slice(ids.length - left.length));
    expect(left.length).toBeLessThan(6);
    expect(readdirSync(dir).sort()).toEqual(left.map((c) => `${c.id}.pcapng`).sort());
  });

  it('a capture that joins an open connection starts where the stream is, without a handshake', () => {
    const { store, conns } = setup();
    const conn = connection(conns, 'f1', { fromClient: 100, toClient: 50 });
    const info = store.start({ flow: 'f1', durationMs: 60_000 });
    conn.tap!.fromClient(Buffer.from('abc'));
    conn.tap!.settle();
    conn.tap!.close();
    const frames = framesOf(readFileSync(store.path(info.id)!)).map(tcpPayload);
    expect(frames.some((f) => f.flags & 0x02)).toBe(false);
    expect(frames[0]!.data.toString()).toBe('abc');
    expect(store.list()[0]!.active).toBe(false); // a flow capture ends with its flow
  });

  it('refuses bad on-demand requests with a status', () => {
    const { store } = setup();
    expect(() => store.start({ durationMs: 1000 })).toThrow(/exactly one/);
    expect(() => store.start({ peer: '10.0.0.300', durationMs: 1000 })).toThrow(/peer/);
    expect(() => store.start({ flow: 'nope', durationMs: 1000 })).toThrow(/no open connection/);
    expect(() => store.start({ rule: 'r', durationMs: 0 })).toThrow(/durationMs/);
  });
});

describe('config capture', () => {
  it('reads sizes with units and refuses what is not one', () => {
    expect(byteSize('64MiB')).toBe(64 * 1024 * 1024);
    expect(byteSize('8Mi')).toBe(8 * 1024 * 1024);
    expect(byteSize(4096)).toBe(4096);
    expect(byteSize('lots')).toBeUndefined();
    const config = parseConfig({ capture: { onAlert: true, maxBytes: '1MiB', dir: 'caps' } }, '/etc/sidewall/config.yaml');
    expect(config.capture).toMatchObject({ onAlert: true, maxBytes: 1024 * 1024, dir: '/etc/sidewall/caps' });
    expect(() => parseConfig({ capture: { maxBytes: '1 parsec', onAlert: 'yes', extra: 1 } }, 'c.yaml')).toThrow(/capture.maxBytes.*capture.onAlert.*capture.extra|capture.extra/);
  });
});
