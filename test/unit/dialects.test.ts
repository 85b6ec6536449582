import { describe, expect, it } from 'vitest';
import { DIALECTS, dialectNamed } from '../../src/dialects.js';
import { PROVIDERS, providerById, surfaceFor, type Provider } from '../../src/providers.js';

const mimo = providerById('mimo') as Provider;
/** The dialect MiMo's surfaces give a request, as the proxy finds it (routes.ts, then plugin.ts). */
const served = (method: string | undefined, path: string): string | undefined => {
  const name = surfaceFor(mimo, method, path);
  return name === undefined ? undefined : dialectNamed(name)?.name;
};

describe('the dialect registry', () => {
  it('serves chat completions and the Responses API on any base path, and the Anthropic messages endpoint (MiMo)', () => {
    for (const path of ['/v1/responses', '/responses', '/v1/responses/', '/openai/v1/responses?x=1']) {
      expect(served('POST', path), path).toBe('responses');
    }
    for (const path of ['/v1/chat/completions', '/chat/completions', '/v1/chat/completions/', '/openai/v1/chat/completions?x=1']) {
      expect(served('POST', path), path).toBe('chat');
    }
    for (const path of ['/anthropic/v1/messages', '/anthropic/v1/messages/', '/anthropic/v1/messages?beta=true']) {
      expect(served('POST', path), path).toBe('anthropic');
    }
  });

  it('serves nothing else: other paths, other methods, the Responses API\'s sub-paths', () => {
    for (const [method, path] of [['POST', '/v1/responses/compact'], ['GET', '/v1/responses'], ['POST', '/v1/responses/resp_1/cancel'], ['POST', '/v1/messages'], ['POST', '/v1/chat/completions/extra'], ['GET', '/v1/chat/completions'], [undefined, '/anthropic/v1/messages'], ['POST', '/v1/models']] as const) {
      expect(served(method, path), `${method} ${path}`).toBeUndefined();
    }
  });

  it('names every dialect once (the cache scopes entries by the name), and every surface of every provider names one', () => {
    const names = DIALECTS.map((dialect) => dialect.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9-]*$/);
    for (const provider of PROVIDERS) for (const surface of provider.surfaces) expect(names, `${provider.id}: ${surface.dialect}`).toContain(surface.dialect);
    // MiMo serves every dialect.
    expect([...new Set(mimo.surfaces.map((s) => s.dialect))].sort()).toEqual([...names].sort());
  });
});
