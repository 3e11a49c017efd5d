// First detectors: a port's declared protocol against what the connection speaks, SSH where it
// was not declared, and HTTP CONNECT. (Carrier, Upgrade and DNS tunnelling detectors: see the
// tunnels issue.)
import type { ConnectionFacts } from '../enforcement/types.js';
import type { DnsTunnelMonitor, TunnelDetection, TunnelFinding, TunnelInspector } from './types.js';

export interface TunnelDetectionOptions {
  /** Destination port → declared protocol (`ports:` in the config). */
  ports: Readonly<Record<number, string>>;
}

const SSH_BANNER = Buffer.from('SSH-');

function excerpt(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, 32).toString('latin1'));
}

class ConnectionInspector implements TunnelInspector {
  readonly payloadBudget = 256;

  constructor(private readonly declared: string | undefined) {}

  onProtocol(detected: string, firstBytes: Buffer, from: 'client' | 'server'): TunnelFinding | null {
    if (detected === 'ssh' && this.declared !== 'ssh') {
      return { kind: 'ssh', evidence: `${from} sent an SSH identification string ${excerpt(firstBytes)}`, confidence: 0.99, detected: 'ssh', ...(this.declared ? { expected: this.declared } : {}) };
    }
    if (this.declared !== undefined && this.declared !== detected && !(this.declared === 'http' && detected === 'http2')) {
      return { kind: 'protocol-mismatch', evidence: `port declared ${this.declared}, first bytes ${excerpt(firstBytes)} are ${detected}`, confidence: detected === 'tcp' ? 0.7 : 0.95, expected: this.declared, detected };
    }
    return null;
  }

  onHttpRequest(request: { method: string; path: string }): TunnelFinding | null {
    if (request.method === 'CONNECT') return { kind: 'http-connect', evidence: `CONNECT ${request.path}`, confidence: 0.9, detected: 'http-connect' };
    return null;
  }

  onHttpResponse(): TunnelFinding | null {
    return null;
  }

  onPayload(side: 'client' | 'server', bytes: Buffer): TunnelFinding | null {
    const at = bytes.indexOf(SSH_BANNER);
    if (at >= 0 && /^SSH-[12]\.\d+-/.test(bytes.toString('latin1', at, at + 12))) {
      return { kind: 'ssh', evidence: `${side} payload carries an SSH identification string ${excerpt(bytes.subarray(at))}`, confidence: 0.97, detected: 'ssh' };
    }
    return null;
  }
}

const quietDns: DnsTunnelMonitor = { onQuery: () => null, onResponse: () => null };

export function createTunnelDetection(_options: TunnelDetectionOptions): TunnelDetection {
  return {
    forConnection: (_facts: ConnectionFacts, declared: string | undefined) => new ConnectionInspector(declared),
    dns: quietDns,
  };
}
