/**
 * An unrelated HTTPS site with its own CA: proves that hosts which are not
 * MiMo's are tunnelled, since a client behind the proxy must see exactly this
 * site's certificate (compare `certFingerprint256`), never one of ours.
 */
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { makeTestCa, type TestCa } from './pki.js';

export interface TestSite {
  readonly port: number;
  readonly ca: TestCa;
  /** SHA-256 fingerprint of the leaf it serves, as X509Certificate.fingerprint256 prints it. */
  readonly certFingerprint256: string;
  /** Requests answered so far. */
  requests: number;
  close(): Promise<void>;
}

export const TEST_SITE_BODY = 'hello from test-site';
export const TEST_SITE_HOSTS = ['localhost', '127.0.0.1', 'site.test'];

export async function startTestSite(): Promise<TestSite> {
  const ca = makeTestCa('test-site');
  const leaf = ca.issue(TEST_SITE_HOSTS);
  const sockets = new Set<Socket>();
  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    site.requests++;
    // Drain any body so keep-alive stays usable.
    req.resume();
    req.on('end', () => {
      const ok = req.method === 'GET' && req.url === '/';
      const body = ok ? TEST_SITE_BODY : 'not found';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  let closed = false;
  const site: TestSite = {
    port: (server.address() as AddressInfo).port,
    ca,
    certFingerprint256: new X509Certificate(leaf.certPem).fingerprint256,
    requests: 0,
    async close() {
      if (closed) return;
      closed = true;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await done;
      ca.cleanup();
    },
  };
  return site;
}
