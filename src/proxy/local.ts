/**
 * The pages the proxy serves itself (routes.ts decides which request gets one):
 *   GET /health   200 {"ok":true,...counters}
 *   GET /         status: HTML for a browser, JSON for Accept: application/json
 *   GET /ca.pem   the CA certificate, to install on another device
 */
import type http from 'node:http';
import type { LocalPage } from './routes.js';

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
  counters: Record<string, number>;
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
<p>Listening on ${escapeHtml(report.listen)}, up ${report.uptimeSeconds}s. Intercepting ${escapeHtml(report.domains.join(', '))} (and subdomains) for ${escapeHtml((report.providers ?? ['mimo']).join(', '))}; everything else is tunnelled untouched.</p>
<h2>CA</h2><table>${rows([['path', report.ca.path], ['SHA-256', report.ca.fingerprint256], ['expires', report.ca.notAfter], ['warning', report.ca.warning ?? 'none']])}</table>
<p><a href="/ca.pem">Download ca.pem</a> to trust it on another device.</p>
<h2>Reasoning cache</h2><table>${rows(Object.entries(report.cache))}</table>
<h2>Counters</h2><table>${rows(Object.entries(report.counters))}</table>
</body></html>`;
}

/** Serve one of the local pages. */
export function serveLocal(page: LocalPage, req: http.IncomingMessage, res: http.ServerResponse, report: () => StatusReport, caPem: string): void {
  if (page === 'health') {
    const r = report();
    sendJson(res, 200, { ok: true, version: r.version, uptimeSeconds: r.uptimeSeconds, cache: r.cache, counters: r.counters });
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
    } else {
      const body = statusHtml(report());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    }
  }
}
