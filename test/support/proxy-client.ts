/**
 * A real HTTPS client that goes through an HTTP proxy with CONNECT, the way
 * agent clients do: an https.Agent whose connections are CONNECT tunnels.
 * Keep-alive reuses a tunnel, so each new TLS connection costs one CONNECT.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

export class ConnectAgent extends https.Agent {
  connects = 0;

  constructor(
    private readonly proxy: { host: string; port: number },
    options: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...options });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override createConnection(options: tls.ConnectionOptions & { host?: string; port?: number }, callback?: any): Duplex {
    const cb = callback as (err: Error | null, socket?: Duplex) => void;
    const target = `${options.host}:${options.port}`;
    this.connects++;
    const req = http.request({ host: this.proxy.host, port: this.proxy.port, method: 'CONNECT', path: target, headers: { host: target } });
    req.once('connect', (res, socket: net.Socket, head: Buffer) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        cb(Object.assign(new Error(`CONNECT ${target} answered ${res.statusCode}`), { statusCode: res.statusCode }));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      const secure = tls.connect({ ...options, socket, servername: options.servername ?? options.host, ALPNProtocols: ['http/1.1'] });
      cb(null, secure);
    });
    req.once('error', (err) => cb(err));
    req.end();
    return undefined as unknown as Duplex;
  }
}

export interface ClientResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = any>(): T;
  peerCertificate?: tls.PeerCertificate | undefined;
}

export function request(
  url: string,
  options: { agent: http.Agent; method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string | string[] },
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port || (u.protocol === 'https:' ? 443 : 80),
        path: u.pathname + u.search,
        method: options.method ?? (options.body ? 'POST' : 'GET'),
        headers: { ...(options.body ? { 'content-type': 'application/json' } : {}), ...options.headers },
        agent: options.agent,
        ca: options.ca,
      },
      (res) => {
        // Read before the end: a keep-alive agent takes the socket back then.
        const socket = res.socket as tls.TLSSocket | null;
        const peerCertificate = socket && typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: body.toString('utf8'),
            json: () => JSON.parse(body.toString('utf8')),
            peerCertificate,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
