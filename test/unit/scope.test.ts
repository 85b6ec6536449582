import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { credentialScope } from '../../src/reasoning/scope.js';

const KEY = 'sk-测试-0123456789abcdef';

function expected(key: string): string {
  return 'k:' + createHash('sha256').update('mimo-proxy-scope\0' + key).digest('hex').slice(0, 32);
}

describe('credentialScope', () => {
  it('hashes a bearer token with the documented prefix', () => {
    expect(credentialScope({ authorization: `Bearer ${KEY}` })).toBe(expected(KEY));
  });

  it('reads the bearer scheme case-insensitively', () => {
    const scope = credentialScope({ authorization: `Bearer ${KEY}` });
    expect(credentialScope({ authorization: `bearer ${KEY}` })).toBe(scope);
    expect(credentialScope({ authorization: `BEARER   ${KEY}` })).toBe(scope);
  });

  it('gives the same scope for the same key whichever header carries it', () => {
    const bearer = credentialScope({ authorization: `Bearer ${KEY}` });
    expect(credentialScope({ 'api-key': KEY })).toBe(bearer);
    expect(credentialScope({ 'x-api-key': KEY })).toBe(bearer);
  });

  it('prefers bearer over api-key and api-key over x-api-key', () => {
    expect(credentialScope({ authorization: 'Bearer one', 'api-key': 'two', 'x-api-key': 'three' })).toBe(expected('one'));
    expect(credentialScope({ 'api-key': 'two', 'x-api-key': 'three' })).toBe(expected('two'));
    expect(credentialScope({ 'x-api-key': 'three' })).toBe(expected('three'));
  });

  it('gives different keys different scopes', () => {
    expect(credentialScope({ authorization: 'Bearer key-a' })).not.toBe(credentialScope({ authorization: 'Bearer key-b' }));
  });

  it('calls a request without any key anonymous', () => {
    expect(credentialScope({})).toBe('anonymous');
    expect(credentialScope({ authorization: 'Bearer ', 'api-key': '  ' })).toBe('anonymous');
  });

  it('keeps users of another auth scheme apart instead of merging them as anonymous', () => {
    const a = credentialScope({ authorization: 'Basic dXNlcjE6cGFzcw==' });
    const b = credentialScope({ authorization: 'Basic dXNlcjI6cGFzcw==' });
    expect(a).toMatch(/^k:[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
  });

  it('never contains the raw key', () => {
    const key = 'abcdef0123456789abcdef0123456789';
    const scope = credentialScope({ authorization: `Bearer ${key}` });
    expect(scope).toMatch(/^k:[0-9a-f]{32}$/);
    expect(scope).not.toContain(key);
    expect(scope.includes(key.slice(0, 16))).toBe(false);
  });
});
