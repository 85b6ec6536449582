/**
 * The mimo-proxy plugin: what the proxy does with each routed request (routes.ts).
 *  - onConnect: a CONNECT's route: refused, tunnelled untouched, or
 *    intercepted (TLS terminated with our CA).
 *  - onRequest (the engine's hook; the route is on the context): upstream
 *    address (--connect-to), verified TLS name, idle timeout, abort on client
 *    hang-up, backpressure, and, for a request on one of its provider's
 *    surfaces (../providers.ts: chat completions, Anthropic messages, the
 *    Responses API), the reasoning exchange (reasoning/exchange.ts), whose
 *    retry it sends. Passthrough traffic gets no response hooks at all.
 *  - onError: one place that turns failures into JSON answers.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import type tls from 'node:tls';
import type { ProxyConfig } from '../config.js';
import { formatHostPort } from '../net/connect-target.js';
import { isEncoded } from '../reasoning/encoding.js';
import { UpstreamProtocolError, type Context } from './engine.js';
import { describeUpstreamError, errorEvent, rawHttpError, sendJsonError, UpstreamTimeoutError } from './http-error.js';
import type { Interceptor } from './intercept.js';
import type { Logger } from '../log.js';
import type { ReasoningService, Exchange } from '../reasoning/exchange.js';
import { MAX_REJECTION_BYTES } from '../reasoning/rejection.js';
import { peek, replay } from './peek.js';
import { dialectNamed } from '../dialects.js';
import { surfaceFor } from '../providers.js';
import { countInto, histogramOf, STREAM_BUCKETS, TTFB_BUCKETS, type Counters, type Metrics, type UpstreamErrorClass } from '../stats.js';
import type { ConnectRoute } from './routes.js';
import { openTunnel } from './tunnel.js';

interface RequestState {
  target: string;
  aborted: boolean;
  exchange: Exchange | undefined;
  /** The request upstream now (the retry replaces the first one). */
  upstream: http.ClientRequest | undefined;
  /** For /metrics: the surface's name (or `other`), and when the request came in (performance.now()). */
  surface: string;
  started: number;
  /** When the answer's headers went to the client, for a streamed answer's duration. */
  streamStarted: number | undefined;
}

export interface PluginDeps {
  config: Pick<ProxyConfig, 'timeoutMs'>;
  log: Logger;
  counters: Counters;
  interceptor: Interceptor;
  reasoning: ReasoningService;
  metrics: Metrics;
}

/** An upstream failure's class for /metrics: a fixed set, never the message or the host. */
export function upstreamErrorClass(err: NodeJS.ErrnoException): UpstreamErrorClass {
  if (err instanceof UpstreamTimeoutError || err.code === 'ETIMEDOUT') return 'timeout';
  if (err instanceof UpstreamProtocolError || err.code?.startsWith('HPE_') === true) return 'protocol';
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'socket hang up') return 'reset';
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return 'dns';
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/.test(err.code ?? '')) return 'tls';
  return 'other';
}

export function createPlugin(deps: PluginDeps) {
  const { config, log, counters, interceptor, reasoning, metrics } = deps;
  const states = new WeakMap<Context, RequestState>();
  /** Set while the proxy shuts down: the connections it cuts then are no upstream failures. */
  let closing = false;

  function onConnect(route: ConnectRoute, socket: Duplex, head: Buffer): void {
    if (route.kind === 'refuse') {
      // Without valid credentials a CONNECT is not served at all, and not counted.
      if (route.status !== 407) {
        counters.connects++;
        log.info('refused a CONNECT', { status: route.status });
      }
      socket.end(rawHttpError(route.status, route.message));
      return;
    }
    counters.connects++;
    if (route.kind === 'tunnel') {
      counters.tunnelled++;
      openTunnel(socket, head, route.to.host, route.to.port, log);
      return;
    }
    counters.intercepted++;
    const target = route.endpoint;
    const accept = (context: tls.SecureContext): void => interceptor.accept(socket, head, target, context);
    let context: tls.SecureContext | Promise<tls.SecureContext>;
    try {
      context = interceptor.contextFor(target.host);
    } catch (err) {
      context = Promise.reject(err);
    }
    if (context instanceof Promise) {
      context.then(accept, (err: Error) => {
        log.error('could not issue a certificate', { host: target.host, error: err.message });
        socket.end(rawHttpError(502, `mimo-proxy could not issue a certificate for ${target.host}`));
      });
    } else {
      accept(context);
    }
  }

  function armTimeout(state: RequestState, request: http.ClientRequest): void {
    request.setTimeout(config.timeoutMs, () => request.destroy(new UpstreamTimeoutError(config.timeoutMs)));
    state.upstream = request;
  }

  function onRequest(ctx: Context, callback: (err?: Error | null) => void): void {
    const route = ctx.route;
    const options = ctx.proxyToServerRequestOptions;
    if (!route || !options) {
      counters.passthroughRequests++;
      callback();
      return;
    }
    if (route.kind === 'direct') counters.directRequests++;
    else if (route.kind === 'intercept') counters.interceptedRequests++;
    else counters.passthroughRequests++;

    // Where to connect: from our route, not the Host header (and the library's own parse
    // mangles IPv6 literals); --connect-to applies as in curl.
    options.host = route.to.host;
    options.port = route.to.port;
    if (route.kind !== 'passthrough') {
      Object.assign(options, { servername: isIP(route.host) === 0 ? route.host : undefined, rejectUnauthorized: true });
    }

    const provider = route.kind === 'passthrough' ? undefined : route.provider;
    const dialect = provider ? surfaceFor(provider, ctx.clientToProxyRequest.method, options.path) : undefined;
    const surface = dialect === undefined ? undefined : dialectNamed(dialect);
    const state: RequestState = {
      target: formatHostPort(route.host, route.port),
      aborted: false,
      exchange: provider && surface ? reasoning.exchange(ctx.clientToProxyRequest.headers, surface, provider) : undefined,
      upstream: undefined,
      surface: surface?.name ?? 'other',
      started: performance.now(),
      streamStarted: undefined,
    };
    countInto(metrics.requests, `${state.surface} ${route.kind}`);
    states.set(ctx, state);
    const exchange = state.exchange;
    if (exchange) {
      options.headers['accept-encoding'] = 'identity';
      // With `expect`, Node sends the headers at once, before the body is rewritten and its
      // length known; the proxy answers the client's 100-continue itself (Node's server does).
      delete options.headers['expect'];
    }

    const res = ctx.proxyToClientResponse;
    res.once('close', () => {
      if (!res.writableFinished && !state.aborted) clientGone(ctx, state);
    });

    ctx.onRequestData((ctx, chunk, cb) => {
      if (ctx.proxyToServerRequest && state.upstream !== ctx.proxyToServerRequest) armTimeout(state, ctx.proxyToServerRequest);
      cb(null, exchange ? exchange.requestData(chunk) : chunk);
      // Backpressure on the request side too (the library's request filter ignores it): the
      // chunk was just written upstream (the final filter writes inside cb); without it a slow
      // upstream makes the proxy hold the whole body (hardening test: 100 MB body, slow
      // upstream, rss grew by ~190 MB).
      if (ctx.proxyToServerRequest) holdBack(ctx.clientToProxyRequest, ctx.proxyToServerRequest);
    });
    ctx.onRequestEnd((ctx, cb) => {
      const request = ctx.proxyToServerRequest;
      if (request && state.upstream !== request) armTimeout(state, request);
      const encoding = ctx.clientToProxyRequest.headers['content-encoding'];
      if (exchange && request && isEncoded(encoding)) {
        // A compressed body is decoded asynchronously; the library ends the upstream request
        // only once cb is called, so the body is written first.
        void exchange.requestEndEncoded(encoding ?? '').then((end) => {
          if (end.decoded) delete options.headers['content-encoding']; // a retry sends a decoded body
          if (end.body && !state.aborted) writeBody(request, end.body, end.identity, () => cb());
          else cb();
        });
        return;
      }
      if (exchange && request) {
        const body = exchange.requestEnd();
        if (body instanceof Promise) {
          // A large body is rewritten off the event loop (never rejects); cb ends the request.
          void body.then((rewritten) => {
            if (rewritten && !state.aborted) writeBody(request, rewritten, false, () => cb());
            else cb();
          });
          return;
        }
        if (body) {
          writeBody(request, body, false, () => cb());
          return;
        }
      }
      cb();
    });

    if (route.kind === 'passthrough') {
      // Not ours: no response hooks, so its framing and bytes go to the client as they came.
      callback();
      return;
    }

    ctx.onResponse((ctx, cb) => {
      const response = ctx.serverToProxyResponse;
      if (!response || !exchange) {
        if (response) histogramOf(metrics.ttfb, state.surface, TTFB_BUCKETS).observe((performance.now() - state.started) / 1000);
        cb();
        return;
      }
      answer(ctx, state, exchange, response)
        .then(
          (final) => {
            if (final !== response) {
              // The library listens for errors on the first response only.
              final.on('error', (err) => onError(ctx, err, 'SERVER_TO_PROXY_RESPONSE_ERROR'));
              ctx.serverToProxyResponse = final;
            }
            if (state.aborted || res.headersSent) {
              // The client left, or already got an error answer while the body was read:
              // going on would write headers twice.
              final.destroy();
              return;
            }
            const now = performance.now();
            histogramOf(metrics.ttfb, state.surface, TTFB_BUCKETS).observe((now - state.started) / 1000);
            if (String(final.headers['content-type'] ?? '').includes('text/event-stream')) state.streamStarted = now;
            cb();
          },
          (err: Error) => {
            if (state.aborted || res.headersSent) return;
            cb(err);
          },
        )
        .catch((err: unknown) => log.error('response hook failed', { error: (err as Error)?.name ?? 'unknown' }));
    });

    // Backpressure (the library ignores it) on the response side.
    ctx.onResponseData((ctx, chunk, cb) => {
      exchange?.responseData(chunk);
      if (ctx.serverToProxyResponse) holdBack(ctx.serverToProxyResponse, res);
      cb(null, chunk);
    });
    ctx.onResponseEnd((_ctx, cb) => {
      if (state.streamStarted !== undefined) histogramOf(metrics.streamDuration, state.surface, STREAM_BUCKETS).observe((performance.now() - state.streamStarted) / 1000);
      // A compressed answer is learned once its decoder has flushed; its end reaches the client then.
      const learning = exchange?.responseEnd();
      if (learning) void learning.then(() => cb());
      else cb();
    });

    callback();
  }

  /**
   * The answer the client gets: upstream's, or, when that is the provider's reasoning 400 and the
   * exchange has a stronger rewrite, the answer to that retry (sent once, before the client
   * sees anything). Bytes read to decide are replayed.
   */
  async function answer(ctx: Context, state: RequestState, exchange: Exchange, response: http.IncomingMessage): Promise<http.IncomingMessage> {
    let final = response;
    if (exchange.mayRetry(response.statusCode)) {
      const { head, complete } = await peek(response, MAX_REJECTION_BYTES);
      const retryBody = complete ? await exchange.retryBody(head) : undefined;
      final = retryBody ? await sendRetry(ctx, state, retryBody) : replay(response, head, complete);
    }
    exchange.responseHeaders(final.statusCode, final.headers);
    return final;
  }

  /** The client hung up or failed mid-exchange: stop upstream too (no tokens burnt for nobody), learn nothing. */
  function clientGone(ctx: Context, state: RequestState | undefined): void {
    if (state) state.aborted = true;
    counters.clientAborts++;
    state?.upstream?.destroy();
    ctx.proxyToServerRequest?.destroy();
    state?.exchange?.abort();
  }

  /** Send the same request again with another body; resolves with the new response. */
  function sendRetry(ctx: Context, state: RequestState, body: Buffer): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const options = ctx.proxyToServerRequestOptions;
      if (!options || state.aborted) {
        reject(new Error('request ended before the retry'));
        return;
      }
      counters.retries++;
      const headers: Record<string, string> = { ...options.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const request = (ctx.isSSL ? https : http).request({ ...options, headers }, resolve);
      request.on('error', reject);
      // A 101: without an 'upgrade' listener Node drops the socket and the retry never settles.
      request.once('upgrade', (_res: http.IncomingMessage, socket: Duplex) => {
        socket.destroy();
        reject(new UpstreamProtocolError('it switched protocols (101)'));
      });
      armTimeout(state, request);
      writeSliced(request, body, () => request.end());
    });
  }

  function onError(ctx: Context | null, err: Error, kind: string): void {
    if (!ctx) {
      log.debug('socket error', { kind, code: (err as NodeJS.ErrnoException).code ?? err.message });
      return;
    }
    const state = states.get(ctx);
    const res = ctx.proxyToClientResponse;
    if (state?.aborted || res.destroyed || closing) {
      log.debug(closing ? 'request cut by shutdown' : 'request ended by the client', { kind });
      return;
    }
    if (kind === 'CLIENT_TO_PROXY_REQUEST_ERROR' || kind === 'PROXY_TO_CLIENT_RESPONSE_ERROR') {
      clientGone(ctx, state);
      res.destroy();
      return;
    }
    if (res.writableEnded) {
      // One upstream failure often reports twice (the request's error, then the response's
      // 'aborted'); the first already answered (JSON error or final SSE error event). Destroying
      // now would cut that answer before it is flushed (hardening test: stalled stream, --timeout).
      log.debug('upstream error after the answer ended', { kind });
      return;
    }
    counters.upstreamErrors++;
    countInto(metrics.upstreamErrors, upstreamErrorClass(err as NodeJS.ErrnoException));
    const target = state?.target ?? ctx.proxyToServerRequestOptions?.host ?? 'upstream';
    const { status, message } = describeUpstreamError(err as NodeJS.ErrnoException, target);
    log.warn('upstream request failed', { target, kind, code: (err as NodeJS.ErrnoException).code ?? err.name, status });
    state?.exchange?.abort();
    // The client reads the error shape of the API it addressed (Anthropic's under /anthropic).
    const shape = ctx.route?.shape ?? 'openai';
    if (!res.headersSent) {
      sendJsonError(res, status, message, shape);
    } else if (/text\/event-stream/.test(String(res.getHeader('content-type') ?? ctx.serverToProxyResponse?.headers['content-type'] ?? '')) && !res.writableEnded) {
      // (The library sends headers with writeHead(status, object), which getHeader() does not
      // see, so the upstream's content-type is read too; without it this branch never ran and
      // every mid-stream failure cut the connection instead: hardening test, reset mid-stream.)
      // Mid-stream: end the stream with an error event the client's SSE parser reports.
      res.end(errorEvent(shape, status, message));
    } else {
      res.destroy();
    }
  }

  const shutdown = (): void => {
    closing = true;
  };

  return { onConnect, onRequest, onError, shutdown };
}

export type Plugin = ReturnType<typeof createPlugin>;

/** While `sink`'s buffer is full, stop reading `source`: the proxy holds at most one buffer of a slow peer's stream. */
function holdBack(source: Readable, sink: Writable): void {
  if (sink.writableNeedDrain && !source.isPaused()) {
    source.pause();
    sink.once('drain', () => source.resume());
  }
}

/** The request body upstream, framed by its length; `identity`: a decoded body, so no Content-Encoding. `done` once it is handed over. */
function writeBody(request: http.ClientRequest, body: Buffer, identity: boolean, done: () => void): void {
  if (!request.headersSent) {
    request.removeHeader('transfer-encoding');
    if (identity) request.removeHeader('content-encoding');
    request.setHeader('content-length', String(body.length));
  }
  writeSliced(request, body, done);
}

/**
 * TLS encrypts a write in one go on the event loop: one 32 MB write holds it for about 30 ms.
 * So a body larger than this is handed over a slice at a time, the next once the last has
 * drained (about 2 ms each), and other connections are served in between.
 */
export const WRITE_SLICE_BYTES = 1024 * 1024;

/** Writes `body` to `request` in slices of WRITE_SLICE_BYTES; `done` after the last, or at once when the request is gone. Never throws. */
export function writeSliced(request: http.ClientRequest, body: Buffer, done: () => void): void {
  let offset = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    request.off('drain', next);
    request.off('close', finish);
    done();
  };
  function next(): void {
    while (offset < body.length) {
      if (request.destroyed) return finish();
      const slice = body.subarray(offset, offset + WRITE_SLICE_BYTES);
      offset += slice.length;
      if (!request.write(slice) && offset < body.length) return; // 'drain' calls next again
    }
    finish();
  }
  if (body.length > WRITE_SLICE_BYTES) {
    request.on('drain', next);
    request.once('close', finish);
  }
  next();
}
