/**
 * Assembles a running proxy: our CA, the reasoning cache, the engine with our
 * plugin on its hooks, and the one listening socket. Each request is routed
 * (routes.ts) and dispatched on its route:
 *   CONNECT                 -> plugin: intercept (ours) | tunnel | refusal
 *   absolute-form request   -> engine pipeline, passthrough (no response hooks)
 *   origin-form request     -> local pages, or direct mode via the pipeline
 *   request in an intercepted TLS connection -> engine pipeline, intercept
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { loadOrCreateCa, type CertificateAuthority } from '../ca/index.js';
import { ReasoningCache, type StoreStatus } from '../cache/cache.js';
import type { ProxyConfig } from '../config.js';
import { Engine } from './engine.js';
import { MimoProxyError } from '../errors.js';
import { formatHostPort } from '../net/connect-target.js';
import { errorShapeFor, rawHttpError, sendJsonError } from './http-error.js';
import { Interceptor, TLS_HANDSHAKE_TIMEOUT_MS } from './intercept.js';
import { serveLocal, withoutFigures, type StatusReport } from './local.js';
import type { Logger } from '../log.js';
import { createPlugin } from './plugin.js';
import { ReasoningService } from '../reasoning/exchange.js';
import { newCounters, newMetrics, type Counters, type Metrics } from '../stats.js';
import { renderMetrics } from './metrics.js';
import { openStore } from '../cache/store.js';
import { createRouter, type RequestRoute } from './routes.js';
import { RewriteWorkers } from './rewrite-worker.js';
import { VERSION } from '../version.js';
import { caRenewCommand } from '../providers.js';

export interface RunningProxy {
  readonly host: string;
  readonly port: number;
  /** http://host:port, what HTTPS_PROXY is set to. */
  readonly url: string;
  readonly ca: CertificateAuthority;
  readonly counters: Counters;
  readonly cache: ReasoningCache;
  readonly metrics: Metrics;
  status(): StatusReport;
  close(): Promise<void>;
}

/** The status page's line about the store: no credentials (the Redis target is host:port/db). */
function describeStore(store: StoreStatus): StatusReport['store'] {
  if (store.kind === 'memory') return { kind: 'memory', where: 'only (--no-persist)', state: 'in use', problem: undefined };
  if (store.kind === 'sqlite') return { kind: 'sqlite', where: store.path, state: 'in use', problem: undefined };
  return { kind: 'redis', where: store.target, state: store.state, problem: store.problem };
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

export async function startProxy(config: ProxyConfig, log: Logger, connectionLimits: Partial<ConnectionLimits> = {}): Promise<RunningProxy> {
  const timing = { ...CONNECTION_LIMITS, ...connectionLimits };
  const started = Date.now();
  const ca = await loadOrCreateCa({ dir: config.certsDir, domains: config.domains, renewCommand: caRenewCommand(config) });
  const expiry = ca.expiryWarning();
  if (expiry) log.warn(expiry);

  // One secure context for every upstream connection (and a rediss:// store): passing `ca`
  // instead would parse the whole root list again for each new connection.
  const secureContext = tls.createSecureContext({ ca: upstreamRoots(config.upstreamCaPem) });
  const limits = { maxEntries: config.cacheMax, maxBytes: config.cacheMaxBytes, ttlMs: config.cacheTtlMs };
  // A Redis --store replaces the SQLite file: memory in front, Redis shared behind it.
  // Loaded only for a Redis --store: ioredis and its modules weigh about 10 MiB.
  const shared = config.store ? new (await import('../cache/redis.js')).RedisStore({ url: config.store, log, secureContext }) : undefined;
  const store = config.persist && !shared ? openStore(config.dataDir, limits, log) : undefined;
  const cache = new ReasoningCache({ limits, store, shared, log });
  // Redis down at start is no reason not to serve: its state is logged, and the proxy reconnects.
  await shared?.ready();
  const counters = newCounters();
  const metrics = newMetrics();

  const agents = {
    // `timeout` here closes idle pooled sockets before a server drops them under a new request
    // (an ECONNRESET no client could retry); each request arms its own idle timeout.
    http: new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: IDLE_SOCKET_MS }),
    https: new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: IDLE_SOCKET_MS, secureContext }),
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
  const rewriteWorkers = new RewriteWorkers(log);
  const reasoning = new ReasoningService({ config, cache, counters, log, offload: rewriteWorkers });
  const plugin = createPlugin({ config, log, counters, interceptor, reasoning, metrics });
  const engine = new Engine(agents, plugin.onError);
  engine.onRequest(plugin.onRequest);
  const router = createRouter(config);

  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  interceptServer.on('connection', track);

  let listenUrl = '';

  const status = (): StatusReport => ({
    name: 'mimo-proxy',
    version: VERSION,
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    listen: listenUrl,
    domains: config.domains,
    providers: config.providers.map((provider) => provider.id),
    upstream: config.upstream.href,
    degrade: config.degrade,
    ca: { path: ca.caCertPath, fingerprint256: ca.fingerprint256, notAfter: ca.notAfter.toISOString(), warning: ca.expiryWarning() },
    cache: { ...cache.stats() },
    store: describeStore(cache.storeStatus()),
    counters: { ...counters },
  });

  const metricsText = (): string =>
    renderMetrics({
      counters,
      metrics,
      cache: cache.stats(),
      store: cache.storeStatus(),
      storeLatency: cache.storeLatency(),
      openConnections: sockets.size,
      startedAt: Math.round((Date.now() - process.uptime() * 1000) / 1000),
      version: VERSION,
    });

  /** A handler's throw (Node refusing what a peer sent) ends that exchange only: a JSON 502, or a cut connection once the answer has started. */
  const guarded =
    (handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) =>
    (req: http.IncomingMessage, res: http.ServerResponse): void => {
      // Taken before the handler: direct mode rewrites the target.
      const shape = errorShapeFor(req.url);
      try {
        handler(req, res);
      } catch (err) {
        log.error('request failed in the proxy', { code: (err as NodeJS.ErrnoException).code ?? (err as Error).name });
        try {
          if (!res.headersSent) res.statusMessage = '';
          sendJsonError(res, 502, 'mimo-proxy could not relay this request', shape);
        } catch {
          res.destroy();
        }
      }
    };

  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    try {
      plugin.onConnect(router.connect(req), socket, head);
    } catch (err) {
      log.error('CONNECT failed in the proxy', { code: (err as NodeJS.ErrnoException).code ?? (err as Error).name });
      socket.destroy();
    }
  });

  const dispatch = (route: RequestRoute, req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (route.kind === 'refuse') sendJsonError(res, route.status, route.message, route.shape);
    else if (route.kind === 'local') serveLocal(route.page, req, res, route.figures ? status : () => withoutFigures(status()), ca.caPem, metricsText);
    else engine.handleRequest(route, req, res);
  };

  server.on('request', guarded((req: http.IncomingMessage, res: http.ServerResponse) => dispatch(router.request(req), req, res)));

  interceptServer.on('request', guarded((req: http.IncomingMessage, res: http.ServerResponse) => {
    const endpoint = interceptor.endpoints.get(req.socket);
    if (!endpoint) {
      res.destroy();
      return;
    }
    dispatch(router.request(req, endpoint), req, res);
  }));

  const onClientError = (err: NodeJS.ErrnoException, socket: net.Socket | import('node:stream').Duplex): void => {
    log.debug('client sent a bad request', { code: err.code ?? err.message });
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    socket.end(timedOut ? rawHttpError(408, 'mimo-proxy got no complete request in time') : rawHttpError(400, 'mimo-proxy could not parse this request'));
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
    void rewriteWorkers.close();
    await cache.close();
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
    metrics,
    status,
    close() {
      closing ??= new Promise<void>((resolve) => {
        plugin.shutdown();
        interceptServer.close();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        agents.http.destroy();
        agents.https.destroy();
      })
        .then(() => rewriteWorkers.close())
        .then(() => cache.close());
      return closing;
    },
  };
}
