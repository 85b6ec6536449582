import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseArgs, resolveConfig } from '../../src/cli/options.js';
import { createRouter, type Router } from '../../src/proxy/routes.js';
import { providerById } from '../../src/providers.js';

const USER_PASS = 'alice:pw';
const basic = (s: string): string => `Basic ${Buffer.from(s).toString('base64')}`;

function router(...argv: string[]): Router {
  return createRouter(resolveConfig(parseArgs(argv).options));
}

const line = (method: string, url: string, headers: http.IncomingHttpHeaders = {}) => ({ method, url, headers });

describe('routing a CONNECT', () => {
  const r = router('--connect-to', 'api.xiaomimimo.com:443:127.0.0.1:9443', '--connect-to', 'example.com:443:127.0.0.1:9444');

  it('terminates TLS for our hosts and their subdomains, named as the client named them', () => {
    expect(r.connect(line('CONNECT', 'api.xiaomimimo.com:443'))).toEqual({ kind: 'terminate', endpoint: { host: 'api.xiaomimimo.com', port: 443 } });
    expect(r.connect(line('CONNECT', 'Token-Plan-CN.xiaomimimo.com.:8443'))).toEqual({ kind: 'terminate', endpoint: { host: 'token-plan-cn.xiaomimimo.com', port: 8443 } });
  });

  it('tunnels look-alikes, other hosts and IP literals, to where --connect-to sends them', () => {
    expect(r.connect(line('CONNECT', 'evilxiaomimimo.com:443'))).toEqual({ kind: 'tunnel', to: { host: 'evilxiaomimimo.com', port: 443 } });
    expect(r.connect(line('CONNECT', 'xiaomimimo.com.evil.net:443'))).toEqual({ kind: 'tunnel', to: { host: 'xiaomimimo.com.evil.net', port: 443 } });
    expect(r.connect(line('CONNECT', 'example.com:443'))).toEqual({ kind: 'tunnel', to: { host: '127.0.0.1', port: 9444 } });
    expect(r.connect(line('CONNECT', '[::1]:443'))).toEqual({ kind: 'tunnel', to: { host: '::1', port: 443 } });
    expect(r.connect(line('CONNECT', '10.0.0.1:443'))).toEqual({ kind: 'tunnel', to: { host: '10.0.0.1', port: 443 } });
  });

  it('refuses a target that is not host:port with 400', () => {
    for (const target of ['api.xiaomimimo.com', 'http://api.xiaomimimo.com:443', 'user@api.xiaomimimo.com:443', 'api.xiaomimimo.com:443/x', 'a.com:0']) {
      expect(r.connect(line('CONNECT', target)), target).toMatchObject({ kind: 'refuse', status: 400 });
    }
  });

  it('with --auth, asks for the credentials before it looks at the target', () => {
    const authed = router('--auth', USER_PASS);
    expect(authed.connect(line('CONNECT', 'api.xiaomimimo.com:443'))).toMatchObject({ kind: 'refuse', status: 407 });
    expect(authed.connect(line('CONNECT', 'not a target'))).toMatchObject({ kind: 'refuse', status: 407 });
    expect(authed.connect(line('CONNECT', 'api.xiaomimimo.com:443', { 'proxy-authorization': basic('alice:nope') }))).toMatchObject({ status: 407 });
    expect(authed.connect(line('CONNECT', 'api.xiaomimimo.com:443', { 'proxy-authorization': basic(USER_PASS) })).kind).toBe('terminate');
  });
});

describe('routing a request addressed to the proxy (origin-form)', () => {
  const r = router('--upstream', 'https://api.xiaomimimo.com/v1', '--connect-to', 'api.xiaomimimo.com:443:127.0.0.1:9443');

  it('serves the local pages to GET and HEAD only', () => {
    expect(r.request(line('GET', '/health'))).toEqual({ kind: 'local', page: 'health', figures: true });
    expect(r.request(line('HEAD', '/?x=1'))).toEqual({ kind: 'local', page: 'status', figures: true });
    expect(r.request(line('GET', '/ca.pem'))).toEqual({ kind: 'local', page: 'ca', figures: true });
    expect(r.request(line('POST', '/health'))).toMatchObject({ kind: 'refuse', status: 404 });
  });

  it('sends the API paths to --upstream in direct mode, with its path and Host, over TLS to where --connect-to says', () => {
    expect(r.request(line('POST', '/v1/chat/completions', { host: '127.0.0.1:8899' }))).toEqual({
      kind: 'direct',
      host: 'api.xiaomimimo.com',
      port: 443,
      to: { host: '127.0.0.1', port: 9443 },
      tls: true,
      shape: 'openai',
      url: '/v1/chat/completions',
      hostHeader: 'api.xiaomimimo.com',
      provider: providerById('mimo'),
    });
    expect(r.request(line('POST', '/chat/completions?x=1'))).toMatchObject({ kind: 'direct', url: '/v1/chat/completions?x=1' });
    expect(r.request(line('POST', '/v1/responses'))).toMatchObject({ kind: 'direct', url: '/v1/responses' });
    expect(r.request(line('POST', '/responses?x=1'))).toMatchObject({ kind: 'direct', url: '/v1/responses?x=1' });
    expect(r.request(line('GET', '/models/mimo-v2.6-pro'))).toMatchObject({ kind: 'direct', url: '/v1/models/mimo-v2.6-pro' });
    expect(r.request(line('POST', '/anthropic/v1/messages'))).toMatchObject({ kind: 'direct', url: '/anthropic/v1/messages' });
  });

  it('keeps a plain-HTTP upstream on its port, without TLS', () => {
    expect(router('--upstream', 'http://[::1]:8080/base/v1').request(line('POST', '/v1/chat/completions'))).toMatchObject({
      kind: 'direct',
      host: '::1',
      port: 8080,
      tls: false,
      url: '/base/v1/chat/completions',
      hostHeader: '[::1]:8080',
    });
  });

  it('answers 404 for any other method or path', () => {
    for (const [method, url] of [['GET', '/v1/chat/completions'], ['POST', '/v1/models'], ['GET', '/anthropic/v1/messages'], ['GET', '/v1/responses'], ['POST', '/v1/responses/compact'], ['GET', '/nope']] as const) {
      expect(r.request(line(method, url)), `${method} ${url}`).toMatchObject({ kind: 'refuse', status: 404, message: expect.stringContaining(url) });
    }
  });

  it('with --auth, asks direct mode for the credentials and keeps the pages (without their figures) and the 404 open', () => {
    const authed = router('--auth', USER_PASS);
    expect(authed.request(line('POST', '/v1/chat/completions'))).toMatchObject({ kind: 'refuse', status: 407 });
    expect(authed.request(line('POST', '/v1/chat/completions', { 'proxy-authorization': basic(USER_PASS) })).kind).toBe('direct');
    expect(authed.request(line('GET', '/health'))).toEqual({ kind: 'local', page: 'health', figures: false });
    expect(authed.request(line('GET', '/', { authorization: basic(USER_PASS) }))).toEqual({ kind: 'local', page: 'status', figures: true });
    expect(authed.request(line('GET', '/', { 'proxy-authorization': basic(USER_PASS) }))).toEqual({ kind: 'local', page: 'status', figures: true });
    expect(authed.request(line('GET', '/nope'))).toMatchObject({ status: 404 });
  });
});

describe('routing a proxy request (absolute-form)', () => {
  const r = router('--connect-to', 'plain.xiaomimimo.com:80:127.0.0.1:9080');

  it('passes http:// through unchanged, our hosts too, to where --connect-to says', () => {
    expect(r.request(line('POST', 'http://plain.xiaomimimo.com/v1/chat/completions'))).toEqual({
      kind: 'passthrough',
      host: 'plain.xiaomimimo.com',
      port: 80,
      to: { host: '127.0.0.1', port: 9080 },
      tls: false,
      shape: 'openai',
    });
    expect(r.request(line('GET', 'http://[::1]:8080/x'))).toMatchObject({ kind: 'passthrough', host: '::1', port: 8080, to: { host: '::1', port: 8080 } });
  });

  it('refuses what is not an http:// URL with 400', () => {
    for (const url of ['https://api.xiaomimimo.com/v1/models', 'ftp://example.com/', 'http://']) {
      expect(r.request(line('GET', url)), url).toMatchObject({ kind: 'refuse', status: 400 });
    }
  });

  it('with --auth, asks for the credentials first', () => {
    const authed = router('--auth', USER_PASS);
    expect(authed.request(line('GET', 'http://example.com/'))).toMatchObject({ status: 407 });
    expect(authed.request(line('GET', 'https://example.com/'))).toMatchObject({ status: 407 });
    expect(authed.request(line('GET', 'http://example.com/', { 'proxy-authorization': `basic ${Buffer.from(USER_PASS).toString('base64')}` })).kind).toBe('passthrough');
  });
});

describe('routing a request inside an intercepted TLS connection', () => {
  const r = router('--connect-to', 'api.xiaomimimo.com:443:127.0.0.1:9443', '--auth', USER_PASS);
  const endpoint = { host: 'api.xiaomimimo.com', port: 443 };

  it('relays it to the CONNECT target over TLS, needing no credentials (the CONNECT had them)', () => {
    expect(r.request(line('POST', '/v1/chat/completions', { host: 'api.xiaomimimo.com' }), endpoint)).toEqual({
      kind: 'intercept',
      host: 'api.xiaomimimo.com',
      port: 443,
      to: { host: '127.0.0.1', port: 9443 },
      tls: true,
      shape: 'openai',
      hostHeader: undefined,
      provider: providerById('mimo'),
    });
  });

  it('gives an HTTP/1.0 request without Host the CONNECT target as its Host', () => {
    expect(r.request(line('GET', '/v1/models'), endpoint)).toMatchObject({ hostHeader: 'api.xiaomimimo.com' });
    expect(r.request(line('GET', '/v1/models'), { host: 'api.xiaomimimo.com', port: 8443 })).toMatchObject({ hostHeader: 'api.xiaomimimo.com:8443' });
  });
});

describe('protocol upgrades', () => {
  const r = router();
  const websocket = { upgrade: 'websocket', connection: 'keep-alive, Upgrade' };

  it('are refused with 501 in every form, before anything else', () => {
    expect(r.request(line('GET', '/v1/models', websocket))).toMatchObject({ kind: 'refuse', status: 501 });
    expect(r.request(line('GET', '/health', websocket))).toMatchObject({ kind: 'refuse', status: 501 });
    expect(r.request(line('GET', 'http://example.com/', websocket))).toMatchObject({ kind: 'refuse', status: 501 });
    expect(r.request(line('GET', '/', websocket), { host: 'api.xiaomimimo.com', port: 443 })).toMatchObject({ kind: 'refuse', status: 501 });
  });

  it('are no reason to refuse when only h2c is offered, or Connection does not name the upgrade', () => {
    expect(r.request(line('GET', '/v1/models', { upgrade: 'h2c', connection: 'Upgrade, HTTP2-Settings' })).kind).toBe('direct');
    expect(r.request(line('GET', '/v1/models', { upgrade: 'websocket' })).kind).toBe('direct');
  });
});

describe('the error shape a route names', () => {
  const r = router('--auth', USER_PASS);
  const ok = { 'proxy-authorization': basic(USER_PASS) };
  const endpoint = { host: 'api.xiaomimimo.com', port: 443 };

  it("is Anthropic's for targets under /anthropic, in every form, refused or relayed", () => {
    expect(r.request(line('POST', '/anthropic/v1/messages', ok))).toMatchObject({ kind: 'direct', shape: 'anthropic' });
    expect(r.request(line('POST', '/anthropic/v1/messages'))).toMatchObject({ kind: 'refuse', status: 407, shape: 'anthropic' });
    expect(r.request(line('GET', '/anthropic/v1/models'))).toMatchObject({ kind: 'refuse', status: 404, shape: 'anthropic' });
    expect(r.request(line('POST', '/anthropic/v1/messages/count_tokens?beta=true'), endpoint)).toMatchObject({ kind: 'intercept', shape: 'anthropic' });
    expect(r.request(line('POST', '/anthropic', { upgrade: 'websocket', connection: 'upgrade' }), endpoint)).toMatchObject({ status: 501, shape: 'anthropic' });
    expect(r.request(line('POST', 'http://plain.xiaomimimo.com/anthropic/v1/messages', ok))).toMatchObject({ kind: 'passthrough', shape: 'anthropic' });
  });

  it("is OpenAI's everywhere else", () => {
    expect(r.request(line('POST', '/v1/chat/completions', ok))).toMatchObject({ kind: 'direct', shape: 'openai' });
    expect(r.request(line('POST', '/v1/chat/completions'))).toMatchObject({ status: 407, shape: 'openai' });
    expect(r.request(line('POST', '/anthropicx/v1/messages'))).toMatchObject({ status: 404, shape: 'openai' });
    expect(r.request(line('POST', '/v1/anthropic/v1/messages'), endpoint)).toMatchObject({ kind: 'intercept', shape: 'openai' });
    expect(r.connect(line('CONNECT', 'api.xiaomimimo.com:443'))).toMatchObject({ status: 407, shape: 'openai' });
  });
});

describe('routing by provider', () => {
  it('terminates only the enabled providers\' hosts: DeepSeek and Kimi are tunnelled unless enabled', () => {
    const only = router();
    for (const host of ['api.deepseek.com', 'api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com']) {
      expect(only.connect(line('CONNECT', `${host}:443`)).kind, host).toBe('tunnel');
    }
    const all = router('--providers', 'mimo,deepseek,kimi');
    for (const host of ['api.xiaomimimo.com', 'api.deepseek.com', 'api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com']) {
      expect(all.connect(line('CONNECT', `${host}:443`)).kind, host).toBe('terminate');
    }
    // Label boundary, as for MiMo's domain.
    for (const host of ['evilapi.deepseek.com.example', 'deepseek.com', 'notapi.deepseek.com.evil.net', 'moonshot.ai']) {
      expect(all.connect(line('CONNECT', `${host}:443`)).kind, host).toBe('tunnel');
    }
  });

  it('gives a request inside a terminated connection the provider of its CONNECT target', () => {
    const all = router('--providers', 'deepseek,kimi,mimo');
    const at = (host: string) => all.request(line('POST', '/v1/chat/completions', { host }), { host, port: 443 });
    expect(at('api.deepseek.com')).toMatchObject({ kind: 'intercept', provider: { id: 'deepseek' } });
    expect(at('api.kimi.com')).toMatchObject({ kind: 'intercept', provider: { id: 'kimi' } });
    expect(at('token-plan-sgp.xiaomimimo.com')).toMatchObject({ kind: 'intercept', provider: { id: 'mimo' } });
  });

  it('gives direct mode the provider of --upstream (enabled or not), else the first one enabled', () => {
    expect(router('--providers', 'mimo,deepseek', '--upstream', 'https://api.deepseek.com').request(line('POST', '/v1/chat/completions'))).toMatchObject({ kind: 'direct', url: '/chat/completions', provider: { id: 'deepseek' } });
    expect(router('--providers', 'kimi', '--upstream', 'https://127.0.0.1:9443/v1').request(line('POST', '/v1/chat/completions'))).toMatchObject({ kind: 'direct', provider: { id: 'kimi' } });
    // --upstream names a provider that is not enabled: its rules, not the first enabled one's.
    expect(router('--providers', 'deepseek').request(line('POST', '/v1/chat/completions'))).toMatchObject({ kind: 'direct', provider: { id: 'mimo' } });
    expect(router('--providers', 'mimo', '--upstream', 'https://api.moonshot.ai/v1').request(line('POST', '/v1/chat/completions'))).toMatchObject({ kind: 'direct', provider: { id: 'kimi' } });
  });
});
