import { describe, expect, it } from 'vitest';
import { DIALECTS, dialectFor } from '../../src/dialects.js';

describe('the dialect registry', () => {
  it('serves chat completions and the Responses API on any base path, and the Anthropic messages endpoint', () => {
    for (const path of ['/v1/responses', '/responses', '/v1/responses/', '/openai/v1/responses?x=1']) {
      expect(dialectFor('POST', path)?.name, path).toBe('responses');
    }
    for (const path of ['/v1/chat/completions', '/chat/completions', '/v1/chat/completions/', '/openai/v1/chat/completions?x=1']) {
      expect(dialectFor('POST', path)?.name, path).toBe('chat');
    }
    for (const path of ['/anthropic/v1/messages', '/anthropic/v1/messages/', '/anthropic/v1/messages?beta=true']) {
      expect(dialectFor('POST', path)?.name, path).toBe('anthropic');
    }
  });

  it('serves nothing else: other paths, other methods, the Responses API\'s sub-paths', () => {
    for (const [method, path] of [['POST', '/v1/responses/compact'], ['GET', '/v1/responses'], ['POST', '/v1/responses/resp_1/cancel'], ['POST', '/v1/messages'], ['POST', '/v1/chat/completions/extra'], ['GET', '/v1/chat/completions'], [undefined, '/anthropic/v1/messages'], ['POST', '/v1/models']] as const) {
      expect(dialectFor(method, path), `${method} ${path}`).toBeUndefined();
    }
  });

  it('names every dialect once (the cache scopes entries by the name)', () => {
    const names = DIALECTS.map((route) => route.dialect.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9-]*$/);
  });
});
