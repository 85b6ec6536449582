/**
 * CONNECT to a host that is not ours: a blind byte pipe. The client does its
 * own TLS with the real server and sees the real certificate; nothing is
 * decrypted. A 502 can only be written before the tunnel is up.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { rawHttpError } from './http-error.js';
import type { Logger } from '../log.js';
import { formatHostPort } from '../net/connect-target.js';

/** Connecting may take this long before the client gets a 504. */
export const TUNNEL_CONNECT_TIMEOUT_MS = 30_000;

export function openTunnel(client: Duplex, head: Buffer, host: string, port: number, log: Logger, connectTimeoutMs = TUNNEL_CONNECT_TIMEOUT_MS): void {
  const target = formatHostPort(host, port);
  const upstream = net.connect({ host, port });
  let established = false;

  upstream.setTimeout(connectTimeoutMs, () => {
    if (established) return;
    log.info('tunnel connect timed out', { target });
    if (client.writable) client.end(rawHttpError(504, `could not connect to ${target}: timed out`));
    upstream.destroy();
  });

  upstream.once('connect', () => {
    established = true;
    upstream.setTimeout(0);
    if (!client.writable) {
      upstream.destroy();
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  });

  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!established) {
      log.info('tunnel connect failed', { target, code: err.code });
      if (client.writable) client.end(rawHttpError(502, `could not connect to ${target}: ${err.code ?? err.message}`));
    } else {
      log.debug('tunnel closed by upstream error', { target, code: err.code });
      client.destroy();
    }
  });
  upstream.on('close', () => {
    if (established) client.destroy();
  });
  client.on('error', () => upstream.destroy());
  client.on('close', () => upstream.destroy());
}
