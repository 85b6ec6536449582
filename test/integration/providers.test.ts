/**
 * DeepSeek and Kimi beside MiMo, end to end: the real proxy with
 * `--providers mimo,deepseek,kimi`, each provider's real host name sent by
 * --connect-to to the fake upstream, which plays the provider the Host header
 * names (its rule, its exact error text per surface) and knows the exact
 * reasoning it produced for every call. Forgetful clients on every surface of
 * every provider; a provider that is not enabled is tunnelled untouched; one
 * key at two providers keeps two memories; DeepSeek's retry fills plain turns;
 * MiMo's repairs, and that the other providers' requests are not repaired.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnthropicConversation } from '../support/anthropic-conversation.js';
import { runConversation, sendChat, type ChatMessage } from '../support/conversation.js';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { runNode } from '../support/node-run.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { CLI, spawnProxy } from '../support/proxy-process.js';
import { runResponsesConversation, sendResponses } from '../support/responses-conversation.js';

const PROVIDER_HOSTS = ['api.deepseek.com', 'api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com'];

/** The other providers' hosts to the fake too (MiMo's are upstreamArgs'). */
function providerConnects(fake: FakeMimo): string[] {
  return PROVIDER_HOSTS.flatMap((host) => ['--connect-to', `${host}:443:127.0.0.1:${fake.port}`]);
}

function providerArgs(fake: FakeMimo): string[] {
  return [...upstreamArgs(fake), ...providerConnects(fake)];
}

const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: {} } } }];

const CHAT_SURFACES = [
  { provider: 'mimo', url: 'https://api.xiaomimimo.com/v1/chat/completions' },
  { provider: 'deepseek', url: 'https://api.deepseek.com/chat/completions' },
  { provider: 'deepseek', url: 'https://api.deepseek.com/v1/chat/completions' },
  { provider: 'kimi', url: 'https://api.moonshot.ai/v1/chat/completions' },
  { provider: 'kimi', url: 'https://api.kimi.com/coding/v1/chat/completions' },
] as const;

const ANTHROPIC_SURFACES = [
  { provider: 'mimo', url: 'https://api.xiaomimimo.com/anthropic/v1/messages' },
  { provider: 'deepseek', url: 'https://api.deepseek.com/anthropic/v1/messages' },
] as const;

describe('providers: every surface of every provider', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 3, rejectPlaceholders: true }, (f) => [...providerConnects(f), '--providers', 'mimo,deepseek,kimi', '--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));

  for (const { provider, url } of CHAT_SURFACES) {
    for (const stream of [false, true]) {
      it(`${provider} chat at ${new URL(url).host}${new URL(url).pathname}, ${stream ? 'streamed' : 'not streamed'}: a forgetful client runs 3 rounds and gets the exact reasoning back`, async () => {
        const before = fake.echoes.length;
        const retries = h.proxy.counters.retries;
        const { turns } = await runConversation({ url, agent, ca: h.proxy.ca.caPem, key: `sk-${provider}-${url}-${stream}`, stream });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        const echoes = fake.echoes.slice(before);
        expect(echoes).toHaveLength(6);
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        expect(h.proxy.counters.retries).toBe(retries);
        expect(fake.requests.at(-1)!.headers.host).toBe(new URL(url).host);
        expect(fake.requests.at(-1)!.path).toBe(new URL(url).pathname);
      });
    }
  }

  for (const { provider, url } of ANTHROPIC_SURFACES) {
    for (const stream of [false, true]) {
      it(`${provider} Anthropic surface, ${stream ? 'streamed' : 'not streamed'}: a forgetful client runs 3 rounds and gets the exact thinking back`, async () => {
        const before = fake.anthropic.echoes.length;
        const { turns } = await runAnthropicConversation({ url, agent, ca: h.proxy.ca.caPem, key: `sk-anth-${provider}-${stream}`, stream });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        const echoes = fake.anthropic.echoes.slice(before);
        expect(echoes).toHaveLength(6);
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        expect(fake.requests.at(-1)!.headers.host).toBe(new URL(url).host);
      });
    }
  }

  for (const { provider, url } of [...CHAT_SURFACES, ...ANTHROPIC_SURFACES]) {
    it(`${provider} at ${new URL(url).pathname}: its own exact rejection text is recognised, and the retry ends in 200`, async () => {
      const anthropic = url.includes('/anthropic/');
      // A conversation from before the proxy ran: learned under another key, so this one misses.
      const history = anthropic
        ? (await runAnthropicConversation({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-elsewhere', stream: false, maxRounds: 2 })).history
        : (await runConversation({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-elsewhere', stream: false, maxRounds: 2 })).history;
      const retries = h.proxy.counters.retries;
      const before = fake.requests.length;
      const body = anthropic ? { model: 'mimo-v2.6-pro', max_tokens: 64, messages: history } : { model: 'mimo-v2.6-pro', messages: history };
      const headers: Record<string, string> = anthropic ? { 'x-api-key': 'sk-another' } : { authorization: 'Bearer sk-another' };
      const res = await request(url, { agent, ca: h.proxy.ca.caPem, headers, body: JSON.stringify(body) });
      expect(res.status).toBe(200);
      expect(h.proxy.counters.retries - retries).toBe(1);
      // The placeholder was refused with the provider's own text (a retry is sent for nothing
      // else), and the retry flattened: no tool result is left in it.
      const sent = fake.requests.slice(before);
      expect(sent).toHaveLength(2);
      expect(sent[1]!.body.toString()).not.toMatch(anthropic ? /"tool_result"/ : /"role":"tool"/);
    });
  }

  // DeepSeek serves the Responses API too, and refuses there with its reasoning_text sentence
  // (PROVIDERS.md: openai/codex #42249): Codex at DeepSeek is the failure the Responses dialect is for.
  for (const url of ['https://api.deepseek.com/v1/responses', 'https://api.deepseek.com/responses']) {
    for (const stream of [false, true]) {
      it(`deepseek Responses at ${new URL(url).pathname}, ${stream ? 'streamed' : 'not streamed'}: a forgetful client runs 3 rounds and gets the exact items back`, async () => {
        const before = fake.responses.echoes.length;
        const { turns } = await runResponsesConversation({ url, agent, ca: h.proxy.ca.caPem, key: `sk-resp-deepseek-${url}-${stream}`, stream });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        const echoes = fake.responses.echoes.slice(before);
        expect(echoes).toHaveLength(6);
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        expect(fake.requests.at(-1)!.headers.host).toBe('api.deepseek.com');
      });
    }
  }

  it('deepseek Responses: its reasoning_text rejection is recognised, and the retry ends in 200', async () => {
    const url = 'https://api.deepseek.com/v1/responses';
    const { history } = await runResponsesConversation({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-elsewhere', stream: false, maxRounds: 2 });
    const retries = h.proxy.counters.retries;
    const res = await sendResponses({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-another', stream: false }, history);
    expect(res.response.status).toBe(200);
    expect(h.proxy.counters.retries - retries).toBe(1);
  });

  it('keeps one key apart at two providers: what MiMo said never reaches DeepSeek', async () => {
    const key = 'sk-same-key-both';
    const mimo = await runConversation({ url: 'https://api.xiaomimimo.com/v1/chat/completions', agent, ca: h.proxy.ca.caPem, key, stream: true, maxRounds: 2 });
    expect(mimo.turns.map((t) => t.response.status)).toEqual([200, 200]);
    const produced = mimo.turns.map((t) => t.message?.reasoning_content).filter((r): r is string => typeof r === 'string' && r !== '');
    expect(produced).toHaveLength(2);
    fake.options.rejectPlaceholders = false;
    try {
      const before = fake.requests.length;
      const res = await sendChat({ url: 'https://api.deepseek.com/chat/completions', agent, ca: h.proxy.ca.caPem, key, stream: false }, mimo.history);
      expect(res.response.status).toBe(200);
      const sent = fake.requests.slice(before).map((r) => r.body.toString('utf8')).join('\n');
      for (const reasoning of produced) expect(sent).not.toContain(reasoning);
      // The same history back at MiMo with the same key still gets MiMo's own reasoning.
      const back = fake.echoes.length;
      const again = await sendChat({ url: 'https://api.xiaomimimo.com/v1/chat/completions', agent, ca: h.proxy.ca.caPem, key, stream: false }, mimo.history);
      expect(again.response.status).toBe(200);
      expect(fake.echoes.slice(back).map((e) => e.exact)).toEqual([true, true]);
    } finally {
      fake.options.rejectPlaceholders = true;
    }
  });

  it('DeepSeek with tools: a refusal after every tool-call turn was restored is retried with plain turns filled, with their own reasoning', async () => {
    const url = 'https://api.deepseek.com/v1/chat/completions';
    const key = 'sk-deepseek-tools';
    const first = await runConversation({ url, agent, ca: h.proxy.ca.caPem, key, stream: true, tools: TOOLS });
    expect(first.turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
    const finalReasoning = first.turns.at(-1)!.message!.reasoning_content;
    expect(finalReasoning).toMatch(/北京今天晴/);
    // The user asks again: the history now has a plain assistant turn (the answer) without its reasoning.
    const history: ChatMessage[] = [...first.history, { role: 'user', content: '明天呢？' }];
    const retries = h.proxy.counters.retries;
    const before = fake.requests.length;
    const next = await sendChat({ url, agent, ca: h.proxy.ca.caPem, key, stream: false, tools: TOOLS }, history);
    expect(next.response.status).toBe(200);
    expect(h.proxy.counters.retries - retries).toBe(1);
    const [refused, retried] = fake.requests.slice(before);
    expect(refused!.status).toBe(400);
    expect(JSON.parse(refused!.body.toString()).messages.at(-2).reasoning_content).toBeUndefined();
    const messages = retried!.json.messages as ChatMessage[];
    // The plain turn got its own reasoning back (learned from the answer); no tool exchange was flattened.
    expect(messages.at(-2)!.reasoning_content).toBe(finalReasoning);
    expect(messages.filter((m) => m.role === 'tool')).toHaveLength(3);
  });
});

describe('providers: one that is not enabled', () => {
  it('is tunnelled untouched: the client sees the upstream\'s own certificate and its own 400', async () => {
    const fake = await startFakeMimo({ toolRounds: 3 });
    const h = await startHarness([...providerArgs(fake), '--no-persist']);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      const history: ChatMessage[] = [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_x', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_x', content: 'sunny' },
      ];
      const body = JSON.stringify({ model: 'deepseek-reasoner', messages: history });
      const tunnelled = h.proxy.counters.tunnelled;
      // Only the upstream's own CA is trusted: our CA's certificate would fail here.
      const res = await request('https://api.deepseek.com/chat/completions', { agent, ca: fake.ca.certPem, headers: { authorization: 'Bearer sk-not-enabled' }, body });
      expect(res.status).toBe(400);
      expect(res.text).toContain('The `reasoning_content` in the thinking mode must be passed back to the API.');
      expect(res.peerCertificate?.issuer?.CN).toBe('Test Public Root CA (fake-mimo)');
      expect(h.proxy.counters.tunnelled - tunnelled).toBe(1);
      expect(fake.requests.at(-1)!.body.toString('utf8')).toBe(body);
    } finally {
      agent.destroy();
      await h.stop();
      await fake.close();
    }
  });
});

describe("providers: MiMo's repairs", () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 2, mimoShapeRules: true }, (f) => [...providerConnects(f), '--providers', 'mimo,deepseek,kimi', '--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));

  /** A client that sends tool-call turns back with content null and the call names blanked. */
  function mangled(history: ChatMessage[]): ChatMessage[] {
    return history.map((m) =>
      m.role === 'assistant' && m.tool_calls ? { ...m, content: null, tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, name: '' } })) } : m,
    );
  }

  it('MiMo: null content and an empty call name are repaired (the name the upstream gave that id), and the exact reasoning still comes back', async () => {
    const url = 'https://api.xiaomimimo.com/v1/chat/completions';
    const { turns, history } = await runConversation({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-repair', stream: true, maxRounds: 2 });
    expect(turns.map((t) => t.response.status)).toEqual([200, 200]);
    const names = history.flatMap((m) => m.tool_calls ?? []).map((c) => c.function.name);
    const repaired = h.proxy.counters.repaired;
    const before = fake.echoes.length;
    const res = await sendChat({ url, agent, ca: h.proxy.ca.caPem, key: 'sk-repair', stream: false }, mangled(history));
    expect(res.response.status).toBe(200);
    expect(h.proxy.counters.repaired - repaired).toBe(2);
    const sent = fake.requests.at(-1)!.json.messages as ChatMessage[];
    const calls = sent.filter((m) => m.tool_calls);
    expect(calls.map((m) => m.content)).toEqual(['', '']);
    expect(calls.flatMap((m) => m.tool_calls!).map((c) => c.function.name)).toEqual(names);
    expect(fake.echoes.slice(before).map((e) => e.exact)).toEqual([true, true]);
  });

  it('MiMo: a call id whose name was never learned keeps its empty name (MiMo then answers its own 400)', async () => {
    const history: ChatMessage[] = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_never_seen', type: 'function', function: { name: '', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_never_seen', content: 'sunny' },
    ];
    const res = await sendChat({ url: 'https://api.xiaomimimo.com/v1/chat/completions', agent, ca: h.proxy.ca.caPem, key: 'sk-repair', stream: false }, history);
    expect(res.response.status).toBe(400);
    expect(res.response.text).toContain('`name` is not set');
    const sent = fake.requests.at(-1)!.json.messages as ChatMessage[];
    expect(sent[1]!.content).toBe('');
    expect(sent[1]!.tool_calls![0]!.function.name).toBe('');
  });

  for (const url of ['https://api.deepseek.com/chat/completions', 'https://api.moonshot.cn/v1/chat/completions']) {
    it(`${new URL(url).host}: the same mangled turns are not repaired (that provider is not known to need it)`, async () => {
      const key = `sk-norepair-${new URL(url).host}`;
      const { history } = await runConversation({ url, agent, ca: h.proxy.ca.caPem, key, stream: false, maxRounds: 2 });
      const repaired = h.proxy.counters.repaired;
      const res = await sendChat({ url, agent, ca: h.proxy.ca.caPem, key, stream: false }, mangled(history));
      expect(res.response.status).toBe(200);
      expect(h.proxy.counters.repaired).toBe(repaired);
      const sent = fake.requests.at(-1)!.json.messages as ChatMessage[];
      const calls = sent.filter((m) => m.tool_calls);
      expect(calls).toHaveLength(2);
      expect(calls.map((m) => m.content)).toEqual([null, null]);
      expect(calls.flatMap((m) => m.tool_calls!).map((c) => c.function.name)).toEqual(['', '']);
    });
  }
});

describe('providers: direct mode', () => {
  it('gives a direct-mode --upstream at DeepSeek DeepSeek\'s rules and paths', async () => {
    const fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    const h = await startHarness([...providerArgs(fake), '--providers', 'mimo,deepseek', '--upstream', 'https://api.deepseek.com', '--no-persist']);
    const plain = new http.Agent({ keepAlive: true });
    try {
      const before = fake.echoes.length;
      const { turns } = await runConversation({ url: `${h.proxy.url}/v1/chat/completions`, agent: plain, key: 'sk-direct-deepseek', stream: true });
      expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
      expect(fake.echoes.slice(before).every((e) => e.exact)).toBe(true);
      expect(fake.requests.at(-1)!.path).toBe('/chat/completions');
      expect(fake.requests.at(-1)!.headers.host).toBe('api.deepseek.com');
      // Its Responses API too (Codex with base_url http://127.0.0.1:PORT/v1).
      const echoes = fake.responses.echoes.length;
      const responses = await runResponsesConversation({ url: `${h.proxy.url}/v1/responses`, agent: plain, key: 'sk-direct-deepseek', stream: true });
      expect(responses.turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
      expect(fake.responses.echoes.slice(echoes).map((e) => e.exact)).toEqual([true, true, true, true, true, true]);
      expect(fake.requests.at(-1)!.path).toBe('/responses');
    } finally {
      plain.destroy();
      await h.stop();
      await fake.close();
    }
  });
});

describe('providers: enabling one later, as a user does it (the compiled CLI)', () => {
  it('start stops with the one command that makes a new CA; ca --renew makes it; then start, status and the status page show the providers', async () => {
    const certs = tempDir('providers-renew');
    const fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: certs };
    let proxy: Awaited<ReturnType<typeof spawnProxy>> | undefined;
    try {
      const made = await runNode([CLI, 'ca', '--certs', certs], { env });
      expect(made.code).toBe(0);

      const refused = await runNode([CLI, 'start', '--port', '0', '--no-persist', '--certs', certs, '--providers', 'mimo,deepseek'], { env });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/^ERROR: the CA at \S+ca\.pem permits only xiaomimimo\.com, but the domains to intercept include api\.deepseek\.com\. Fix: run mimo-proxy ca --renew --providers mimo,deepseek --certs \S+ to make a new CA/);
      const command = /Fix: run (mimo-proxy ca --renew [^\n]*?) to make a new CA/.exec(refused.stderr)![1]!;

      const renewed = await runNode([CLI, ...command.split(' ').slice(1)], { env });
      expect(renewed.code, renewed.stderr).toBe(0);
      expect(renewed.stdout).toMatch(/Made a new mimo-proxy CA for xiaomimimo\.com, api\.deepseek\.com/);
      expect(renewed.stdout).toMatch(/The old CA \(SHA-256 [0-9A-F:]+\) and its key are kept in \S+old-ca-/);

      proxy = await spawnProxy(['--certs', certs, '--providers', 'mimo,deepseek', ...providerArgs(fake)]);
      const page = await request(`${proxy.url}/`, { agent: new http.Agent(), headers: { accept: 'application/json' } });
      expect(page.json().providers).toEqual(['mimo', 'deepseek']);
      const status = await runNode([CLI, 'status', '--port', String(proxy.port)], { env });
      expect(status.stdout).toMatch(/providers +mimo, deepseek\n/);

      // DeepSeek now goes through the new CA.
      const agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
      try {
        const pem = (await runNode([CLI, 'ca', '--pem', '--certs', certs, '--providers', 'mimo,deepseek'], { env })).stdout;
        const { turns } = await runConversation({ url: 'https://api.deepseek.com/v1/chat/completions', agent, ca: pem, key: 'sk-renewed', stream: false });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        expect(turns[0]!.response.peerCertificate?.issuer?.CN).toMatch(/mimo-proxy/i);
      } finally {
        agent.destroy();
      }
    } finally {
      await proxy?.stop();
      await fake.close();
      rmSync(certs, { recursive: true, force: true });
    }
  });
});
