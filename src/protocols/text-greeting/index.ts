// SMTP, FTP, POP3, IMAP: recognised by the server's first line, decided as whole connections.
import { UNKNOWN } from '../detect-util.js';
import type { Detection, ProtocolPlugin } from '../plugin.js';
import { detectLineGreeting } from './detect.js';

/** The shared line-greeting detector, as the verdict for one of its protocols. */
function greetingOf<N extends 'smtp' | 'ftp' | 'pop3' | 'imap'>(name: N): (bytes: Buffer) => Detection<N> {
  return (bytes) => {
    const v = detectLineGreeting(bytes);
    if (v.kind !== 'match') return v;
    return v.protocol === name ? (v as Detection<N>) : UNKNOWN;
  };
}

export const smtpProtocol = { name: 'smtp', detectGreeting: greetingOf('smtp') } as const satisfies ProtocolPlugin<'smtp'>;
export const ftpProtocol = { name: 'ftp', detectGreeting: greetingOf('ftp') } as const satisfies ProtocolPlugin<'ftp'>;
export const pop3Protocol = { name: 'pop3', detectGreeting: greetingOf('pop3') } as const satisfies ProtocolPlugin<'pop3'>;
export const imapProtocol = { name: 'imap', detectGreeting: greetingOf('imap') } as const satisfies ProtocolPlugin<'imap'>;
