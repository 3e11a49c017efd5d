// SSH (or another interactive tunnel) inside TLS, seen without decrypting: `openssl s_client` as
// an ssh ProxyCommand, stunnel, socat OPENSSL: to an sshd behind a TLS terminator. Two kinds of
// evidence, both from what the wire shows:
//
// 1. The ClientHello's fingerprint, JA4-style (FoxIO's JA4 a_b_c: protocol and version, SNI or
//    not, cipher and extension counts, ALPN's first and last characters; sorted cipher list and
//    sorted extension list hashed — without the signature algorithms, which the parser does not
//    keep). Tunnelling clients (s_client, stunnel, OpenVPN's TLS, socat) offer no ALPN by
//    default; every HTTP client offers one (`h2`, `http/1.1`). Evidence, never a verdict alone.
// 2. The shape of the first application records (RFC 8446 §5.1 headers stay in the clear: type
//    and length). An SSH session opens with both sides sending a short identification line
//    (RFC 4253 §4.2, at most 255 bytes) and then each a KEXINIT of several hundred bytes to a
//    couple of KiB (§7.1; OpenSSH's is 1–1.6 KiB), before anything else. HTTP/1 and HTTP/2
//    clients speak first with a request or a preface; TLS 1.3 session tickets and the handshake's
//    own encrypted records are told apart by position (before the client's Finished) and size.
//
// Record lengths are ciphertext: the plaintext is 17 bytes less in TLS 1.3 (content type and the
// AEAD tag) and 24 less with TLS 1.2 AES-GCM (explicit nonce and tag), 16 with ChaCha20. The
// shape test does not lean on that arithmetic: an SSH binary packet is a multiple of 8 bytes
// before NEWKEYS (§6) and 4 more than a multiple of 8 after it with every common cipher
// (chacha20-poly1305, AES-GCM, EtM MACs: a 4-byte length, a padded body, a 16/32-byte tag), and
// a tunnel relays a few packets per read, so once the identification lines are out every record
// of a side has the same size modulo 4 — whatever the TLS overhead, as long as it is constant.
// Measured on OpenSSH 9.2 through openssl s_client → stunnel (TLS 1.2 and 1.3, sntrup761 and
// curve25519 key exchange): both sides, every record. Random HTTP/1, HTTP/2 and gRPC record
// sizes share a residue with probability 1/4 per record, so ten of them (five a side, at least
// four distinct sizes each) after a line-sized first record stand at about 1 in a million.
import { createHash } from 'node:crypto';
import type { TunnelFinding } from './types.js';

/** What the ClientHello event carries (protocols/types.ts `tls.client-hello`). */
export interface ClientHelloFacts {
  sni: string | null;
  alpn: readonly string[];
  legacyVersion: number;
  supportedVersions: readonly number[];
  cipherSuites: readonly number[];
  extensionTypes: readonly number[];
}

/** RFC 8701 GREASE values (0x?a?a) are left out of fingerprints, as JA4 does. */
function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}

const hex4 = (v: number): string => v.toString(16).padStart(4, '0');
const hash12 = (s: string): string => (s === '' ? '000000000000' : createHash('sha256').update(s).digest('hex').slice(0, 12));

/** The ClientHello's JA4-style fingerprint (without signature algorithms in part c). */
export function ja4(hello: ClientHelloFacts): string {
  const versions = hello.supportedVersions.filter((v) => !isGrease(v));
  const top = Math.max(hello.legacyVersion, ...versions);
  const version = top === 0x0304 ? '13' : top === 0x0303 ? '12' : top === 0x0302 ? '11' : top === 0x0301 ? '10' : '00';
  const sni = hello.sni !== null && !/^[0-9.]+$|:/.test(hello.sni) ? 'd' : 'i';
  const ciphers = hello.cipherSuites.filter((c) => !isGrease(c));
  const extensions = hello.extensionTypes.filter((e) => !isGrease(e));
  const first = hello.alpn[0] ?? '';
  const alpn = first === '' ? '00' : `${first[0]}${first[first.length - 1]}`;
  const a = `t${version}${sni}${String(Math.min(ciphers.length, 99)).padStart(2, '0')}${String(Math.min(extensions.length, 99)).padStart(2, '0')}${alpn}`;
  const b = hash12([...ciphers].sort((x, y) => x - y).map(hex4).join(','));
  const c = hash12([...extensions].filter((e) => e !== 0x0000 && e !== 0x0010).sort((x, y) => x - y).map(hex4).join(','));
  return `${a}_${b}_${c}`;
}

/**
 * Application records per side the shape test needs: the client's identification line and
 * five after it; the server's first (its line, or line and KEXINIT in one record) and five more.
 */
export const SHAPE_RECORDS = 6;
/** Past this many records of either side without a decision the watcher gives up (a download). */
const GIVE_UP_RECORDS = 24;
/** RFC 4253 §4.2: the identification line is at most 255 bytes with CR LF. */
const BANNER_MAX = 255;
/** A KEXINIT (ten name-lists) is never this small in practice; HTTP/2 SETTINGS and tickets are. */
const KEXINIT_MIN = 400;
/**
 * TLS 1.3 session tickets (OpenSSL: 249–265 bytes, Go, Java, rustls: a few hundred) open the
 * server's side; identification lines are 20–60 bytes in practice (OpenSSH, Dropbear, libssh).
 */
const TICKET_MIN = 128;
const TICKET_MAX = 600;

interface SideShape {
  /** Record header bytes gathered across chunks. */
  header: Buffer;
  headerFill: number;
  /** Bytes of the current record body still to skip. */
  skip: number;
  /** Plaintext sizes of the application records seen, in order. */
  sizes: number[];
}

const sideShape = (): SideShape => ({ header: Buffer.alloc(5), headerFill: 0, skip: 0, sizes: [] });

export class TlsShapeWatcher {
  private readonly client = sideShape();
  private readonly server = sideShape();
  private tls13 = true;
  private overhead = 17;
  /** TLS 1.3: the client's first encrypted record is its Finished; until then the server's are handshake. */
  private clientFinished = false;
  private settled = false;
  readonly fingerprint: string;

  constructor(private readonly hello: ClientHelloFacts) {
    this.fingerprint = ja4(hello);
  }

  /** True once the watcher has decided or given up: the caller may stop feeding it. */
  get done(): boolean {
    return this.settled;
  }

  /** The ServerHello's negotiated version and cipher suite (they set the record overhead). */
  onServerHello(version: number, cipherSuite: number): void {
    this.tls13 = version === 0x0304;
    // TLS 1.2: AES-GCM suites carry an 8-byte explicit nonce; ChaCha20-Poly1305 (0xcca8-0xccae) does not.
    this.overhead = this.tls13 ? 17 : cipherSuite >= 0xcca8 && cipherSuite <= 0xccae ? 16 : 24;
    if (!this.tls13) this.clientFinished = true;
  }

  /** Bytes of one side after the hellos, in arrival order; returns a finding once. */
  feed(side: 'client' | 'server', chunk: Buffer): TunnelFinding | null {
    if (this.settled) return null;
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length && !this.settled) {
      if (st.skip > 0) {
        const n = Math.min(st.skip, chunk.length - pos);
        st.skip -= n;
        pos += n;
        continue;
      }
      const n = Math.min(5 - st.headerFill, chunk.length - pos);
      chunk.copy(st.header, st.headerFill, pos, pos + n);
      st.headerFill += n;
      pos += n;
      if (st.headerFill < 5) break;
      st.headerFill = 0;
      const type = st.header[0]!;
      const length = st.header.readUInt16BE(3);
      st.skip = length;
      if (type !== 23) continue; // handshake, change_cipher_spec, alerts
      const finding = this.onRecord(side, length - this.overhead);
      if (finding !== null) return finding;
    }
    return null;
  }

  private onRecord(side: 'client' | 'server', plaintext: number): TunnelFinding | null {
    if (side === 'client') {
      if (!this.clientFinished) {
        this.clientFinished = true; // TLS 1.3 client Finished
        return null;
      }
      this.client.sizes.push(plaintext);
    } else {
      if (!this.clientFinished) return null; // EncryptedExtensions, Certificate, CertificateVerify, Finished
      // Session tickets (TLS 1.3 NewSessionTicket, usually two) come first, a few hundred bytes
      // each, often after the client's first data: longer than a banner, shorter than a KEXINIT.
      if (this.tls13 && this.server.sizes.length === 0 && plaintext >= TICKET_MIN && plaintext <= TICKET_MAX) return null;
      this.server.sizes.push(plaintext);
    }
    const c = this.client.sizes;
    const s = this.server.sizes;
    if (c.length > SHAPE_RECORDS && s.length > SHAPE_RECORDS) {
      this.settled = true;
      return this.judge(c.slice(0, SHAPE_RECORDS + 1), s.slice(0, SHAPE_RECORDS + 1));
    }
    if (c.length >= GIVE_UP_RECORDS || s.length >= GIVE_UP_RECORDS) this.settled = true;
    return null;
  }

  private judge(c: readonly number[], s: readonly number[]): TunnelFinding | null {
    // The client's identification line alone, then a record carrying its KEXINIT.
    if (c[0]! < 8 || c[0]! > BANNER_MAX || c[1]! < KEXINIT_MIN) return null;
    // The server's first record is its line (or line and KEXINIT together); the rest is packets.
    if (!aligned(c.slice(1)) || !aligned(s.slice(1))) return null;
    const noAlpn = this.hello.alpn.length === 0;
    return {
      kind: 'ssh',
      evidence: `inside TLS: the client opens with a ${c[0]}-byte line, then a ${c[1]}-byte key-exchange-sized record, and every record after the first on both sides has the same size modulo 4 (client ${c.join(',')}; server ${s.join(',')}), the shape of SSH binary packets (RFC 4253 §4.2, §6); ClientHello ${this.fingerprint}${noAlpn ? ', no ALPN' : `, ALPN ${this.hello.alpn.join(',')}`}${this.hello.sni !== null ? `, SNI ${this.hello.sni}` : ''}`,
      confidence: noAlpn ? 0.9 : 0.8,
      expected: 'tls',
      detected: 'ssh-in-tls',
    };
  }
}

/** Every size has the same residue modulo 4, and they are not a repetition of a few sizes. */
function aligned(sizes: readonly number[]): boolean {
  const r = sizes[0]! & 3;
  return sizes.every((x) => (x & 3) === r) && new Set(sizes).size >= 4;
}
