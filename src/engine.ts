/**
 * The proxy engine: http-mitm-proxy's Proxy, driven by our own listening
 * socket (server.ts) instead of its `listen()`. This is the only module that
 * imports http-mitm-proxy at run time. We keep its request pipeline and hooks
 * (onConnect, onRequest, onRequestData/End, onResponse, onResponseData/End,
 * onError) and replace the parts ../shared/HTTP-MITM-PROXY.md found wanting:
 *  - no built-in CA (a 1-year CA, world-readable keys, a key per host): we
 *    never call its listen(), so it never creates one; ca/ makes ours;
 *  - no per-host internal HTTPS servers on 0.0.0.0: intercept.ts terminates
 *    TLS on the client's own socket;
 *  - errors: no console output and no `KIND: error` text bodies; every error
 *    reaches our onError handler, which answers in JSON.
 * The overridden methods are the library's public-but-underscored API of the
 * pinned version 1.1.0.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import mitm from 'http-mitm-proxy';
import type { IContext } from 'http-mitm-proxy';

export type Context = IContext;

export type ErrorSink = (ctx: Context | null, err: Error, kind: string) => void;

export class Engine extends mitm.Proxy {
  private readonly sink: ErrorSink;

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

  /** A request that reached our server: absolute-form proxy request (isSSL false) or one from a terminated TLS tunnel / direct mode (isSSL true for an https upstream). */
  handleRequest(isSSL: boolean, req: http.IncomingMessage, res: http.ServerResponse): void {
    this._onHttpServerRequest(isSSL, req, res);
  }

  /** A CONNECT: runs the onConnect hooks; ours takes the socket over (tunnel or intercept) and never calls back. */
  handleConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this._onHttpServerConnect(req, socket, head);
  }

  override _onError(kind: string, ctx: Context | null, err: Error): void {
    for (const handler of this.onErrorHandlers) handler(ctx, err, kind);
    if (ctx) for (const handler of ctx.onErrorHandlers) handler(ctx, err, kind);
    this.sink(ctx, err, kind);
  }

  override _onSocketError(socketDescription: string, err: NodeJS.ErrnoException): void {
    this.sink(null, err, `${socketDescription}_ERROR`);
  }

  /** Nothing of the library's to close: it never listened (server.ts owns every socket), and its close() would touch servers that do not exist. */
  override close(): this {
    return this;
  }
}
