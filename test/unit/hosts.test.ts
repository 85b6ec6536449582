import { describe, expect, it } from 'vitest';
import { isDnsName, isOurHost, normaliseHost, parseDomains } from '../../src/net/hosts.js';
import { formatHostPort, parseConnectTarget } from '../../src/net/connect-target.js';
import { parseConnectTo, resolveDestination } from '../../src/net/connect-to.js';

describe('host matching', () => {
  const domains = parseDomains('xiaomimimo.com');

  it('matches the domain and every subdomain on a label boundary', () => {
    for (const host of ['xiaomimimo.com', 'api.xiaomimimo.com', 'token-plan-cn.xiaomimimo.com', 'A.B.XiaomiMimo.COM', 'api.xiaomimimo.com.']) {
      expect(isOurHost(host, domains), host).toBe(true);
    }
  });

  it('does not match look-alikes', () => {
    for (const host of ['evilxiaomimimo.com', 'xiaomimimo.com.evil.net', 'xiaomimimo.co', 'com', 'example.com', '127.0.0.1', '']) {
      expect(isOurHost(host, domains), host).toBe(false);
    }
  });

  it('parses a list of domains and refuses invalid ones with the option name', () => {
    expect(parseDomains('xiaomimimo.com, example.org *.foo.net')).toEqual(['xiaomimimo.com', 'example.org', 'foo.net']);
    expect(() => parseDomains('bad_domain')).toThrow(/--hosts/);
    expect(() => parseDomains('')).toThrow(/--hosts/);
    expect(() => parseDomains('com')).toThrow(/--hosts/);
    expect(() => parseDomains('1.2.3.4')).toThrow(/--hosts/); // an IP literal is never intercepted
  });

  it('puts names in one canonical form: lower-case, no brackets, no trailing dot', () => {
    expect(normaliseHost('API.XiaoMiMiMo.com.')).toBe('api.xiaomimimo.com');
    expect(normaliseHost('[::1]')).toBe('::1');
  });

  it('knows a DNS name: LDH labels of 1-63 characters, 253 in all, not ending in digits only', () => {
    for (const name of ['xiaomimimo.com', 'a', 'xn--fiq228c.example', '1a.b2', `${'a'.repeat(63)}.com`]) expect(isDnsName(name), name).toBe(true);
    const long = Array.from({ length: 64 }, () => 'abc').join('.'); // 255 characters
    for (const name of ['', '.a.com', 'a..com', 'a.com.', '-a.com', 'a-.com', 'a_b.com', 'A.com', '小米.com', 'a/b.com', '1.2.3.4', 'a.123', `${'a'.repeat(64)}.com`, long]) {
      expect(isDnsName(name), name).toBe(false);
    }
  });
});

describe('CONNECT targets', () => {
  it('accepts host:port and bracketed IPv6', () => {
    expect(parseConnectTarget('api.xiaomimimo.com:443')).toEqual({ host: 'api.xiaomimimo.com', port: 443 });
    expect(parseConnectTarget('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
    expect(parseConnectTarget('127.0.0.1:1')).toEqual({ host: '127.0.0.1', port: 1 });
  });

  it('refuses paths, userinfo, CRLF, missing or bad ports', () => {
    for (const bad of ['api.xiaomimimo.com', 'api.xiaomimimo.com:0', 'a.com:65536', 'user@a.com:443', 'a.com:443/x', 'a.com\r\nX: y:443', '[::1:443', '[zz]:443', ':443', 'a..b:443', '', 'a.com:443 ', 'http://a.com:443']) {
      expect(parseConnectTarget(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('formats IPv6 in brackets', () => {
    expect(formatHostPort('::1', 443)).toBe('[::1]:443');
    expect(formatHostPort('a.com', 80)).toBe('a.com:80');
  });
});

describe('--connect-to', () => {
  it('routes HOST:PORT to HOST2:PORT2 and leaves others alone', () => {
    const rules = [parseConnectTo('api.xiaomimimo.com:443:127.0.0.1:8443')];
    expect(resolveDestination(rules, 'api.xiaomimimo.com', 443)).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(resolveDestination(rules, 'api.xiaomimimo.com', 444)).toEqual({ host: 'api.xiaomimimo.com', port: 444 });
    expect(resolveDestination(rules, 'other.xiaomimimo.com', 443)).toEqual({ host: 'other.xiaomimimo.com', port: 443 });
  });

  it('supports empty fields as wildcards and IPv6 in brackets, first match wins', () => {
    const rules = [parseConnectTo('::[::1]:9000'), parseConnectTo('a.com:443:b.com:')];
    expect(resolveDestination(rules, 'anything.test', 1)).toEqual({ host: '::1', port: 9000 });
    expect(resolveDestination([rules[1]!], 'a.com', 443)).toEqual({ host: 'b.com', port: 443 });
  });

  it('refuses malformed rules and header or path injection with the option name', () => {
    for (const bad of ['a.com:443:b.com', 'a.com:443:b.com:99999', 'a.com:x:b.com:1', 'a.com\r\nX: 1:443:b.com:1', 'a.com:443:b.com/x:1', 'u@a.com:443:b.com:1', 'a.com:443:b.com:1:2']) {
      expect(() => parseConnectTo(bad), JSON.stringify(bad)).toThrow(/--connect-to/);
    }
  });
});
