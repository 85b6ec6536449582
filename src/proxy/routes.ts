/**
 * Where a request to the proxy goes: one decision over its request line (method and
 * target, and the headers that bear on it) and the configuration, taken before a byte
 * is forwarded. Pure: server.ts acts on the route, and a relay's route travels with its
 * request through the engine to the plugin's hooks (engine.ts puts it on the context).
 *   CONNECT host:port             ours: terminate (TLS with our CA); others, IP literals: tunnel
 *   a request inside a terminated CONNECT                           intercept (the provider
 *                                 whose domains cover the CONNECT target: its rules apply)
 *   absolute-form (http://host/)  passthrough: forwarded unchanged, our hosts too
 *   origin-form (/path)           a local page, or direct mode to --upstream
 * Refused: 400 (a target the proxy cannot use), 404 (no such page or API path), 407
 * (--auth and no valid Proxy-Authorization), 401 (/metrics with --auth and neither valid
 * Authorization nor Proxy-Authorization, unless --metrics-open; the HTML status page the
 * same, local.ts), 501 (a protocol upgrade). Each route also
 * names the error shape the client reads (the API its target addresses), for the
 * errors the proxy answers on it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { isIP } from 'node:net';
import type { ProxyConfig } from '../config.js';
import { formatHostPort, parseConnectTarget } from '../net/connect-target.js';
import { resolveDestination, type Destination } from '../net/connect-to.js';
import { isOurHost } from '../net/hosts.js';
import { ALL_PROVIDERS, providerById, providerForHost, type Provider } from '../providers.js';
import { errorShapeFor, type ErrorShape } from './http-error.js';

/** What routing reads of a request: Node's IncomingMessage is one. */
export interface RequestLine {
  method?: string | undefined;
  /** The request target as sent: host:port (CONNECT), absolute-form or origin-form. */
  url?: string | undefined;
  headers: http.IncomingHttpHeaders;
}

export interface Refusal {
  kind: 'refuse';
  status: 400 | 401 | 404 | 407 | 501;
  message: string;
  /** The error shape of the API the client addressed (http-error.ts). */
  shape: ErrorShape;
}

export type ConnectRoute =
  | Refusal
  /** Not ours, or an IP literal: a byte pipe to `to` (the target after --connect-to). */
  | { kind: 'tunnel'; to: Destination }
  /** Ours: TLS terminated with a leaf from our CA for `endpoint`, the target the client named. */
  | { kind: 'terminate'; endpoint: Destination };

/** A request the engine relays upstream. */
export interface Relay {
  /** intercept: ours via CONNECT; direct: direct mode; passthrough: plain HTTP (any host, forwarded unchanged). */
  kind: 'intercept' | 'direct' | 'passthrough';
  /** Name for the Host header and upstream certificate verification. */
  host: string;
  port: number;
  /** Where to connect: host and port after --connect-to. */
  to: Destination;
  /** Upstream speaks TLS. */
  tls: boolean;
  /** The error shape of the API the client addressed, for the errors the proxy answers itself. */
  shape: ErrorShape;
  /** The request target upstream, when it differs from the client's (direct mode). */
  url?: string | undefined;
  /** The Host header upstream, when it differs from the client's. */
  hostHeader?: string | undefined;
  /** Whose rules apply (intercept, direct); passthrough has none: it is never rewritten. */
  provider?: Provider | undefined;
}

export type LocalPage = 'health' | 'status' | 'ca' | 'metrics';

/**
 * A page the proxy serves itself. `figures`: whether it may show traffic figures (counters,
 * cache, store address): always without --auth; with --auth only to a request carrying the
 * credentials, unless --metrics-open.
 */
export type RequestRoute = Refusal | { kind: 'local'; page: LocalPage; figures: boolean } | Relay;

export type RouterConfig = Pick<ProxyConfig, 'auth' | 'domains' | 'providers' | 'connectTo' | 'upstream'> & Partial<Pick<ProxyConfig, 'metricsOpen'>>;

export interface Router {
  /** A CONNECT request. */
  connect(line: RequestLine): ConnectRoute;
  /** Any other request; `tunnel`: the CONNECT target of the terminated TLS connection it came on. */
  request(line: RequestLine, tunnel?: Destination): RequestRoute;
}

const PROXY_AUTH_REQUIRED = 'proxy authentication required';

const UPGRADE_REFUSED =
  'mimo-proxy does not relay protocol upgrades (WebSocket and the like) to intercepted hosts, in direct mode or on plain-HTTP proxy requests; HTTPS (wss:// included) to other hosts is tunnelled untouched through CONNECT';

const LOCAL_PAGES: ReadonlyMap<string, LocalPage> = new Map([
  ['/health', 'health'],
  ['/', 'status'],
  ['/ca.pem', 'ca'],
  ['/metrics', 'metrics'],
]);

const refuse = (status: Refusal['status'], message: string, shape: ErrorShape = 'openai'): Refusal => ({ kind: 'refuse', status, message, shape });

const unbracket = (hostname: string): string => hostname.replace(/^\[|\]$/g, '');

/** Proxy-Authorization (or, for /metrics, Authorization): Basic, compared in constant time. */
function authChecker(auth: string | undefined, name: 'proxy-authorization' | 'authorization' = 'proxy-authorization'): (headers: http.IncomingHttpHeaders) => boolean {
  if (auth === undefined) return () => true;
  const expected = createHash('sha256').update(auth).digest();
  return (headers) => {
    const header = headers[name] ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    const given = createHash('sha256').update(m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '\0').digest();
    return timingSafeEqual(given, expected) && m !== null;
  };
}

/**
 * An upgrade (WebSocket and the like) would need a raw byte relay after the 101, which the
 * request pipeline cannot give: such requests get a 501. `h2c` alone is no reason to refuse:
 * a server may ignore it and answer in HTTP/1.1 (RFC 9113 3.2), which is what happens.
 */
function asksForUpgrade(headers: http.IncomingHttpHeaders): boolean {
  const upgrade = headers.upgrade;
  if (!upgrade) return false;
  const connection = String(headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  if (!connection.includes('upgrade')) return false;
  return upgrade.split(',').some((p) => p.trim() !== '' && !/^h2c$/i.test(p.trim()));
}

/** Where a direct-mode request goes: the upstream's base path plus the API path. */
export function directPath(method: string | undefined, url: string, upstream: URL): string | undefined {
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  if (/^\/anthropic\/v1\/messages\/?$/.test(pathname)) {
    // The Anthropic base sits beside the OpenAI one: https://<host>/anthropic next to https://<host>/v1.
    if (method !== 'POST') return undefined;
    return upstream.pathname.replace(/\/+$/, '').replace(/\/v1$/, '') + '/anthropic/v1/messages' + query;
  }
  const m = /^(?:\/v1)?(\/chat\/completions|\/responses|\/models(?:\/[A-Za-z0-9._:-]+)?)\/?$/.exec(pathname);
  if (!m) return undefined;
  const suffix = m[1] as string;
  const wanted = suffix === '/chat/completions' || suffix === '/responses' ? 'POST' : 'GET';
  if (method !== wanted) return undefined;
  return upstream.pathname.replace(/\/+$/, '') + suffix + query;
}

/** An absolute-form http:// target, or undefined. */
function httpTarget(url: string): URL | undefined {
  try {
    const target = new URL(url);
    return target.protocol === 'http:' ? target : undefined;
  } catch {
    return undefined;
  }
}

export function createRouter(config: RouterConfig): Router {
  const authorised = authChecker(config.auth);
  // A scraper (Prometheus' basic_auth) sends Authorization; a client of the proxy, Proxy-Authorization.
  const scraperAuthorised = authChecker(config.auth, 'authorization');
  const upstreamTls = config.upstream.protocol === 'https:';
  const upstream = { host: unbracket(config.upstream.hostname), port: Number(config.upstream.port) || (upstreamTls ? 443 : 80) };
  // Direct mode: the enabled provider whose domains cover --upstream, else the provider that
  // --upstream names (the user pointed direct mode there, enabled or not: its rules, not
  // another's), else the first one enabled (a relay or a test upstream).
  const directProvider = providerForHost(upstream.host, config.providers) ?? providerForHost(upstream.host, ALL_PROVIDERS) ?? providerById(config.providers[0]?.id ?? 'mimo');

  const relay = (kind: Relay['kind'], at: Destination, tls: boolean, shape: ErrorShape, rewrite: Pick<Relay, 'url' | 'hostHeader' | 'provider'> = {}): Relay => ({
    kind,
    host: at.host,
    port: at.port,
    to: resolveDestination(config.connectTo, at.host, at.port),
    tls,
    shape,
    ...rewrite,
  });

  return {
    connect(line) {
      if (!authorised(line.headers)) return refuse(407, PROXY_AUTH_REQUIRED);
      const target = parseConnectTarget(line.url);
      if (!target) return refuse(400, 'the CONNECT target must be host:port');
      if (isIP(target.host) !== 0 || !isOurHost(target.host, config.domains)) {
        return { kind: 'tunnel', to: resolveDestination(config.connectTo, target.host, target.port) };
      }
      return { kind: 'terminate', endpoint: target };
    },

    request(line, tunnel) {
      const url = line.url ?? '/';
      const shape = errorShapeFor(url);
      if (asksForUpgrade(line.headers)) return refuse(501, UPGRADE_REFUSED, shape);
      if (tunnel) {
        // HTTP/1.0 may leave Host out; the CONNECT target names the host.
        const hostHeader = line.headers.host === undefined ? (tunnel.port === 443 ? tunnel.host : formatHostPort(tunnel.host, tunnel.port)) : undefined;
        return relay('intercept', tunnel, true, shape, { hostHeader, provider: providerForHost(tunnel.host, config.providers) });
      }
      if (url.startsWith('/')) {
        const pathname = url.split('?')[0] as string;
        const page = line.method === 'GET' || line.method === 'HEAD' ? LOCAL_PAGES.get(pathname) : undefined;
        // Traffic figures are not for everyone who can reach the port: with --auth, /metrics and
        // the figures of / and /health need the credentials (the rest of those pages stays open:
        // health checks, and `env` reading which CA the proxy uses).
        const figures = page !== undefined && (config.metricsOpen === true || config.auth === undefined || authorised(line.headers) || scraperAuthorised(line.headers));
        if (page === 'metrics' && !figures) {
          return refuse(401, 'mimo-proxy needs the --auth credentials for /metrics (Basic, in Authorization or Proxy-Authorization)', shape);
        }
        if (page) return { kind: 'local', page, figures };
        const upstreamPath = directPath(line.method, url, config.upstream);
        if (upstreamPath === undefined) {
          return refuse(
            404,
            `mimo-proxy has no ${line.method ?? 'GET'} ${pathname}. Use it as an HTTPS proxy (HTTPS_PROXY), or in direct mode: POST /v1/chat/completions, POST /v1/responses, POST /anthropic/v1/messages, GET /v1/models. Pages: /, /health, /ca.pem, /metrics`,
            shape,
          );
        }
        // Direct mode relays to --upstream: with --auth it needs the credentials too.
        if (!authorised(line.headers)) return refuse(407, PROXY_AUTH_REQUIRED, shape);
        return relay('direct', upstream, upstreamTls, shape, { url: upstreamPath, hostHeader: config.upstream.host, provider: directProvider });
      }
      if (!authorised(line.headers)) return refuse(407, PROXY_AUTH_REQUIRED, shape);
      const target = httpTarget(url);
      if (!target) return refuse(400, 'mimo-proxy forwards http:// URLs; use CONNECT (HTTPS_PROXY) for https', shape);
      // Plain http:// is forwarded unchanged, to our hosts too (the README says so): only what
      // arrives over an intercepted TLS connection or in direct mode is rewritten.
      return relay('passthrough', { host: unbracket(target.hostname), port: Number(target.port) || 80 }, false, shape);
    },
  };
}
