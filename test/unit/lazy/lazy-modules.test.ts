// Modules the default config never uses load on their first use (issue 18 memory), and a module
// that cannot be loaded makes the decision that needed it fail, never pass.
import { connect as connectHttp2 } from 'node:http2';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdminServer, http2Module } from '../../../src/admin/server.js';
import { compileCustomSensor, customPatternError, re2js } from '../../../src/content/dlp/custom.js';
import { ContentDecoder, fflate } from '../../../src/content/dlp/decoders.js';
import { LazyModule, LazyModuleError } from '../../../src/lazy/lazy-module.js';
import { splitName, tldts } from '../../../src/tunnels/dns-tunnel-monitor.js';

const broken = (m: LazyModule<unknown>): void => {
  vi.spyOn(m, 'get').mockImplementation(() => {
    throw new LazyModuleError(m.specifier, m.neededFor, new Error('Cannot find module'));
  });
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('LazyModule', () => {
  it('loads on the first get() only, then hands back the same module', () => {
    const load = vi.fn(() => ({ answer: 42 }));
    const m = new LazyModule<{ answer: number }>('answer', 'a test', load);
    expect(load).not.toHaveBeenCalled();
    expect(m.loaded).toBe(false);
    expect(m.get().answer).toBe(42);
    expect(m.get()).toBe(m.get());
    expect(load).toHaveBeenCalledTimes(1);
    expect(m.loaded).toBe(true);
  });

  it('throws a LazyModuleError naming the module and its use, on every call', () => {
    const m = new LazyModule<unknown>('no-such-package-sidewall', 'a test feature');
    for (let i = 0; i < 2; i++) expect(() => m.get()).toThrowError(/^cannot load no-such-package-sidewall \(needed for a test feature\): /);
    expect(m.loaded).toBe(false);
  });
});

describe('tldts (DNS tunnel monitor)', () => {
  it('splits a name by the Public Suffix List on first use; cluster names never load it', () => {
    expect(splitName('x.y.ns1.svc.cluster.local')).toEqual({ parent: 'ns1.svc.cluster.local', data: ['x', 'y'] });
    expect(splitName('abc.bucket.s3.us-east-1.amazonaws.com')).toEqual({ parent: 'bucket.s3.us-east-1.amazonaws.com', data: ['abc'] });
    expect(tldts.loaded).toBe(true);
    expect(splitName('aGVsbG8.t.example.co.uk')).toEqual({ parent: 'example.co.uk', data: ['aGVsbG8', 't'] });
  });

  it('an unloadable suffix list makes the name fail, not split some other way', () => {
    broken(tldts);
    expect(() => splitName('aGVsbG8.t.example.co.uk')).toThrow(LazyModuleError);
  });
});

describe('re2js (DLP custom patterns)', () => {
  it('compiles and finds with a pattern on first use', () => {
    const sensor = compileCustomSensor({ name: 'ticket', pattern: 'TKT-[0-9]{6}' });
    expect(re2js.loaded).toBe(true);
    expect([...sensor.find('order TKT-123456 shipped', 0)].map((m) => m.index)).toEqual([6]);
    expect(customPatternError('a(')).toMatch(/missing/);
  });

  it('an unloadable engine refuses the pattern (the config is rejected) and compiles no sensor', () => {
    broken(re2js);
    expect(customPatternError('TKT-[0-9]{6}')).toMatch(/cannot load re2js \(needed for DLP custom patterns/);
    expect(() => compileCustomSensor({ name: 'ticket', pattern: 'TKT-[0-9]{6}' })).toThrow(LazyModuleError);
  });
});

describe('fflate (DLP of compressed bodies)', () => {
  it('inflates a gzip body on first use', () => {
    const d = new ContentDecoder('gzip', { maxOutput: 1 << 20, maxRatio: 100 });
    expect(fflate.loaded).toBe(true);
    expect(Buffer.concat(d.push(gzipSync('card 4539 1488 0343 6467'), true)).toString()).toBe('card 4539 1488 0343 6467');
  });

  it('an unloadable inflater makes the decoder throw (the filter resets the connection), not pass the bytes unscanned', () => {
    broken(fflate);
    expect(() => new ContentDecoder('gzip', { maxOutput: 1 << 20, maxRatio: 100 })).toThrow(LazyModuleError);
    const deflate = new ContentDecoder('deflate', { maxOutput: 1 << 20, maxRatio: 100 });
    expect(() => deflate.push(Buffer.from([0x78, 0x9c, 0x03, 0x00]), true)).toThrow(LazyModuleError);
  });
});

describe('node:http2 (admin port)', () => {
  const start = async (): Promise<{ admin: AdminServer; port: number }> => {
    const admin = new AdminServer({ readiness: () => ({ ready: true, detail: {} }), grpc: (stream) => stream.respond({ ':status': 200, 'grpc-status': '0' }, { endStream: true }) });
    for (let port = 20000 + Math.floor(Math.random() * 20000); ; port++) {
      try {
        await admin.listen(port, ['127.0.0.1']);
        return { admin, port };
      } catch {
        // taken: the next one
      }
    }
  };
  const h2Status = (port: number): Promise<number | string> =>
    new Promise((resolve) => {
      const session = connectHttp2(`http://127.0.0.1:${port}`);
      session.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      session.on('close', () => resolve('closed'));
      const req = session.request({ ':method': 'POST', ':path': '/sidewall.Observe/Flows', 'content-type': 'application/grpc' });
      req.on('response', (headers) => resolve(Number(headers[':status'])));
      req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      req.on('close', () => session.close());
      req.end();
    });

  it('serves HTTP/2 from the first such connection', async () => {
    const { admin, port } = await start();
    try {
      expect(await h2Status(port)).toBe(200);
      expect(http2Module.loaded).toBe(true);
    } finally {
      await admin.close();
    }
  });

  it('closes an HTTP/2 connection when node:http2 cannot be loaded (HTTP/1 still answers)', async () => {
    broken(http2Module);
    const { admin, port } = await start();
    try {
      expect(await h2Status(port)).toMatch(/^(error |closed)/);
      const res = await fetch(`http://127.0.0.1:${port}/live`);
      expect(res.status).toBe(200);
    } finally {
      await admin.close();
    }
  });
});
