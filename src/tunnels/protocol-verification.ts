// Protocol verification: does a connection speak the protocol its port is declared (`ports:`)
// or was learned to carry? And SSH wherever SSH was not declared.
//
// Learned ports: for ports nobody declared, the sidecar remembers which protocol family each
// destination port carried; after LEARN_AFTER connections that all agreed, a connection speaking
// another family is a mismatch (lower confidence than a declared port: the port may simply
// serve two things).
import type { TunnelFinding } from './types.js';
import { BoundedMap } from './bounded-map.js';
import { acceptedOn, familyOf } from '../protocols/registry.js';

const family = familyOf;

/**
 * Declared protocols we cannot recognise (kafka, mongodb, amqp, mqtt) are expected to look like
 * unknown TCP; TLS-wrapped variants of plaintext protocols (rediss, smtps, mongodb+tls) are
 * tolerated at lower confidence (see tlsWrappedConfidence). What detection may report on a port
 * declared for a registered protocol, the protocol says (`verify`, protocols/registry.ts).
 */
const UNDETECTED: Readonly<Record<string, readonly string[]>> = { kafka: ['tcp'], mongodb: ['tcp'], amqp: ['tcp'], mqtt: ['tcp'] };

/** Connections per learned port before its protocol counts as known. */
export const LEARN_AFTER = 20;

function excerpt(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, 24).toString('latin1'));
}

export function checkDeclared(declared: string | undefined, detected: string, firstBytes: Buffer, from: 'client' | 'server'): TunnelFinding | null {
  // A connection that closed (or stalled) before saying anything is a probe, not a tunnel.
  if (detected === 'tcp' && firstBytes.length === 0) return null;
  const said = `${from} sent ${excerpt(firstBytes)}`;
  if (detected === 'ssh' && declared !== 'ssh') {
    return {
      kind: 'ssh',
      evidence: `${said}: an SSH identification string on a port ${declared === undefined ? 'not declared for ssh' : `declared ${declared}`}`,
      confidence: 0.99,
      detected: 'ssh',
      ...(declared !== undefined ? { expected: declared } : {}),
    };
  }
  if (declared === undefined || declared === 'tcp') return null;
  const accepted = acceptedOn(declared) ?? UNDETECTED[declared];
  if (accepted === undefined || accepted.includes(detected)) return null;
  let confidence: number;
  let what: string;
  if (detected === 'tcp') {
    what = 'bytes of no known protocol';
    confidence = 0.8;
  } else if (detected === 'tls') {
    what = 'a TLS ClientHello';
    confidence = declared === 'http' || declared === 'http2' || declared === 'grpc' || declared === 'dns' ? 0.9 : 0.6;
  } else {
    what = detected === 'http' ? 'an HTTP request' : detected;
    confidence = 0.95;
  }
  return { kind: 'protocol-mismatch', evidence: `port declared ${declared}, ${said}: ${what}`, confidence, expected: declared, detected };
}

interface PortHistory {
  family: string;
  /** Connections that agreed with `family`. */
  agreeing: number;
  /** Disagreeing connections in a row: after LEARN_AFTER of them the port has changed its protocol. */
  contrary: number;
}

/** What each undeclared destination port carried (per sidecar, bounded). */
export class LearnedPorts {
  private readonly ports: BoundedMap<string, PortHistory>;

  constructor(capacity = 4096) {
    this.ports = new BoundedMap(capacity);
  }

  /**
   * Checks a connection against its port's learned family, then learns from it. Connections
   * already flagged for something else (SSH) are not learned from.
   */
  check(port: string, detected: string, firstBytes: Buffer, from: 'client' | 'server', learn: boolean): TunnelFinding | null {
    if (detected === 'tcp' && firstBytes.length === 0) return null;
    const seen = family(detected);
    const history = this.ports.get(port);
    let finding: TunnelFinding | null = null;
    if (history !== undefined && history.agreeing >= LEARN_AFTER && history.family !== seen) {
      finding = {
        kind: 'protocol-mismatch',
        evidence: `port ${port} carried ${history.family} on its last ${history.agreeing} connections; ${from} sent ${excerpt(firstBytes)} (${detected})`,
        confidence: 0.6,
        expected: history.family,
        detected,
      };
    }
    if (!learn) return finding;
    if (history === undefined) this.ports.set(port, { family: seen, agreeing: 1, contrary: 0 });
    else if (history.family === seen) {
      history.agreeing++;
      history.contrary = 0;
    } else if (history.agreeing < LEARN_AFTER || ++history.contrary >= LEARN_AFTER) {
      // Still learning, or the port now steadily carries something else: learn that instead.
      this.ports.set(port, { family: seen, agreeing: history.contrary || 1, contrary: 0 });
    }
    return finding;
  }
}
