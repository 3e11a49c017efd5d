// Carriers recognised by themselves. The tunnel fixtures are the first client bytes captured
// from Debian's tools (openvpn 2.6 --proto tcp-client, plain and --tls-crypt; ss-local 3.3 with
// chacha20-ietf-poly1305); the benign ones are first flights of real protocols.
import { randomBytes as cryptoRandom } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { recogniseCarrier } from '../../../src/tunnels/carriers.js';
import { PayloadWindow } from '../../../src/tunnels/payload-window.js';
import { createTunnelDetection } from '../../../src/tunnels/index.js';
import { facts } from './helpers.js';

const OPENVPN = Buffer.from('000e386380cff3e851498e0000000000000e386380cff3e851498e0000000000', 'hex');
const OPENVPN_TLS_CRYPT = Buffer.from('003638aeb1fe588671b81a000000016b1173ab542c37beb2815b35829f6c28d7a225630d18e86bdabee72da2ef1ee06f04810d6e65d457e0003638aeb1fe588671b81a000000026b1173abbcfcc0cd80315d464ba5ff5bf0509d3f412c58d79c13148ac7e4784913d96a907e255add6b', 'hex');
const SHADOWSOCKS = Buffer.from('ad6b0dcf17c1ad9c9d2f9796a554a7610cf71b4f2f6835d08d104faf9e076c27f41e56beeda517b9d3daf7db52ebbec5cc6f5f7fe432ae009f6f9db85f2c429b7d0b6abcd09f5e33e5e5add5b2093f611e094289a7eea094903f3e6ded169a5d14f1aa9b96d6032f5d2a6157dea332d40007f7539428fa01cd894a324bcfd59ff746be93641a4986df4786ca760cc4413748aae8e57daebf757a40d49067a8a75885c73dcf4d430d91c700292f2549ecec030a997c15ce41f9b4ad50fde19576', 'hex');

function judge(bytes: Buffer): ReturnType<typeof recogniseCarrier> {
  const w = new PayloadWindow(512);
  w.append(bytes.subarray(0, 512));
  return recogniseCarrier(w);
}

const BENIGN: Record<string, Buffer> = {
  'Kafka ApiVersions': Buffer.from('0000001f0012000300000001000d6b61666b612d707974686f6e2d322e302e3200000000000000000000000000000000000000000000000000000000000000', 'hex'),
  'MongoDB OP_MSG hello': Buffer.concat([Buffer.from('a5000000010000000000000000dd0700000000000000', 'hex'), Buffer.from('\x00\x00\x00\x10hello\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00'.repeat(3), 'latin1')]),
  'Cassandra STARTUP': Buffer.concat([Buffer.from('0400000001000000160001000b43514c5f56455253494f4e0005332e302e30', 'hex'), Buffer.alloc(40)]),
  'gzip stream': Buffer.concat([Buffer.from('1f8b0800000000000003', 'hex'), cryptoRandom(200)]),
  'base64 text': Buffer.from(cryptoRandom(300).toString('base64')),
  'JSON lines': Buffer.from('{"ts":"2026-12-03T13:00:00Z","level":"info","msg":"hello","id":"7f3c9a1e-22b4-4c55-8f2e-0a9d3b7c1e44"}\n'.repeat(3)),
  'AMQP 0-9-1': Buffer.concat([Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'), Buffer.alloc(60)]),
  'MQTT CONNECT': Buffer.concat([Buffer.from('101800044d5154540402003c000c636c69656e742d313233', 'hex'), Buffer.alloc(50)]),
  'NATS CONNECT': Buffer.from('CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"svc","lang":"go","version":"1.31.0","protocol":1}\r\nPING\r\n'),
  'Memcached': Buffer.from('get session:8c1f0a2e9b7d4c3f a:1 b:2 c:3\r\nset counter 0 0 4\r\n1234\r\n'.repeat(2)),
};

describe('recogniseCarrier', () => {
  it('recognises OpenVPN over TCP, plain and --tls-crypt, from its hard reset', () => {
    for (const [name, bytes] of [['plain', OPENVPN], ['tls-crypt', OPENVPN_TLS_CRYPT]] as const) {
      expect(judge(bytes), name).toMatchObject({ kind: 'vpn', detected: 'openvpn', confidence: 0.95 });
      expect(judge(bytes.subarray(0, 16)), name).toMatchObject({ kind: 'vpn', confidence: 0.85 });
    }
    expect(judge(OPENVPN.subarray(0, 2))).toBe('more');
  });

  it('recognises a shadowsocks first flight as an encrypted stream', () => {
    expect(judge(SHADOWSOCKS)).toMatchObject({ kind: 'encrypted-stream', confidence: 0.7 });
    expect(judge(SHADOWSOCKS.subarray(0, 40))).toBe('more');
  });

  it('finds random first flights of any length from 64 bytes (fast-check: ≥ 99%)', () => {
    let hits = 0;
    fc.assert(fc.property(fc.integer({ min: 64, max: 600 }), (n) => {
      const v = judge(cryptoRandom(n));
      if (v !== null && v !== 'more' && v.kind === 'encrypted-stream') hits++;
    }), { numRuns: 1000 });
    expect(hits).toBeGreaterThanOrEqual(990);
  });

  it('leaves real protocols alone', () => {
    for (const [name, bytes] of Object.entries(BENIGN)) {
      const v = judge(bytes);
      expect(v === null || v === 'more', `${name}: ${JSON.stringify(v)}`).toBe(true);
    }
  });

  it('is reported once per connection through the inspector, for unrecognised streams only', () => {
    const detection = createTunnelDetection({ ports: {} });
    const vpn = detection.forConnection(facts('10.0.0.1', '10.0.0.9', 1194), undefined);
    expect(vpn.onProtocol('tcp', OPENVPN.subarray(0, 24), 'client')).toBeNull();
    expect(vpn.onPayload('client', OPENVPN.subarray(24))).toMatchObject({ kind: 'vpn' });
    expect(vpn.onPayload('client', OPENVPN)).toBeNull();
    // The same bytes on a recognised protocol's stream are that parser's business.
    const redis = detection.forConnection(facts('10.0.0.1', '10.0.0.9', 6379), undefined);
    redis.onProtocol('redis', Buffer.from('*1\r\n'), 'client');
    expect(redis.onPayload('client', SHADOWSOCKS)).toBeNull();
  });
});
