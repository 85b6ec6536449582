/**
 * GET /metrics and the status page, from a real proxy after real traffic:
 * the body must pass a strict reading of the Prometheus text format
 * (test/support/prometheus.ts), carry the figures the traffic made, and no
 * key, host or text in a label; with --auth it needs the credentials unless
 * --metrics-open. The status page has no JavaScript (it reloads itself with a
 * meta refresh), so a plain fetch reads exactly what a browser shows.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../src/dialects.js';
import { renderMetrics, escapeLabel } from '../../src/proxy/metrics.js';
import { Histogram, newCounters, newMetrics } from '../../src/stats.js';
import { runAnthropicConversation } from '../support/anthropic-conversation.js';
import { runConversation } from '../support/conversation.js';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Rig } from '../support/harness.js';
import { parsePrometheus, valueOf } from '../support/prometheus.js';
import { request } from '../support/proxy-client.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const MESSAGES = 'https://api.xiaomimimo.com/anthropic/v1/messages';

const basic = (credentials: string): string => `Basic ${Buffer.from(credentials).toString('base64')}`;

describe('the Prometheus reader used below', () => {
  it('refuses what Prometheus would refuse', () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{k="v"} 1\n';
    expect(() => parsePrometheus(ok)).not.toThrow();
    expect(() => parsePrometheus('a_total 1\n')).toThrow(/before its TYPE/);
    expect(() => parsePrometheus('# TYPE a_total counter\na_total{k="v} 1\n')).toThrow();
    expect(() => parsePrometheus('# TYPE a_total counter\na_total{k="\\x"} 1\n')).toThrow(/escape/);
    expect(() => parsePrometheus('# TYPE a_total counter\na_total 1\na_total 2\n')).toThrow(/duplicate/);
    expect(() => parsePrometheus('# TYPE a counter\na 1\n')).toThrow(/_total/);
    expect(() => parsePrometheus('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parsePrometheus('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n')).toThrow(/\+Inf/);
    expect(() => parsePrometheus('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n')).toThrow(/_count/);
    expect(() => parsePrometheus(ok.slice(0, -1))).toThrow(/newline/);
  });

  it('reads back label values escaped by the renderer, and histograms cumulative with +Inf = _count', () => {
    const metrics = newMetrics();
    const h = new Histogram([0.01, 0.1, 1]);
    for (const v of [0.005, 0.05, 0.05, 0.5, 7]) h.observe(v);
    metrics.ttfb.set('chat', h);
    const text = renderMetrics({
      counters: newCounters(),
      metrics,
      cache: { entries: 0, bytes: 0, hits: 0, misses: 0, storeHits: 0, persisted: false, storeEntries: 0, storeBytes: 0, storeReadErrors: 0, storeWriteErrors: 0 },
      store: { kind: 'memory' },
      storeLatency: new Histogram([0.001]),
      openConnections: 3,
      startedAt: 1,
      version: 'v"1\\2\n3',
    });
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const families = parsePrometheus(text);
    expect(families.get('mimo_proxy_info')!.samples[0]!.labels.version).toBe('v"1\\2\n3');
    const bucket = (le: string): number | undefined => valueOf(families, 'mimo_proxy_time_to_first_byte_seconds_bucket', { surface: 'chat', le });
    expect([bucket('0.01'), bucket('0.1'), bucket('1'), bucket('+Inf')]).toEqual([1, 3, 4, 5]);
    expect(valueOf(families, 'mimo_proxy_time_to_first_byte_seconds_count', { surface: 'chat' })).toBe(5);
    expect(valueOf(families, 'mimo_proxy_time_to_first_byte_seconds_sum', { surface: 'chat' })).toBeCloseTo(7.605, 6);
    expect(valueOf(families, 'mimo_proxy_open_connections')).toBe(3);
  });
});

describe('the documented label values', () => {
  it('name every surface a request is counted under (each dialect, and other), in the README and the family\'s help', () => {
    const surfaces = [...DIALECTS.map((dialect) => dialect.name), 'other'].sort();
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const row = readme.split('\n').find((line) => line.startsWith('| `mimo_proxy_requests_total` |'));
    const documented = [...(row?.split('`surface`')[1]?.split('`route`')[0]?.matchAll(/`([a-z]+)`/g) ?? [])].map((m) => m[1]).sort();
    expect(documented).toEqual(surfaces);
    const help = renderMetrics({ counters: newCounters(), metrics: newMetrics(), cache: { entries: 0, bytes: 0, hits: 0, misses: 0, storeHits: 0, persisted: false, storeEntries: 0, storeBytes: 0, storeReadErrors: 0, storeWriteErrors: 0 }, store: { kind: 'memory' }, storeLatency: new Histogram([1]), openConnections: 0, startedAt: 0, version: '0' })
      .split('\n')
      .find((line) => line.startsWith('# HELP mimo_proxy_requests_total '));
    for (const surface of surfaces) expect(help).toContain(surface);
  });
});

describe('GET /metrics after real traffic', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ toolRounds: 2 }, ['--no-persist']);
  });
  afterAll(() => stopRig(rig));

  it('passes the strict reader and counts requests, rewrites, hits, timings; no key, host or text in any label', async () => {
    const { h, agent } = rig;
    const ca = h.proxy.ca.caPem;
    await runConversation({ url: CHAT, agent, ca, key: 'sk-metrics-secret', stream: true });
    await runAnthropicConversation({ url: MESSAGES, agent, ca, key: 'sk-metrics-anthropic', stream: false });
    // A conversation from before the proxy ran: a placeholder.
    await runConversation({
      url: CHAT,
      agent,
      ca,
      key: 'sk-metrics-secret',
      stream: false,
      maxRounds: 1,
      history: [
        { role: 'user', content: '查天气' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_old', type: 'function', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }] },
        { role: 'tool', tool_call_id: 'call_old', content: '晴' },
      ],
    });
    const res = await request(`${h.proxy.url}/metrics`, { agent: new http.Agent() });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheus(res.text);
    const c = h.proxy.counters;

    expect(valueOf(families, 'mimo_proxy_requests_total', { surface: 'chat', route: 'intercept' })).toBe(4);
    expect(valueOf(families, 'mimo_proxy_requests_total', { surface: 'anthropic', route: 'intercept' })).toBe(3);
    expect(valueOf(families, 'mimo_proxy_rewrites_total', { kind: 'injected' })).toBe(c.injected);
    expect(c.injected).toBeGreaterThanOrEqual(6);
    expect(valueOf(families, 'mimo_proxy_rewrites_total', { kind: 'placeholder' })).toBe(1);
    expect(valueOf(families, 'mimo_proxy_rewrites_total', { kind: 'retried' })).toBe(c.retries);
    const stats = h.proxy.cache.stats();
    expect(valueOf(families, 'mimo_proxy_cache_hits_total', { level: 'memory' })).toBe(stats.hits);
    expect(valueOf(families, 'mimo_proxy_cache_misses_total', { level: 'memory' })).toBe(stats.misses);
    expect(stats.misses).toBeGreaterThan(0);
    expect(valueOf(families, 'mimo_proxy_store_up', { kind: 'memory' })).toBe(1);
    expect(valueOf(families, 'mimo_proxy_time_to_first_byte_seconds_count', { surface: 'chat' })).toBe(4);
    expect(valueOf(families, 'mimo_proxy_time_to_first_byte_seconds_count', { surface: 'anthropic' })).toBe(3);
    // Only the chat conversation streamed: 3 streamed answers.
    expect(valueOf(families, 'mimo_proxy_stream_duration_seconds_count', { surface: 'chat' })).toBe(3);
    expect(valueOf(families, 'mimo_proxy_stream_duration_seconds_count', { surface: 'anthropic' })).toBeUndefined();
    expect(valueOf(families, 'mimo_proxy_open_connections')).toBeGreaterThanOrEqual(1);
    expect(valueOf(families, 'mimo_proxy_upstream_errors_total', { class: 'timeout' })).toBe(0);
    expect(valueOf(families, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(valueOf(families, 'process_cpu_seconds_total')).toBeGreaterThan(0);

    for (const family of families.values()) {
      for (const sample of family.samples) {
        for (const value of Object.values(sample.labels)) expect(value).toMatch(/^[a-z0-9.+_-]*$/i);
      }
    }
    expect(res.text).not.toMatch(/sk-metrics|xiaomimimo|北京|127\.0\.0\.1/);
  });

  it('counts an upstream failure by its class', async () => {
    const { h, agent, fake } = rig;
    fake.options.resetAfterEvents = 1;
    try {
      // The client reads the SSE error event the proxy ends the stream with.
      await expect(runConversation({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: 'sk-metrics-reset', stream: true, maxRounds: 1 })).rejects.toThrow(/ECONNRESET/);
    } finally {
      fake.options.resetAfterEvents = undefined;
    }
    const families = parsePrometheus((await request(`${h.proxy.url}/metrics`, { agent: new http.Agent() })).text);
    expect(valueOf(families, 'mimo_proxy_upstream_errors_total', { class: 'reset' })).toBe(1);
  });

  it('shows hit rate, rewrites and degrades and the store on a status page that reloads itself', async () => {
    const { h } = rig;
    const page = await request(`${h.proxy.url}/`, { agent: new http.Agent(), headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<meta http-equiv="refresh" content="5">/);
    expect(page.text).not.toMatch(/<script/i);
    const stats = h.proxy.cache.stats();
    const rate = ((100 * stats.hits) / (stats.hits + stats.misses)).toFixed(1);
    expect(page.text).toContain(`<tr><th>hit rate</th><td>${rate}% (${stats.hits} of ${stats.hits + stats.misses})</td></tr>`);
    expect(page.text).toContain(`<tr><th>degraded: placeholders</th><td>1</td></tr>`);
    expect(page.text).toContain(`<tr><th>reasoning put back</th><td>${h.proxy.counters.injected}</td></tr>`);
    expect(page.text).toContain('<tr><th>store</th><td>memory only (--no-persist)</td></tr>');
    const health = (await request(`${h.proxy.url}/health`, { agent: new http.Agent() })).json();
    expect(health.store).toMatchObject({ kind: 'memory' });
  });
});

describe('the status page', () => {
  it('escapes what it prints: a certs folder named with markup shows as text, no tag of it reaches the page', async () => {
    const parent = tempDir('status-escape');
    const certsDir = path.join(parent, `<script>alert("x")</script><img src=x onerror='y'>&amp;`);
    const h = await startHarness(['--no-persist'], { certsDir });
    try {
      const page = await request(`${h.proxy.url}/`, { agent: new http.Agent(), headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      expect(page.text).not.toMatch(/<script|<img|onerror='/i);
      expect(page.text).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#60;img src=x onerror=&#39;y&#39;&#62;&#38;amp;');
    } finally {
      await h.stop();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('/metrics with --auth', () => {
  let fake: FakeMimo;
  beforeAll(async () => {
    fake = await startFakeMimo();
  });
  afterAll(() => fake.close());

  it('needs the credentials (Authorization as Prometheus sends them, or Proxy-Authorization); / and /health stay open without their figures', async () => {
    const h = await startHarness([...upstreamArgs(fake), '--no-persist', '--auth', 'scrape:pa55']);
    try {
      const agent = new http.Agent();
      const none = await request(`${h.proxy.url}/metrics`, { agent });
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Basic realm="mimo-proxy metrics"');
      expect(none.text).not.toContain('mimo_proxy_requests_total');
      expect((await request(`${h.proxy.url}/metrics`, { agent, headers: { authorization: basic('scrape:wrong') } })).status).toBe(401);
      const scraped = await request(`${h.proxy.url}/metrics`, { agent, headers: { authorization: basic('scrape:pa55') } });
      expect(scraped.status).toBe(200);
      expect(() => parsePrometheus(scraped.text)).not.toThrow();
      expect((await request(`${h.proxy.url}/metrics`, { agent, headers: { 'proxy-authorization': basic('scrape:pa55') } })).status).toBe(200);
      expect((await request(`${h.proxy.url}/health`, { agent })).status).toBe(200);
      agent.destroy();
    } finally {
      await h.stop();
    }
  });

  it('shows the figures of / and /health only with the credentials: health checks and the CA stay open, the browser is asked for them', async () => {
    const h = await startHarness([...upstreamArgs(fake), '--no-persist', '--auth', 'scrape:pa55']);
    try {
      const agent = new http.Agent();
      const get = (suffix: string, headers: Record<string, string> = {}) => request(`${h.proxy.url}${suffix}`, { agent, headers });
      const health = await get('/health');
      expect(health.status).toBe(200);
      expect(health.json()).toEqual({ ok: true, version: expect.any(String), uptimeSeconds: expect.any(Number), figures: 'withheld: send the --auth credentials' });
      const report = (await get('/', { accept: 'application/json' })).json();
      expect(report).toMatchObject({ name: 'mimo-proxy', cache: {}, counters: {}, figures: false, store: { where: '' } });
      expect(report.ca.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/); // what `env` reads
      const page = await get('/');
      expect(page.status).toBe(401);
      expect(page.headers['www-authenticate']).toBe('Basic realm="mimo-proxy metrics"');
      expect(page.text).not.toContain('hit rate');
      expect((await get('/ca.pem')).status).toBe(200);
      for (const headers of [{ authorization: basic('scrape:pa55') }, { 'proxy-authorization': basic('scrape:pa55') }] as Record<string, string>[]) {
        expect((await get('/health', headers)).json().counters).toEqual(expect.objectContaining({ connects: expect.any(Number) }));
        expect((await get('/', { ...headers, accept: 'application/json' })).json().figures).toBeUndefined();
        const html = await get('/', headers);
        expect(html.status).toBe(200);
        expect(html.text).toContain('hit rate');
      }
      expect((await get('/', { authorization: basic('scrape:wrong') })).status).toBe(401);
      agent.destroy();
    } finally {
      await h.stop();
    }
  });

  it('guards every way of asking: a query string, HEAD, another scheme or the user alone get nothing; HEAD with them gets the headers; POST is no page', async () => {
    const h = await startHarness([...upstreamArgs(fake), '--no-persist', '--auth', 'scrape:pa55']);
    try {
      const agent = new http.Agent();
      const get = (suffix: string, headers: Record<string, string> = {}, method = 'GET') => request(`${h.proxy.url}${suffix}`, { agent, method, headers });
      expect((await get('/metrics?format=prometheus')).status).toBe(401);
      expect((await get('/metrics', {}, 'HEAD')).status).toBe(401);
      expect((await get('/metrics', { authorization: 'Bearer scrape:pa55' })).status).toBe(401);
      expect((await get('/metrics', { authorization: basic('scrape') })).status).toBe(401);
      expect((await get('/metrics', { authorization: basic('scrape:pa55x') })).status).toBe(401);
      expect((await get('/metrics', { authorization: `${basic('scrape:pa55')}, ${basic('x:y')}` })).status).toBe(401);
      expect((await get('/metrics', { authorization: `basic  ${Buffer.from('scrape:pa55').toString('base64')}` })).status).toBe(200);
      const head = await get('/metrics', { authorization: basic('scrape:pa55') }, 'HEAD');
      expect(head.status).toBe(200);
      expect(Number(head.headers['content-length'])).toBeGreaterThan(1000);
      expect(head.text).toBe('');
      const post = await get('/metrics', { authorization: basic('scrape:pa55') }, 'POST');
      expect(post.status).toBe(404);
      expect(post.text).not.toContain('mimo_proxy_requests_total');
      agent.destroy();
    } finally {
      await h.stop();
    }
  });

  it('is open with --metrics-open', async () => {
    const h = await startHarness([...upstreamArgs(fake), '--no-persist', '--auth', 'scrape:pa55', '--metrics-open']);
    try {
      const res = await request(`${h.proxy.url}/metrics`, { agent: new http.Agent() });
      expect(res.status).toBe(200);
      expect(valueOf(parsePrometheus(res.text), 'mimo_proxy_store_up', { kind: 'memory' })).toBe(1);
      const health = await request(`${h.proxy.url}/health`, { agent: new http.Agent() });
      expect(health.json().counters).toBeDefined();
    } finally {
      await h.stop();
    }
  });
});
