/**
 * The errors the proxy answers with itself, in the error shape of the API the
 * client speaks, so that clients show the message instead of choking on it:
 *   openai     {"error":{"message":"...","type":"mimo_proxy_error"}}
 *   anthropic  {"type":"error","error":{"type":"api_error","message":"..."}}
 *              (MiMo's Anthropic-compatible base, /anthropic)
 *   responses  OpenAI's JSON shape; in a stream, the Responses API's own
 *              `response.failed` event (.../responses, what Codex reads)
 * as a JSON answer, as an answer written on a raw socket (CONNECT, requests
 * Node could not parse), or as the last event of a stream already under way.
 * This is the one place that knows these shapes.
 */
import http from 'node:http';

export const ERROR_TYPE = 'mimo_proxy_error';

/** The error shape a client reads: the one of the API its request went to. */
export type ErrorShape = 'openai' | 'anthropic' | 'responses';

/** MiMo's Anthropic-compatible API sits under /anthropic; the target may be origin-form or absolute-form. */
const ANTHROPIC_BASE = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*)?\/anthropic(?:[/?#]|$)/;
/** The Responses API: `POST .../responses` on any base path. */
const RESPONSES_PATH = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*)?(?:\/[^?#]*)?\/responses\/?(?:[?#]|$)/;

/** The error shape for a request target as the client sent it (before direct mode rewrites it). */
export function errorShapeFor(target: string | undefined): ErrorShape {
  if (ANTHROPIC_BASE.test(target ?? '')) return 'anthropic';
  return RESPONSES_PATH.test(target ?? '') ? 'responses' : 'openai';
}

/**
 * Anthropic's error type for a status (https://docs.claude.com/en/api/errors: other 4xx
 * are invalid_request_error; 504 is `timeout_error` in @anthropic-ai/sdk's ErrorType).
 */
function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
    default:
      return status < 500 ? 'invalid_request_error' : 'api_error';
  }
}

export function errorBody(shape: ErrorShape, status: number, message: string): string {
  if (shape === 'anthropic') return JSON.stringify({ type: 'error', error: { type: anthropicErrorType(status), message } });
  return JSON.stringify({ error: { message, type: ERROR_TYPE } });
}

/** A 407 must carry the challenge (RFC 9110 11.7.1); --auth takes Basic credentials. */
function challenge(status: number): Record<string, string> {
  if (status === 407) return { 'proxy-authenticate': 'Basic realm="mimo-proxy"' };
  return status === 401 ? { 'www-authenticate': 'Basic realm="mimo-proxy metrics"' } : {};
}

/** Answer with a JSON error if nothing was sent yet; otherwise cut the response so the client cannot take it for complete. */
export function sendJsonError(res: http.ServerResponse, status: number, message: string, shape: ErrorShape): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = errorBody(shape, status, message);
  res.writeHead(status, { ...challenge(status), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** A whole HTTP/1.1 error answer for a raw socket (no request path to take a shape from: the OpenAI one), closing it. */
export function rawHttpError(status: number, message: string): string {
  const body = errorBody('openai', status, message);
  const headers = { ...challenge(status), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n${lines.join('')}\r\n${body}`;
}

/**
 * The error as the last event of a stream under way (Anthropic clients only read events that
 * carry an `event:` name; Responses clients such as Codex report a stream's failure from its
 * `response.failed` event and treat any other end as a cut-off stream).
 */
export function errorEvent(shape: ErrorShape, status: number, message: string): string {
  if (shape === 'responses') {
    const data = { type: 'response.failed', response: { object: 'response', status: 'failed', error: { code: ERROR_TYPE, message }, output: [] } };
    return `event: response.failed\ndata: ${JSON.stringify(data)}\n\n`;
  }
  const data = errorBody(shape, status, message);
  return shape === 'anthropic' ? `event: error\ndata: ${data}\n\n` : `data: ${data}\n\n`;
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
