// `onread` for sockets a server accepted. `net.connect({ onread })` makes a socket read into a
// buffer the caller supplies (and may reuse) instead of a fresh allocation per read; Node offers
// no way to ask the same of a socket its server creates. This sets on an accepted socket the
// three fields the `onread` option sets (found once, by value, on a socket built with `onread`)
// and hands the handle its first buffer, exactly as Node does for a connecting socket. When this
// Node has no such fields the socket is left alone and keeps its 'data' events.
import { Socket } from 'node:net';

export type ReadCallback = (this: Socket, length: number, buffer: Uint8Array) => boolean;
export type BufferSource = () => Uint8Array;

interface OnreadFields {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

function findFields(): OnreadFields | null {
  const generator = (): Uint8Array => Buffer.alloc(0);
  const callback = (): boolean => true;
  // The typings list `onread` for connect() only; Socket's constructor reads the same option.
  const probe = new Socket({ onread: { buffer: generator, callback } } as ConstructorParameters<typeof Socket>[0]);
  const record = probe as unknown as Record<symbol, unknown>;
  let fields: Partial<OnreadFields> = {};
  for (const key of Object.getOwnPropertySymbols(probe)) {
    if (record[key] === generator) fields.generator = key;
    else if (record[key] === callback) fields.callback = key;
    else if (record[key] === true && key.description === 'kBuffer') fields.buffer = key;
  }
  probe.destroy();
  if (fields.buffer === undefined || fields.callback === undefined || fields.generator === undefined) fields = {};
  return fields.buffer === undefined ? null : (fields as OnreadFields);
}

const FIELDS = findFields();

interface UserBufferHandle {
  reading?: boolean;
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Makes an accepted socket that has not started reading (server `pauseOnConnect`) read into the
 * buffers `source` gives (called now, and after each `callback`, as with `onread`). Returns
 * false, changing nothing, when this Node does not allow it.
 */
export function useReadBuffers(socket: Socket, callback: ReadCallback, source: BufferSource): boolean {
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  if (FIELDS === null || handle === null || typeof handle.useUserBuffer !== 'function' || handle.reading === true) return false;
  const first = source();
  const record = socket as unknown as Record<symbol, unknown>;
  record[FIELDS.buffer] = first;
  record[FIELDS.callback] = callback;
  record[FIELDS.generator] = source;
  handle.useUserBuffer(first);
  return true;
}
