// Who may read the admin port's private endpoints: the client socket's owner from the kernel's
// socket table (matched on the whole 4-tuple), or a bearer token compared in constant time.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdminAccess, clientSocketUid, procNetAddress } from '../../../src/admin/access.js';

describe('procNetAddress', () => {
  it('writes addresses the way /proc/net/tcp{,6} prints them', () => {
    expect(procNetAddress('127.0.0.1')).toBe('0100007F');
    expect(procNetAddress('10.77.105.1')).toBe('01694D0A');
    expect(procNetAddress('::1')).toBe('00000000000000000000000001000000');
    expect(procNetAddress('fd77:105::1')).toBe('050177FD000000000000000001000000');
    expect(procNetAddress('::ffff:10.0.0.1')).toBe('0000000000000000FFFF00000100000A');
    expect(procNetAddress('not an ip')).toBeUndefined();
  });
});

describe('clientSocketUid', () => {
  it("finds this process's own client socket (our uid) on loopback, IPv4 and IPv6", async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const server = createServer();
      const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      const client = connect((server.address() as AddressInfo).port, host);
      const s = await accepted;
      const uid = await clientSocketUid({ remoteAddress: s.remoteAddress!, remotePort: s.remotePort!, localAddress: s.localAddress!, localPort: s.localPort! });
      expect(uid).toBe(process.getuid!());
      // The server's own end is not the client: swapping the ends finds nothing.
      expect(await clientSocketUid({ remoteAddress: s.localAddress!, remotePort: s.localPort!, localAddress: s.remoteAddress!, localPort: s.remotePort! + 1 })).toBeUndefined();
      client.destroy();
      server.close();
    }
  });

  it('reads the uid column of a matching line only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-procnet-'));
    writeFileSync(join(dir, 'tcp'), [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:3A98 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1337        0 1 1 0',
      '   1: 0100007F:D431 0100007F:3A98 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0',
    ].join('\n'));
    // Client 127.0.0.1:54321 → admin 127.0.0.1:15000: the client's line is the second one.
    expect(await clientSocketUid({ remoteAddress: '127.0.0.1', remotePort: 54321, localAddress: '127.0.0.1', localPort: 15000 }, dir)).toBe(1000);
    expect(await clientSocketUid({ remoteAddress: '127.0.0.1', remotePort: 54322, localAddress: '127.0.0.1', localPort: 15000 }, dir)).toBeUndefined();
  });
});

describe('AdminAccess', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-token-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'good-token\n');
  const peer = { remoteAddress: '10.0.0.9', remotePort: 40000, localAddress: '10.0.0.1', localPort: 15000 };

  it('lets a bearer token in from anywhere, and nothing else from another pod', async () => {
    const access = new AdminAccess({ ownUid: 1337, tokenFile, isLocal: () => false });
    expect(await access.authorize(peer, 'Bearer good-token')).toBe('token');
    expect(await access.authorize(peer, 'bearer good-token')).toBe('token');
    expect(await access.authorize(peer, 'Bearer good-tokenX')).toBe('denied');
    expect(await access.authorize(peer, 'Basic good-token')).toBe('denied');
    expect(await access.authorize(peer, undefined)).toBe('denied');
  });

  it('accepts no token when none is configured or the file is gone or empty (fail closed)', async () => {
    expect(await new AdminAccess({ ownUid: 1337, isLocal: () => false }).authorize(peer, 'Bearer good-token')).toBe('denied');
    expect(await new AdminAccess({ ownUid: 1337, tokenFile: join(dir, 'missing'), isLocal: () => false }).authorize(peer, 'Bearer x')).toBe('denied');
    writeFileSync(join(dir, 'empty'), '\n');
    expect(await new AdminAccess({ ownUid: 1337, tokenFile: join(dir, 'empty'), isLocal: () => false }).authorize(peer, 'Bearer ')).toBe('denied');
  });
});
