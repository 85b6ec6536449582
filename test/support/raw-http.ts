/**
 * HTTP/1.x on raw sockets, for requests Node's own client refuses to send (a `Trailer` on a
 * body that is not chunked, pipelining, HTTP/1.0) and for answers read exactly as framed on
 * the wire. Loopback only; every wait is bounded.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

export interface RawResponse {
  version: string;
  status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** The body after the framing is removed. */
  body: Buffer;
  framing: 'content-length' | 'chunked' | 'close' | 'none';
}

/** The complete responses at the start of `data` (a close-delimited body counts once `closed`). */
export function parseResponses(data: Buffer, closed: boolean, headRequests = 0): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  for (let guard = 0; guard < 64 && at < data.length; guard++) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^(HTTP\/\d\.\d) (\d{3})/.exec(lines[0] ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const status = Number(m[2]);
    let bodyStart = end + 4;
    const response = { version: m[1] as string, status, headers };
    if (status < 200 || status === 204 || status === 304 || out.length < headRequests) {
      out.push({ ...response, body: Buffer.alloc(0), framing: 'none' });
      at = bodyStart;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      let done = false;
      for (let chunks = 0; chunks < 100_000; chunks++) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd === -1) break;
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n\r\n', lineEnd);
          const blank = data.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n';
          if (!blank && trailerEnd === -1) break;
          bodyStart = blank ? lineEnd + 4 : trailerEnd + 4;
          done = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      if (!done) break;
      out.push({ ...response, body: Buffer.concat(parts), framing: 'chunked' });
      at = bodyStart;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (data.length < bodyStart + length) break;
      out.push({ ...response, body: data.subarray(bodyStart, bodyStart + length), framing: 'content-length' });
      at = bodyStart + length;
    } else {
      if (!closed) break;
      out.push({ ...response, body: data.subarray(bodyStart), framing: 'close' });
      at = data.length;
    }
  }
  return out;
}

export interface RawResult {
  responses: RawResponse[];
  /** The peer closed the connection (or it broke) within the wait. */
  closed: boolean;
  /** Every byte received. */
  data: Buffer;
}

/**
 * Writes `bytes` on `socket` and reads until `count` responses are complete, the socket
 * closes, or `ms` pass; then destroys the socket.
 */
export function exchange(socket: Duplex, bytes: string | Buffer | Array<string | Buffer>, options: { count?: number; ms?: number; head?: number } = {}): Promise<RawResult> {
  const count = options.count ?? 1;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      socket.destroy();
      resolve({ responses: parseResponses(data, closed, options.head), closed, data });
    };
    const timer = setTimeout(finish, options.ms ?? 5000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (parseResponses(Buffer.concat(chunks), false, options.head).length >= count) finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    for (const part of Array.isArray(bytes) ? bytes : [bytes]) socket.write(part);
  });
}

/** A plain TCP connection to 127.0.0.1:port, connected. */
export function connect(port: number, ms = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection to port ${port} in ${ms} ms`));
    }, ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** CONNECT target through the proxy; resolves with the socket once the 200 arrived (rejects on anything else). */
export function connectThrough(proxyPort: number, target: string, ms = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    let head = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to CONNECT ${target} in ${ms} ms`));
    }, ms);
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (!/^HTTP\/1\.1 200 /.test(head)) {
        socket.destroy();
        reject(new Error(`CONNECT ${target} answered ${head.split('\r\n')[0]}`));
        return;
      }
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}

/** CONNECT then TLS with `servername`, trusting `ca`; resolves once the handshake is done. */
export async function tlsThrough(proxyPort: number, host: string, ca: string, alpn: string[] = ['http/1.1'], ms = 5000): Promise<tls.TLSSocket> {
  const socket = await connectThrough(proxyPort, `${host}:443`, ms);
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: host, ca, ALPNProtocols: alpn });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Error(`no TLS handshake with ${host} in ${ms} ms`));
    }, ms);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(secure);
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolves when `socket` closes, with whether it did within `ms`. Reads (and drops) what arrives: an unread socket never sees the peer's close. */
export function closesWithin(socket: net.Socket | tls.TLSSocket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  socket.resume();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
