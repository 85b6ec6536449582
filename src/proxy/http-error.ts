/**
 * The JSON errors the proxy itself answers with, in the OpenAI error shape so
 * that clients show the message instead of choking on a text line.
 */
import type http from 'node:http';

export const ERROR_TYPE = 'mimo_proxy_error';

export function errorBody(message: string): string {
  return JSON.stringify({ error: { message, type: ERROR_TYPE } });
}

/** Answer with a JSON error if nothing was sent yet; otherwise cut the response so the client cannot take it for complete. */
export function sendJsonError(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = errorBody(message);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

export class UpstreamTimeoutError extends Error {
  readonly code = 'UPSTREAM_TIMEOUT';
  constructor(ms: number) {
    super(`no answer from upstream for ${Math.round(ms / 1000)}s`);
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME|UNSPECIFIED/;

/** What went wrong reaching `target`, as a status and a message (never a key, never message text). */
export function describeUpstreamError(err: NodeJS.ErrnoException, target: string): { status: number; message: string } {
  const code = err.code ?? '';
  if (err instanceof UpstreamTimeoutError || code === 'ETIMEDOUT') {
    return { status: 504, message: `upstream ${target} timed out: ${err.message}` };
  }
  if (code === 'ECONNREFUSED') return { status: 502, message: `could not connect to upstream ${target}: connection refused` };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { status: 502, message: `could not resolve upstream ${target} (${code})` };
  if (TLS_CODES.test(code) || /certificate/i.test(err.message)) {
    return { status: 502, message: `upstream ${target} failed TLS verification (${code || err.message}); the proxy always verifies upstream certificates (add a CA with --upstream-ca if this upstream is yours)` };
  }
  if (code === 'UPSTREAM_PROTOCOL_ERROR') return { status: 502, message: `upstream ${target} sent an answer mimo-proxy cannot relay: ${err.message}` };
  if (code === 'ECONNRESET' || err.message === 'socket hang up') return { status: 502, message: `upstream ${target} closed the connection (${code || err.message})` };
  return { status: 502, message: `upstream ${target} failed: ${code || err.message}` };
}
