/**
 * The pages the proxy serves itself (routes.ts decides which request gets one):
 *   GET /health   200 {"ok":true,...counters}
 *   GET /         status: HTML for a browser, JSON for Accept: application/json
 * With --auth, a request without the credentials gets no traffic figures (routes.ts
 * decides): /health and the JSON status without counters, cache or store address, the
 * HTML status page a 401 that makes the browser ask for them.
 *   GET /ca.pem   the CA certificate, to install on another device
 *   GET /metrics  Prometheus text format (metrics.ts); routes.ts guards it with --auth
 * The HTML status page has no JavaScript: it reloads itself (meta refresh), so
 * what a browser shows is exactly what a plain fetch of the page reads.
 */
import type http from 'node:http';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import type { LocalPage } from './routes.js';

/** The status page reloads itself this often. */
export const STATUS_REFRESH_SECONDS = 5;

export interface StatusReport {
  name: 'mimo-proxy';
  version: string;
  uptimeSeconds: number;
  listen: string;
  domains: string[];
  /** The enabled providers' ids (absent in the answers of versions before providers). */
  providers?: string[];
  upstream: string;
  degrade: string;
  ca: { path: string; fingerprint256: string; notAfter: string; warning: string | undefined };
  cache: Record<string, number | boolean | string>;
  /** Where reasoning is kept besides memory, and whether it is usable now. */
  store: { kind: string; where: string; state: string; problem: string | undefined };
  counters: Record<string, number>;
  /** false: the traffic figures were withheld (--auth, and the request had no credentials); cache and counters are empty. */
  figures?: false;
}

/** What a request without the --auth credentials may see of the report: no counters, cache figures or store address. */
export function withoutFigures(report: StatusReport): StatusReport {
  return { ...report, cache: {}, counters: {}, store: { kind: report.store.kind, where: '', state: report.store.state, problem: undefined }, figures: false };
}

/** Asks a browser for the --auth credentials (the realm /metrics uses too). */
const AUTH_CHALLENGE = 'Basic realm="mimo-proxy metrics"';

/** Share of lookups answered, as a person reads it ("75.0% (3 of 4)"), or "no lookups yet". */
export function hitRate(hits: number, misses: number): string {
  const total = hits + misses;
  return total === 0 ? 'no lookups yet' : `${((100 * hits) / total).toFixed(1)}% (${hits} of ${total})`;
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
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const c = report.counters;
  const summary: [string, unknown][] = [
    ['hit rate', hitRate(num(report.cache.hits), num(report.cache.misses))],
    ['of which from the store', num(report.cache.storeHits)],
    ['reasoning put back', num(c.injected)],
    ['degraded: placeholders', num(c.placeholders)],
    ['degraded: flattened', num(c.flattened)],
    ['retried after the reasoning 400', num(c.retries)],
    ['store', `${report.store.kind} ${report.store.where}`],
    ['store state', report.store.problem ? `${report.store.state} (${report.store.problem})` : report.store.state],
  ];
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="${STATUS_REFRESH_SECONDS}"><title>mimo-proxy</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:50em}th{text-align:left;padding-right:1em;font-weight:500;color:#555}td{font-family:ui-monospace,monospace}h2{margin-top:1.5em}</style></head><body>
<h1>mimo-proxy ${escapeHtml(report.version)}</h1>
<p>Listening on ${escapeHtml(report.listen)}, up ${report.uptimeSeconds}s. Intercepting ${escapeHtml(report.domains.join(', '))} (and subdomains) for ${escapeHtml((report.providers ?? ['mimo']).join(', '))}; everything else is tunnelled untouched.</p>
<h2>CA</h2><table>${rows([['path', report.ca.path], ['SHA-256', report.ca.fingerprint256], ['expires', report.ca.notAfter], ['warning', report.ca.warning ?? 'none']])}</table>
<p><a href="/ca.pem">Download ca.pem</a> to trust it on another device.</p>
<h2>At a glance</h2><table id="summary">${rows(summary)}</table>
<p>This page reloads every ${STATUS_REFRESH_SECONDS}s. <a href="/metrics">/metrics</a> has the same figures for Prometheus.</p>
<h2>Reasoning cache</h2><table>${rows(Object.entries(report.cache))}</table>
<h2>Counters</h2><table>${rows(Object.entries(report.counters))}</table>
</body></html>`;
}

/** Serve one of the local pages. */
export function serveLocal(page: LocalPage, req: http.IncomingMessage, res: http.ServerResponse, report: () => StatusReport, caPem: string, metrics: () => string): void {
  if (page === 'metrics') {
    const body = metrics();
    res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  } else if (page === 'health') {
    const r = report();
    if (r.figures === false) sendJson(res, 200, { ok: true, version: r.version, uptimeSeconds: r.uptimeSeconds, figures: 'withheld: send the --auth credentials' });
    else sendJson(res, 200, { ok: true, version: r.version, uptimeSeconds: r.uptimeSeconds, cache: r.cache, store: r.store, counters: r.counters });
  } else if (page === 'ca') {
    res.writeHead(200, {
      'content-type': 'application/x-pem-file',
      'content-disposition': 'attachment; filename="mimo-proxy-ca.pem"',
      'content-length': Buffer.byteLength(caPem),
    });
    res.end(caPem);
  } else {
    const accept = String(req.headers.accept ?? '');
    if (accept.includes('json') && !accept.includes('text/html')) {
      sendJson(res, 200, report());
    } else if (report().figures === false) {
      // A person's page is its figures: the browser asks for the credentials.
      const body = '<!doctype html><title>mimo-proxy</title><p>mimo-proxy: this page needs the --auth credentials.</p>\n';
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'www-authenticate': AUTH_CHALLENGE, 'cache-control': 'no-store' });
      res.end(body);
    } else {
      const body = statusHtml(report());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    }
  }
}
