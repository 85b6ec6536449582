import { describe, expect, it } from 'vitest';
import { errorBody, errorEvent, errorShapeFor, rawHttpError } from '../../src/proxy/http-error.js';

describe('the error shapes', () => {
  it("takes Anthropic's shape for targets under /anthropic, origin-form or absolute-form, and OpenAI's for the rest", () => {
    for (const target of ['/anthropic', '/anthropic/v1/messages', '/anthropic?x', 'http://api.xiaomimimo.com/anthropic/v1/messages', 'https://h:8443/anthropic#x']) {
      expect(errorShapeFor(target), target).toBe('anthropic');
    }
    for (const target of [undefined, '', '/', '/v1/chat/completions', '/anthropicx', '/v1/anthropic', 'http://anthropic/v1', 'api.xiaomimimo.com:443', '/v1/responsesx', '/v1/responses/resp_1', '/responses-api']) {
      expect(errorShapeFor(target), String(target)).toBe('openai');
    }
    for (const target of ['/v1/responses', '/responses', '/v1/responses/', '/v1/responses?x=1', 'https://api.xiaomimimo.com/v1/responses']) {
      expect(errorShapeFor(target), target).toBe('responses');
    }
  });

  it("writes Anthropic's error type for each status as its API does, and OpenAI's shape with our type", () => {
    const types: Array<[number, string]> = [
      [400, 'invalid_request_error'],
      [401, 'authentication_error'],
      [404, 'not_found_error'],
      [407, 'invalid_request_error'],
      [429, 'rate_limit_error'],
      [501, 'api_error'],
      [502, 'api_error'],
      [504, 'timeout_error'],
    ];
    for (const [status, type] of types) {
      expect(JSON.parse(errorBody('anthropic', status, '上游 failed')), String(status)).toEqual({ type: 'error', error: { type, message: '上游 failed' } });
      expect(JSON.parse(errorBody('openai', status, '上游 failed')), String(status)).toEqual({ error: { message: '上游 failed', type: 'mimo_proxy_error' } });
    }
  });

  it('ends a stream with an event each client reads: named `error` for Anthropic, plain data for OpenAI, response.failed for the Responses API', () => {
    expect(errorEvent('anthropic', 502, 'cut')).toBe(`event: error\ndata: ${errorBody('anthropic', 502, 'cut')}\n\n`);
    expect(errorEvent('openai', 502, 'cut')).toBe(`data: ${errorBody('openai', 502, 'cut')}\n\n`);
    // The Responses API: OpenAI's JSON body, and in a stream its response.failed event (Codex shows its message).
    expect(errorBody('responses', 502, 'cut')).toBe(errorBody('openai', 502, 'cut'));
    const [name, data] = errorEvent('responses', 504, '上游 timed out').split('\n') as [string, string];
    expect(name).toBe('event: response.failed');
    expect(JSON.parse(data.slice('data: '.length))).toEqual({ type: 'response.failed', response: { object: 'response', status: 'failed', error: { code: 'mimo_proxy_error', message: '上游 timed out' }, output: [] } });
  });

  it('frames a raw answer by its byte length, closes it, and challenges a 407', () => {
    const raw = rawHttpError(407, 'proxy authentication required');
    const [head, body] = raw.split('\r\n\r\n') as [string, string];
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 407 Proxy Authentication Required');
    expect(head).toContain('\r\nproxy-authenticate: Basic realm="mimo-proxy"');
    expect(head).toContain('\r\nconnection: close');
    expect(head).toContain(`\r\ncontent-length: ${Buffer.byteLength(body)}`);
    expect(rawHttpError(502, '证书')).toMatch(new RegExp(`^HTTP/1.1 502 Bad Gateway\\r\\n(?!proxy-authenticate)[^]*content-length: ${Buffer.byteLength(errorBody('openai', 502, '证书'))}\\r\\n`));
  });
});
