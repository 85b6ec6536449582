/**
 * The JSON errors the proxy itself answers with, in the OpenAI error shape so
 * that clients show the message instead of choking on a text line: as an HTTP
 * answer, or written whole on a raw socket (CONNECT, requests Node could not parse).
 */
import http from 'node:http';

export const ERROR_TYPE = 'mimo_proxy_error';

export function errorBody(message: string): string {
  return JSON.stringify({ error: { message, type: ERROR_TYPE } });
}

/** A 407 must carry the challenge (RFC 9110 11.7.1); --auth takes Basic credentials. */
function challenge(status: number): Record<string, string> {
  return status === 407 ? { 'proxy-authenticate': 'Basic realm="mimo-proxy"' } : {};
}

/** Answer with a JSON error if nothing was sent yet; otherwise cut the response so the client cannot take it for complete. */
export function sendJsonError(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = errorBody(message);
  res.writeHead(status, { ...challenge(status), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** A whole HTTP/1.1 error answer for a raw socket, which it closes. */
export function rawHttpError(status: number, message: string): string {
  const body = errorBody(message);
  const headers = { ...challenge(status), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n${lines.join('')}\r\n${body}`;
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
