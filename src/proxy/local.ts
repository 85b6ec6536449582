/**
 * What the proxy answers itself, for requests addressed to it (origin-form):
 *   GET /health   200 {"ok":true,...counters}
 *   GET /         status: HTML for a browser, JSON for Accept: application/json
 *   GET /ca.pem   the CA certificate, to install on another device
 * and direct mode, for clients whose base URL can be edited: chat
 * completions and models under / or /v1 go to --upstream, and Anthropic
 * messages under /anthropic to the upstream host's /anthropic base, through
 * the same hooks as intercepted traffic.
 */
import type http from 'node:http';
import { sendJsonError } from './http-error.js';

export interface StatusReport {
  name: 'mimo-proxy';
  version: string;
  uptimeSeconds: number;
  listen: string;
  domains: string[];
  upstream: string;
  degrade: string;
  ca: { path: string; fingerprint256: string; notAfter: string; warning: string | undefined };
  cache: Record<string, number | boolean | string>;
  counters: Record<string, number>;
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
  const m = /^(?:\/v1)?(\/chat\/completions|\/models(?:\/[A-Za-z0-9._:-]+)?)\/?$/.exec(pathname);
  if (!m) return undefined;
  const suffix = m[1] as string;
  const wanted = suffix === '/chat/completions' ? 'POST' : 'GET';
  if (method !== wanted) return undefined;
  return upstream.pathname.replace(/\/+$/, '') + suffix + query;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function statusHtml(report: StatusReport): string {
  const rows = (entries: [string, unknown][]): string =>
    entries.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>mimo-proxy</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:50em}th{text-align:left;padding-right:1em;font-weight:500;color:#555}td{font-family:ui-monospace,monospace}h2{margin-top:1.5em}</style></head><body>
<h1>mimo-proxy ${escapeHtml(report.version)}</h1>
<p>Listening on ${escapeHtml(report.listen)}, up ${report.uptimeSeconds}s. Intercepting ${escapeHtml(report.domains.join(', '))} (and subdomains); everything else is tunnelled untouched.</p>
<h2>CA</h2><table>${rows([['path', report.ca.path], ['SHA-256', report.ca.fingerprint256], ['expires', report.ca.notAfter], ['warning', report.ca.warning ?? 'none']])}</table>
<p><a href="/ca.pem">Download ca.pem</a> to trust it on another device.</p>
<h2>Reasoning cache</h2><table>${rows(Object.entries(report.cache))}</table>
<h2>Counters</h2><table>${rows(Object.entries(report.counters))}</table>
</body></html>`;
}

/** Serve a local page; false when the request is not one of them (and was not answered). */
export function serveLocal(req: http.IncomingMessage, res: http.ServerResponse, report: () => StatusReport, caPem: string): boolean {
  const pathname = (req.url ?? '/').split('?')[0];
  const get = req.method === 'GET' || req.method === 'HEAD';
  if (pathname === '/health' && get) {
    const r = report();
    sendJson(res, 200, { ok: true, version: r.version, uptimeSeconds: r.uptimeSeconds, cache: r.cache, counters: r.counters });
    return true;
  }
  if (pathname === '/ca.pem' && get) {
    res.writeHead(200, {
      'content-type': 'application/x-pem-file',
      'content-disposition': 'attachment; filename="mimo-proxy-ca.pem"',
      'content-length': Buffer.byteLength(caPem),
    });
    res.end(caPem);
    return true;
  }
  if (pathname === '/' && get) {
    const accept = String(req.headers.accept ?? '');
    if (accept.includes('json') && !accept.includes('text/html')) {
      sendJson(res, 200, report());
    } else {
      const body = statusHtml(report());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    }
    return true;
  }
  return false;
}

export function notFound(res: http.ServerResponse, method: string | undefined, pathname: string): void {
  sendJsonError(
    res,
    404,
    `mimo-proxy has no ${method ?? 'GET'} ${pathname}. Use it as an HTTPS proxy (HTTPS_PROXY), or in direct mode: POST /v1/chat/completions, GET /v1/models. Pages: /, /health, /ca.pem`,
  );
}
