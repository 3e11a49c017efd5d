// The kernel's NFQUEUE as seen from Node: packets the non-TCP guard must decide, and their verdicts.
// A ~300-line N-API addon (native/nfqueue.c, on libnetfilter_queue, built by `npm ci`) reads the
// queue's netlink socket from a uv_poll on this event loop and hands packets over in batches.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeAddonError } from './original-dst.js';

interface NfqueueAddon {
  open(queue: number, maxLen: number, copyRange: number, onBatch: (batch: Buffer) => void): unknown;
  verdict(handle: unknown, id: number, accept: boolean, mark: number): boolean;
  close(handle: unknown): void;
  stats(handle: unknown): { lost: number; truncated: number };
  flushMarked(family: 4 | 6, mark: number, mask: number): number;
}

function loadAddon(): NfqueueAddon {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'nfqueue.node');
    if (existsSync(candidate)) return createRequire(import.meta.url)(candidate) as NfqueueAddon;
    dir = dirname(dir);
  }
  throw new NativeAddonError('build/Release/nfqueue.node is missing: run `npm ci` to build the native addons (needs g++, make and libnetfilter-queue-dev)');
}

let addon: NfqueueAddon | undefined;
function native(): NfqueueAddon {
  return (addon ??= loadAddon());
}

/** netfilter hook numbers (linux/netfilter.h) a queued packet came from. */
export const HOOK_LOCAL_IN = 1;
export const HOOK_LOCAL_OUT = 3;

export interface QueuedPacket {
  id: number;
  /** The packet's mark (skb->mark) when queued. */
  mark: number;
  /** Owner uid of the sending socket (outbound), or -1. */
  uid: number;
  hook: number;
  /** From the IP header on, at most the copy range; a view into the batch, valid during the callback only. */
  data: Buffer;
}

export interface PacketQueueOptions {
  queue: number;
  /** Packets the kernel keeps waiting for a verdict; beyond that it drops them. */
  maxLen: number;
  /** Bytes of each packet copied to us: enough for the IP header, extension headers and the L4 ports. */
  copyRange: number;
}

const REC_HEADER = 16;

export class PacketQueue {
  private handle: unknown;

  /** Binds the queue (throws with the errno's message, e.g. EPERM without CAP_NET_ADMIN). */
  constructor(options: PacketQueueOptions, onPacket: (packet: QueuedPacket) => void) {
    this.handle = native().open(options.queue, options.maxLen, options.copyRange, (batch) => {
      // Layout per packet (native byte order, written by nfqueue.c): id u32, mark u32, uid u32, hook u8, pad, len u16, bytes.
      for (let at = 0; at + REC_HEADER <= batch.length; ) {
        const len = batch.readUInt16LE(at + 14);
        const uid = batch.readUInt32LE(at + 8);
        onPacket({ id: batch.readUInt32LE(at), mark: batch.readUInt32LE(at + 4), uid: uid === 0xffffffff ? -1 : uid, hook: batch[at + 12]!, data: batch.subarray(at + REC_HEADER, at + REC_HEADER + len) });
        at += REC_HEADER + len;
      }
    });
  }

  accept(id: number, mark: number): boolean {
    return this.handle !== undefined && native().verdict(this.handle, id, true, mark >>> 0);
  }

  drop(id: number): boolean {
    return this.handle !== undefined && native().verdict(this.handle, id, false, 0);
  }

  stats(): { lost: number; truncated: number } {
    return this.handle === undefined ? { lost: 0, truncated: 0 } : native().stats(this.handle);
  }

  close(): void {
    if (this.handle !== undefined) native().close(this.handle);
    this.handle = undefined;
  }
}

/** Deletes the conntrack entries whose mark has the bits of `mask` equal to `mark`; 0 or an errno. */
export function flushConntrackMarked(family: 4 | 6, mark: number, mask: number): number {
  return native().flushMarked(family, mark >>> 0, mask >>> 0);
}
