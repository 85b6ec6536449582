/**
 * CONNECT to one of our hosts: answer 200, then terminate the client's TLS on
 * its own socket with a leaf from our CA and hand the decrypted stream to an
 * in-process HTTP server (no second listening port, no extra hop). The
 * server's requests then run through the engine's hooks.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { CertificateAuthority } from '../ca/index.js';
import type { Logger } from '../log.js';

/** A client that completed CONNECT gets this long to finish its TLS handshake; then its socket is closed. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface InterceptedEndpoint {
  /** The name the client asked for (CONNECT target): certificate name, Host, upstream TLS name. */
  host: string;
  port: number;
}

export class Interceptor {
  readonly endpoints = new WeakMap<net.Socket, InterceptedEndpoint>();

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly server: http.Server,
    private readonly log: Logger,
    private readonly handshakeTimeoutMs: number = TLS_HANDSHAKE_TIMEOUT_MS,
  ) {}

  /** A TLS context for host, from the CA (at once when it holds a fresh one; one signing per host at a time). */
  contextFor(host: string): tls.SecureContext | Promise<tls.SecureContext> {
    return this.ca.contextFor(host);
  }

  /** Take over the CONNECT socket: 200, then TLS with our leaf, then HTTP. */
  accept(client: Duplex, head: Buffer, endpoint: InterceptedEndpoint, context: tls.SecureContext): void {
    if (!client.writable) return;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) client.unshift(head);
    const secure = new tls.TLSSocket(client as net.Socket, {
      isServer: true,
      secureContext: context,
      // HTTP/1.0 too: a client that offers only it is answered in HTTP/1.0 terms (no chunking).
      ALPNProtocols: ['http/1.1', 'http/1.0'],
    });
    this.endpoints.set(secure, endpoint);
    // No ClientHello, or a handshake that stalls: without this the socket stays open (the HTTP
    // server's header timeout answers on it, which cannot close a socket mid-handshake).
    const timer = setTimeout(() => {
      this.log.debug('client TLS handshake timed out', { host: endpoint.host, ms: this.handshakeTimeoutMs });
      secure.destroy();
      client.destroy();
    }, this.handshakeTimeoutMs);
    timer.unref();
    secure.once('secure', () => clearTimeout(timer));
    secure.once('close', () => clearTimeout(timer));
    secure.on('error', (err: NodeJS.ErrnoException) => {
      this.log.debug('client TLS failed', { host: endpoint.host, code: err.code ?? err.message });
      secure.destroy();
    });
    client.on('error', () => secure.destroy());
    this.server.emit('connection', secure);
  }
}
