/**
 * Assembles a running proxy: our CA, the reasoning cache, the engine with our
 * plugin on its hooks, and the one listening socket that dispatches:
 *   CONNECT                 -> engine onConnect -> intercept (ours) | tunnel
 *   absolute-form request   -> engine pipeline (hooks only for our hosts)
 *   origin-form request     -> local pages, or direct mode via the pipeline
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { loadOrCreateCa, type CertificateAuthority } from '../ca/index.js';
import { ReasoningCache } from '../cache/cache.js';
import type { ProxyConfig } from '../config.js';
import { Engine } from './engine.js';
import { MimoProxyError } from '../errors.js';
import { formatHostPort } from '../net/connect-target.js';
import { sendJsonError } from './http-error.js';
import { Interceptor, TLS_HANDSHAKE_TIMEOUT_MS } from './intercept.js';
import { directPath, notFound, serveLocal, type StatusReport } from './local.js';
import type { Logger } from '../log.js';
import { createPlugin } from './plugin.js';
import { ReasoningService } from '../reasoning/exchange.js';
import { newCounters, type Counters } from '../stats.js';
import { openStore } from '../cache/store.js';
import { rawHttpError } from './tunnel.js';
import { VERSION } from '../version.js';

export interface RunningProxy {
  readonly host: string;
  readonly port: number;
  /** http://host:port, what HTTPS_PROXY is set to. */
  readonly url: string;
  readonly ca: CertificateAuthority;
  readonly counters: Counters;
  readonly cache: ReasoningCache;
  status(): StatusReport;
  close(): Promise<void>;
}

/** Upstream trust: Node's bundled roots, NODE_EXTRA_CA_CERTS, the OS store, and --upstream-ca. */
function upstreamRoots(extraPem: string | undefined): string[] {
  const roots = new Set<string>(tls.getCACertificates('default'));
  try {
    for (const cert of tls.getCACertificates('system')) roots.add(cert);
  } catch {
    // No readable OS store: the bundled roots still apply.
  }
  const list = [...roots];
  if (extraPem) list.push(extraPem);
  return list;
}

function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = formatHostPort(host, port);
      if (err.code === 'EADDRINUSE') {
        reject(new MimoProxyError('PORT_IN_USE', `${where} is already in use`, 'pass --port with a free port (0 picks one), or stop the process holding it (`mimo-proxy status` tells whether it is a mimo-proxy)', { cause: err }));
      } else if (err.code === 'EACCES') {
        reject(new MimoProxyError('PORT_DENIED', `not allowed to listen on ${where}`, 'pass --port 1024 or higher', { cause: err }));
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
        reject(new MimoProxyError('BAD_HOST', `cannot listen on ${where}: no such address on this machine`, 'pass --host 127.0.0.1 (the default)', { cause: err }));
      } else {
        reject(new MimoProxyError('LISTEN_FAILED', `cannot listen on ${where} (${err.code ?? err.message})`, 'check --host and --port', { cause: err }));
      }
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Proxy-Authorization: Basic, compared in constant time. */
function authChecker(auth: string | undefined): (req: http.IncomingMessage) => boolean {
  if (auth === undefined) return () => true;
  const expected = createHash('sha256').update(auth).digest();
  return (req) => {
    const header = req.headers['proxy-authorization'] ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    const given = createHash('sha256').update(m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '\0').digest();
    return timingSafeEqual(given, expected) && m !== null;
  };
}

/** Pooled upstream sockets idle this long are closed (servers commonly keep idle connections 60-75 s). */
const IDLE_SOCKET_MS = 15_000;

/** How long a client connection may take and idle, the same for direct and intercepted connections. */
export interface ConnectionLimits {
  /** After CONNECT to an intercepted host: the TLS handshake must be done within this. */
  handshakeMs: number;
  /** A request's headers must have arrived this long after the connection (or the request) began. */
  headersMs: number;
  /** A whole request, body included, must have arrived within this. */
  requestMs: number;
  /** Idle between two requests. */
  keepAliveMs: number;
  /** How often the header and request limits are checked. */
  checkEveryMs: number;
}

/** Node's defaults for the HTTP limits, made explicit; only tests pass others to startProxy. */
export const CONNECTION_LIMITS: Readonly<ConnectionLimits> = {
  handshakeMs: TLS_HANDSHAKE_TIMEOUT_MS,
  headersMs: 60_000,
  requestMs: 300_000,
  keepAliveMs: 65_000,
  checkEveryMs: 30_000,
};

/**
 * An upgrade (WebSocket and the like) would need a raw byte relay after the 101, which the
 * request pipeline cannot give: such requests get a 501. `h2c` alone is no reason to refuse:
 * a server may ignore it and answer in HTTP/1.1 (RFC 9113 3.2), which is what happens.
 */
function asksForUpgrade(req: http.IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  if (!upgrade) return false;
  const connection = String(req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  if (!connection.includes('upgrade')) return false;
  return upgrade.split(',').some((p) => p.trim() !== '' && !/^h2c$/i.test(p.trim()));
}

const UPGRADE_REFUSED =
  'mimo-proxy does not relay protocol upgrades (WebSocket and the like) to intercepted hosts, in direct mode or on plain-HTTP proxy requests; HTTPS (wss:// included) to other hosts is tunnelled untouched through CONNECT';

const PROXY_AUTH_REQUIRED = 'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="mimo-proxy"\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ';

export async function startProxy(config: ProxyConfig, log: Logger, connectionLimits: Partial<ConnectionLimits> = {}): Promise<RunningProxy> {
  const timing = { ...CONNECTION_LIMITS, ...connectionLimits };
  const started = Date.now();
  const ca = await loadOrCreateCa({ dir: config.certsDir, domains: config.domains });
  const expiry = ca.expiryWarning();
  if (expiry) log.warn(expiry);

  const limits = { maxEntries: config.cacheMax, maxBytes: config.cacheMaxBytes, ttlMs: config.cacheTtlMs };
  const store = config.persist ? openStore(config.dataDir, limits, log) : undefined;
  const cache = new ReasoningCache({ limits, store, log });
  const counters = newCounters();

  const agents = {
    // `timeout` here closes idle pooled sockets before a server drops them under a new request
    // (an ECONNRESET no client could retry); each request arms its own idle timeout.
    http: new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: IDLE_SOCKET_MS }),
    // One secure context for every upstream connection: passing `ca` instead would parse the
    // whole root list again for each new connection (milliseconds of CPU and a copy in memory).
    https: new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: IDLE_SOCKET_MS, secureContext: tls.createSecureContext({ ca: upstreamRoots(config.upstreamCaPem) }) }),
  };

  const serverOptions: http.ServerOptions = {
    keepAliveTimeout: timing.keepAliveMs,
    headersTimeout: timing.headersMs,
    requestTimeout: timing.requestMs,
    connectionsCheckingInterval: timing.checkEveryMs,
  };
  const server = http.createServer(serverOptions);
  const interceptServer = http.createServer(serverOptions);
  // Node checks headersTimeout and requestTimeout only on connections of a server that has
  // emitted 'listening'. This one never listens (intercept.ts hands it the TLS sockets), so
  // start that tracking here: otherwise an intercepted connection that sends no request stays
  // open for good. close() below stops it again.
  interceptServer.emit('listening');
  const interceptor = new Interceptor(ca, interceptServer, log, timing.handshakeMs);
  const reasoning = new ReasoningService({ config, cache, counters, log, agents });
  const plugin = createPlugin({ config, log, counters, interceptor, reasoning });
  const engine = new Engine(agents, plugin.onError);
  engine.onConnect((req, socket, head) => plugin.onConnect(req, socket, head));
  engine.onRequest(plugin.onRequest);

  const authorised = authChecker(config.auth);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  interceptServer.on('connection', track);

  const upstreamIsTls = config.upstream.protocol === 'https:';
  const upstreamPort = Number(config.upstream.port) || (upstreamIsTls ? 443 : 80);
  let listenUrl = '';

  const status = (): StatusReport => ({
    name: 'mimo-proxy',
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    listen: listenUrl,
    domains: config.domains,
    upstream: config.upstream.href,
    degrade: config.degrade,
    ca: { path: ca.caCertPath, fingerprint256: ca.fingerprint256, notAfter: ca.notAfter.toISOString(), warning: ca.expiryWarning() },
    cache: { ...cache.stats() },
    counters: { ...counters },
  });

  /** A handler's throw (Node refusing what a peer sent) ends that exchange only: a JSON 502, or a cut connection once the answer has started. */
  const guarded =
    (handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) =>
    (req: http.IncomingMessage, res: http.ServerResponse): void => {
      try {
        handler(req, res);
      } catch (err) {
        log.error('request failed in the proxy', { code: (err as NodeJS.ErrnoException).code ?? (err as Error).name });
        try {
          if (!res.headersSent) res.statusMessage = '';
          sendJsonError(res, 502, 'mimo-proxy could not relay this request');
        } catch {
          res.destroy();
        }
      }
    };

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    try {
      if (!authorised(req)) {
        const body = '{"error":{"message":"proxy authentication required","type":"mimo_proxy_error"}}';
        socket.end(`${PROXY_AUTH_REQUIRED}${body.length}\r\n\r\n${body}`);
        return;
      }
      engine.handleConnect(req, socket, head);
    } catch (err) {
      log.error('CONNECT failed in the proxy', { code: (err as NodeJS.ErrnoException).code ?? (err as Error).name });
      socket.destroy();
    }
  });

  server.on('request', guarded((req: http.IncomingMessage, res: http.ServerResponse) => {
    if (asksForUpgrade(req)) {
      sendJsonError(res, 501, UPGRADE_REFUSED);
      return;
    }
    const url = req.url ?? '/';
    if (url.startsWith('/')) {
      if (serveLocal(req, res, status, ca.caPem)) return;
      const upstreamPath = directPath(req.method, url, config.upstream);
      if (upstreamPath === undefined) {
        notFound(res, req.method, url.split('?')[0] as string);
        return;
      }
      // Direct mode relays to MiMo: with --auth it needs the credentials too (the local
      // pages above stay open: they are read-only and hold no secret).
      if (!authorised(req)) {
        res.writeHead(407, { 'proxy-authenticate': 'Basic realm="mimo-proxy"', 'content-type': 'application/json' });
        res.end('{"error":{"message":"proxy authentication required","type":"mimo_proxy_error"}}');
        return;
      }
      req.url = upstreamPath;
      req.headers.host = config.upstream.host;
      plugin.routes.set(req, { kind: 'direct', host: config.upstream.hostname.replace(/^\[|\]$/g, ''), port: upstreamPort });
      engine.handleRequest(upstreamIsTls, req, res);
      return;
    }
    if (!authorised(req)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="mimo-proxy"', 'content-type': 'application/json' });
      res.end('{"error":{"message":"proxy authentication required","type":"mimo_proxy_error"}}');
      return;
    }
    let target: URL | undefined;
    try {
      target = new URL(url);
    } catch {
      target = undefined;
    }
    if (!target || target.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"mimo-proxy forwards http:// URLs; use CONNECT (HTTPS_PROXY) for https","type":"mimo_proxy_error"}}');
      return;
    }
    // Plain http:// is forwarded unchanged, to our hosts too (the README says so): only what
    // arrives over an intercepted TLS connection or in direct mode is rewritten.
    const hostname = target.hostname.replace(/^\[|\]$/g, '');
    plugin.routes.set(req, { kind: 'passthrough', host: hostname, port: Number(target.port) || 80 });
    engine.handleRequest(false, req, res);
  }));

  interceptServer.on('request', guarded((req: http.IncomingMessage, res: http.ServerResponse) => {
    const endpoint = interceptor.endpoints.get(req.socket);
    if (!endpoint) {
      res.destroy();
      return;
    }
    if (asksForUpgrade(req)) {
      sendJsonError(res, 501, UPGRADE_REFUSED);
      return;
    }
    // HTTP/1.0 may leave Host out; the CONNECT target names the host.
    req.headers.host ??= endpoint.port === 443 ? endpoint.host : formatHostPort(endpoint.host, endpoint.port);
    plugin.routes.set(req, { kind: 'intercept', host: endpoint.host, port: endpoint.port });
    engine.handleRequest(true, req, res);
  }));

  const onClientError = (err: NodeJS.ErrnoException, socket: net.Socket | import('node:stream').Duplex): void => {
    log.debug('client sent a bad request', { code: err.code ?? err.message });
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    socket.end(timedOut ? rawHttpError(408, 'Request Timeout', 'mimo-proxy got no complete request in time') : rawHttpError(400, 'Bad Request', 'mimo-proxy could not parse this request'));
    // The servers allow half-open sockets: without this a peer that never closes its side
    // would keep the socket (and its file descriptor) forever.
    socket.once('finish', () => socket.destroy());
  };
  server.on('clientError', onClientError);
  interceptServer.on('clientError', onClientError);

  let port: number;
  try {
    port = await listen(server, config.host, config.port);
  } catch (err) {
    cache.close();
    agents.http.destroy();
    agents.https.destroy();
    throw err;
  }
  listenUrl = `http://${formatHostPort(config.host, port)}`;
  // Errors on the listening socket after it listens (accept() failing with EMFILE when file
  // descriptors run out): one line each, the proxy serves on; without a listener they would end it.
  server.on('error', (err: NodeJS.ErrnoException) => log.error('listening socket error', { code: err.code ?? err.message }));

  let closing: Promise<void> | undefined;
  return {
    host: config.host,
    port,
    url: listenUrl,
    ca,
    counters,
    cache,
    status,
    close() {
      closing ??= new Promise<void>((resolve) => {
        plugin.shutdown();
        interceptServer.close();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        agents.http.destroy();
        agents.https.destroy();
      }).then(() => cache.close());
      return closing;
    },
  };
}
