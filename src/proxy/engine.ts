/**
 * The proxy engine: http-mitm-proxy's Proxy, driven by our own listening
 * socket (server.ts) instead of its `listen()`. This is the only module that
 * imports http-mitm-proxy at run time. We keep its request pipeline and hooks
 * (onRequest, onRequestData/End, onResponse, onResponseData/End, onError);
 * each request comes with the route routes.ts chose for it, which the hooks
 * read on the context (`ctx.route`). CONNECT never reaches the library: its
 * route hands the socket to intercept.ts or tunnel.ts. We replace the parts
 * ../shared/HTTP-MITM-PROXY.md found wanting:
 *  - no built-in CA (a 1-year CA, world-readable keys, a key per host): we
 *    never call its listen(), so it never creates one; ca/ makes ours;
 *  - no per-host internal HTTPS servers on 0.0.0.0: intercept.ts terminates
 *    TLS on the client's own socket;
 *  - errors: no console output and no `KIND: error` text bodies; every error
 *    reaches our onError handler, which answers in JSON;
 *  - peer-controlled data: the library forwards hop-by-hop headers both ways
 *    and calls Node's writeHead/request/write where a throw (a `Trailer` on a
 *    body that is not chunked, a status below 100, headers already sent, ...)
 *    would end the process. Here hop-by-hop headers are dropped (Node frames
 *    each side itself), what is left is validated, and every point where the
 *    library hands peer data to Node is guarded: a throw ends that exchange
 *    only (a JSON 502, or a cut connection once the answer had started).
 * The overridden methods are the library's public-but-underscored API of the
 * pinned version 1.1.0.
 */
import http from 'node:http';
import type https from 'node:https';
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { ErrorCallback, IContext } from 'http-mitm-proxy';
import type { Relay } from './routes.js';

/**
 * The library's modules that only its `listen()` (its own CA, on node-forge) and its
 * WebSocket relay (ws) use. The proxy never calls the one and refuses upgrades before the
 * library sees them (routes.ts), so they are replaced by inert stand-ins before the library
 * loads: about 60 fewer modules at startup, and about 4 MiB less RSS at idle once the CA and
 * leaves exist (README, Performance). Our own CA loads node-forge itself when it must sign
 * (ca/forge.ts).
 */
const UNUSED_LIBRARY_MODULES: ReadonlyArray<readonly [string, unknown]> = [
  ['./ca', { __esModule: true, default: { create: () => { throw new Error('the http-mitm-proxy CA is not used'); } } }],
  ['ws', { __esModule: true, default: { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 }, WebSocketServer: class {} }],
];

/**
 * http-mitm-proxy, loaded with UNUSED_LIBRARY_MODULES stood in for. Resolved from the
 * library's own folder, the stand-ins serve its requires only: the library takes them while it
 * loads (its requires are at its top), and they leave the module cache once it has, so the
 * rest of the process (a program that embeds the proxy and uses `ws` itself) gets the real
 * modules. When its layout is not the expected one (another version), it loads as it is.
 */
function loadLibrary(): typeof import('http-mitm-proxy') {
  const require = createRequire(import.meta.url);
  const cache = require.cache;
  const stood: string[] = [];
  try {
    const fromLibrary = createRequire(path.join(path.dirname(require.resolve('http-mitm-proxy')), 'lib', 'proxy.js'));
    for (const [id, exports] of UNUSED_LIBRARY_MODULES) {
      const file = fromLibrary.resolve(id);
      if (cache[file] !== undefined) continue;
      const stand = new Module(file);
      Object.assign(stand, { filename: file, loaded: true, exports });
      cache[file] = stand;
      stood.push(file);
    }
  } catch {
    // Not the expected layout: the library loads with its own modules.
  }
  try {
    return require('http-mitm-proxy') as typeof import('http-mitm-proxy');
  } finally {
    for (const file of stood) delete cache[file];
  }
}

const mitm = loadLibrary();

/** The library's context for one exchange, with the route it was relayed by (set before any hook runs). */
export type Context = IContext & { route?: Relay };

export type ErrorSink = (ctx: Context | null, err: Error, kind: string) => void;

/** An upstream answer that cannot be relayed (a status or header Node refuses, a protocol switch). */
export class UpstreamProtocolError extends Error {
  readonly code = 'UPSTREAM_PROTOCOL_ERROR';
}

/**
 * Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, so they are never
 * forwarded as they came. `transfer-encoding` on a request stays: it says the body is chunked,
 * and Node then chunks it upstream itself.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Never dropped because a peer named them in `Connection`: they frame or address the message. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'host']);

function tokens(values: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const value of values) for (const t of value.split(',')) if (t.trim()) out.add(t.trim().toLowerCase());
  return out;
}

/** Drops hop-by-hop headers (and those a peer's `Connection` names) from `headers`, in place. */
function dropHopByHop(headers: Record<string, unknown>, connection: Iterable<string>): void {
  const named = tokens(connection);
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || (named.has(lower) && !FRAMING.has(lower))) delete headers[name];
  }
}

/** Every value a raw header list gives for `name`. */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === name) out.push(raw[i + 1] as string);
  return out;
}

/**
 * Makes an upstream answer's headers safe for writeHead: hop-by-hop headers go
 * (Node frames the answer for this client: chunked, content-length or, for HTTP/1.0, until
 * close; the client's connection is kept or closed by its own request, never by upstream's
 * `Connection`). Returns why the answer cannot be relayed, or undefined.
 */
function prepareResponse(response: http.IncomingMessage): string | undefined {
  const codings = [...tokens(rawValues(response.rawHeaders, 'transfer-encoding'))].filter((t) => t !== 'chunked');
  if (codings.length > 0) return 'a transfer-coding other than chunked';
  dropHopByHop(response.headers, rawValues(response.rawHeaders, 'connection'));
  for (const [name, value] of Object.entries(response.headers)) {
    try {
      http.validateHeaderName(name);
      for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) http.validateHeaderValue(name, v);
    } catch {
      return 'an invalid header';
    }
  }
  return undefined;
}

export class Engine extends mitm.Proxy {
  private readonly sink: ErrorSink;
  /** Exchanges ended by a guard: nothing more of them is forwarded. */
  private readonly failed = new WeakSet<Context>();
  /**
   * Each request's route, from handleRequest until the library has built its context (the
   * library takes no data of ours there); _onRequest moves it onto the context.
   */
  private readonly routes = new WeakMap<http.IncomingMessage, Relay>();

  constructor(agents: { http: http.Agent; https: https.Agent }, sink: ErrorSink) {
    super();
    this.sink = sink;
    // What listen() would have set, minus the CA and the listening socket.
    this.options = { keepAlive: true, httpAgent: agents.http, httpsAgent: agents.https };
    this.keepAlive = true;
    this.timeout = 0;
    this.httpAgent = agents.http;
    this.httpsAgent = agents.https;
    this.sslServers = {};
    this.sslSemaphores = {};
    this.connectRequests = {};
  }

  /** Relays a request as its route says: its target and Host as the route rewrites them, over TLS when upstream speaks it. */
  handleRequest(route: Relay, req: http.IncomingMessage, res: http.ServerResponse): void {
    if (route.url !== undefined) req.url = route.url;
    if (route.hostHeader !== undefined) req.headers.host = route.hostHeader;
    this.routes.set(req, route);
    this._onHttpServerRequest(route.tls, req, res);
  }

  override _onError(kind: string, ctx: Context | null, err: Error): void {
    for (const handler of this.onErrorHandlers) handler(ctx, err, kind);
    if (ctx) for (const handler of ctx.onErrorHandlers) handler(ctx, err, kind);
    this.sink(ctx, err, kind);
  }

  /** Ends one exchange after a throw or an answer that cannot be relayed: the client gets the error answer (onError), both upstream legs are closed. */
  private fail(ctx: Context, kind: string, err: Error): void {
    if (this.failed.has(ctx)) return;
    this.failed.add(ctx);
    const res = ctx.proxyToClientResponse;
    // A writeHead that threw leaves its reason phrase behind; the error answer brings its own.
    if (!res.headersSent) res.statusMessage = '';
    this._onError(kind, ctx, err);
    ctx.proxyToServerRequest?.destroy();
    ctx.serverToProxyResponse?.destroy();
  }

  /** Runs `step`; a throw (Node refusing what a peer sent) ends only this exchange. */
  private guard(ctx: Context, kind: string, step: () => void, explain?: (err: NodeJS.ErrnoException) => Error): void {
    if (this.failed.has(ctx)) return;
    try {
      step();
    } catch (thrown) {
      const err = thrown instanceof Error ? (thrown as NodeJS.ErrnoException) : new Error(String(thrown));
      this.fail(ctx, kind, explain ? explain(err) : err);
    }
  }

  /** Request headers as the library copied them: hop-by-hop ones dropped before any hook sees them. */
  override _onRequest(ctx: Context, callback: ErrorCallback): void {
    ctx.route = this.routes.get(ctx.clientToProxyRequest);
    this.routes.delete(ctx.clientToProxyRequest);
    const options = ctx.proxyToServerRequestOptions;
    if (options) dropHopByHop(options.headers, rawValues(ctx.clientToProxyRequest.rawHeaders, 'connection'));
    this.guard(ctx, 'ON_REQUEST_ERROR', () => super._onRequest(ctx, (err) => this.guard(ctx, 'ON_REQUEST_ERROR', () => callback(err))));
  }

  /** The last step before the library creates the upstream request (http.request throws on what it cannot send). */
  override _onRequestHeaders(ctx: Context, callback: ErrorCallback): void {
    super._onRequestHeaders(ctx, (err) =>
      this.guard(ctx, 'REQUEST_RELAY_ERROR', () => {
        callback(err);
        // A 101 answer: Node hands over the socket only to an 'upgrade' listener, and
        // without one the exchange would wait forever. Nothing here relays upgrades.
        ctx.proxyToServerRequest?.once('upgrade', (_res: http.IncomingMessage, socket: Duplex) => {
          socket.destroy();
          this.fail(ctx, 'SERVER_TO_PROXY_RESPONSE_ERROR', new UpstreamProtocolError('it switched protocols (101)'));
        });
      }),
    );
  }

  override _onRequestData(ctx: Context, chunk: Buffer, callback: ErrorCallback): void {
    this.guard(ctx, 'REQUEST_RELAY_ERROR', () => super._onRequestData(ctx, chunk, (err: Error | null, out?: Buffer) => this.guard(ctx, 'REQUEST_RELAY_ERROR', () => callback(err, out))));
  }

  override _onRequestEnd(ctx: Context, callback: ErrorCallback): void {
    this.guard(ctx, 'REQUEST_RELAY_ERROR', () => super._onRequestEnd(ctx, (err) => this.guard(ctx, 'REQUEST_RELAY_ERROR', () => callback(err))));
  }

  /** The last step before the library's writeHead with the upstream's status and headers. */
  override _onResponseHeaders(ctx: Context, callback: ErrorCallback): void {
    if (this.failed.has(ctx)) return;
    const res = ctx.proxyToClientResponse;
    const response = ctx.serverToProxyResponse;
    if (res.headersSent || res.destroyed) {
      // The client was already answered (an error) or is gone: a second writeHead would throw.
      this.failed.add(ctx);
      response?.destroy();
      ctx.proxyToServerRequest?.destroy();
      return;
    }
    const problem = response ? prepareResponse(response) : 'no response';
    if (problem) {
      this.fail(ctx, 'SERVER_TO_PROXY_RESPONSE_ERROR', new UpstreamProtocolError(problem));
      return;
    }
    // The library's writeHead follows; what Node still refuses there (a status outside
    // 100-999, ...) came from upstream.
    super._onResponseHeaders(ctx, (err) =>
      this.guard(ctx, 'RESPONSE_RELAY_ERROR', () => callback(err), (thrown) => new UpstreamProtocolError(`Node refused its status or headers (${thrown.code ?? thrown.name})`)),
    );
  }

  override _onResponseData(ctx: Context, chunk: Buffer, callback: ErrorCallback): void {
    this.guard(ctx, 'RESPONSE_RELAY_ERROR', () => super._onResponseData(ctx, chunk, (err?: Error | null, out?: Buffer) => this.guard(ctx, 'RESPONSE_RELAY_ERROR', () => callback(err, out))));
  }

  override _onResponseEnd(ctx: Context, callback: ErrorCallback): void {
    this.guard(ctx, 'RESPONSE_RELAY_ERROR', () => super._onResponseEnd(ctx, (err) => this.guard(ctx, 'RESPONSE_RELAY_ERROR', () => callback(err))));
  }

  override _onSocketError(socketDescription: string, err: NodeJS.ErrnoException): void {
    this.sink(null, err, `${socketDescription}_ERROR`);
  }

  /** Nothing of the library's to close: it never listened (server.ts owns every socket), and its close() would touch servers that do not exist. */
  override close(): this {
    return this;
  }
}
