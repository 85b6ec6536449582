/**
 * The provider registry and what each entry decides, without sockets: which
 * dialect serves which path, whose rejection text is whose (the exact texts of
 * PROVIDERS.md, index variants included), the thinking switch, DeepSeek's
 * retry ladder, MiMo's repairs (and that no other provider gets them), scope
 * by provider, and the CA renewal when a provider's domains are not covered.
 */
import { promises as fs, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateCa, renewCa } from '../../src/ca/index.js';
import { chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { rewriteChatRequest } from '../../src/chat/rewrite.js';
import { caCommand } from '../../src/cli/ca.js';
import { parseArgs, resolveConfig } from '../../src/cli/options.js';
import { dialectNamed } from '../../src/dialects.js';
import { isDnsName } from '../../src/net/hosts.js';
import { MimoProxyError } from '../../src/errors.js';
import { caRenewCommand, PROVIDERS, providerById, providerForHost, surfaceFor, type Provider } from '../../src/providers.js';
import { nameKey } from '../../src/reasoning/match.js';
import { isReasoningRejection } from '../../src/reasoning/rejection.js';
import { thinkingDisabled, type ReasoningLookup } from '../../src/reasoning/rewrite.js';
import { firstPolicy, retryPolicy } from '../../src/reasoning/upstream.js';
import { DEEPSEEK_ANTHROPIC_REASONING_ERROR_BODY, DEEPSEEK_REASONING_ERROR_BODY, kimiReasoningErrorBody, REASONING_ERROR_BODY } from '../support/fake-mimo.js';
import { body, type Json } from '../support/unit.js';
import { runNode } from '../support/node-run.js';
import { CLI } from '../support/proxy-process.js';
import { DEEPSEEK_RESPONSES_REJECTION, responsesError } from '../support/fake-responses.js';

const mimo = providerById('mimo') as Provider;
const deepseek = providerById('deepseek') as Provider;
const kimi = providerById('kimi') as Provider;

const rejected = (provider: Provider, text: string, sse = false): boolean => isReasoningRejection(400, Buffer.from(sse ? `data: ${text}\n\ndata: [DONE]\n\n` : text), provider.rejections);

describe('the provider registry', () => {
  it('has unique ids, DNS domains, and surfaces of known dialects', () => {
    expect(PROVIDERS.map((p) => p.id)).toEqual(['mimo', 'deepseek', 'kimi']);
    for (const provider of PROVIDERS) {
      expect(provider.domains.length, provider.id).toBeGreaterThan(0);
      for (const domain of provider.domains) expect(isDnsName(domain) && domain.includes('.'), domain).toBe(true);
      expect(provider.surfaces.length, provider.id).toBeGreaterThan(0);
      for (const rule of provider.rejections) expect(rule.global || rule.sticky, String(rule)).toBe(false);
      for (const surface of provider.surfaces) expect(dialectNamed(surface.dialect)?.name, `${provider.id} ${surface.dialect}`).toBe(surface.dialect);
    }
  });

  it('serves each provider\'s documented paths, and nothing else', () => {
    const served = (provider: Provider, p: string) => surfaceFor(provider, 'POST', p);
    expect(served(deepseek, '/chat/completions')).toBe('chat');
    expect(served(deepseek, '/v1/chat/completions?x=1')).toBe('chat');
    expect(served(deepseek, '/anthropic/v1/messages')).toBe('anthropic');
    expect(served(deepseek, '/beta/v1/chat/completions')).toBeUndefined();
    expect(served(kimi, '/v1/chat/completions')).toBe('chat');
    expect(served(kimi, '/coding/v1/chat/completions')).toBe('chat');
    expect(served(kimi, '/anthropic/v1/messages')).toBeUndefined();
    expect(served(mimo, '/anthropic/v1/messages')).toBe('anthropic');
    // The Responses API (Codex): MiMo's, on its OpenAI base, and DeepSeek's (PROVIDERS.md); not Kimi's.
    expect(served(mimo, '/v1/responses')).toBe('responses');
    expect(served(mimo, '/v1/responses/resp_1')).toBeUndefined();
    expect(served(deepseek, '/v1/responses')).toBe('responses');
    expect(served(deepseek, '/responses')).toBe('responses');
    expect(served(deepseek, '/v1/responses/resp_1/cancel')).toBeUndefined();
    expect(served(kimi, '/v1/responses')).toBeUndefined();
    for (const provider of PROVIDERS) {
      expect(surfaceFor(provider, 'GET', '/v1/chat/completions'), provider.id).toBeUndefined();
    }
  });
});

describe('whose rules a host gets', () => {
  const enabled = (argv: string[]) => resolveConfig(parseArgs(['--certs', os.tmpdir(), ...argv]).options).providers;

  it('a host two enabled providers cover gets the provider whose domain names it most closely, whatever the --providers order', () => {
    for (const order of ['mimo,deepseek,kimi', 'kimi,deepseek,mimo']) {
      // A --hosts written before DeepSeek was a provider: DeepSeek's host is DeepSeek's, not MiMo's.
      const withOldHosts = enabled(['--providers', order, '--hosts', 'xiaomimimo.com,api.deepseek.com,moonshot.ai']);
      expect(providerForHost('api.deepseek.com', withOldHosts)?.id, order).toBe('deepseek');
      expect(providerForHost('api.moonshot.ai', withOldHosts)?.id, order).toBe('kimi');
      expect(providerForHost('api.xiaomimimo.com', withOldHosts)?.id, order).toBe('mimo');
      // What only --hosts covers stays MiMo's; a MiMo relay under a Kimi domain, named more closely, too.
      expect(providerForHost('other.moonshot.ai', withOldHosts)?.id, order).toBe('mimo');
      const relay = enabled(['--providers', order, '--hosts', 'xiaomimimo.com,relay.api.kimi.com']);
      expect(providerForHost('relay.api.kimi.com', relay)?.id, order).toBe('mimo');
      expect(providerForHost('api.kimi.com', relay)?.id, order).toBe('kimi');
    }
  });
});

describe('whose rejection is whose', () => {
  const deepseekOld = (n: number) => JSON.stringify({ error: { message: `Missing \`reasoning_content\` field in the assistant message at message index ${n}`, type: 'invalid_request_error' } });

  it('DeepSeek: its chat text, its V3.2 text at any message index, its Anthropic text; plain or SSE-framed', () => {
    for (const sse of [false, true]) {
      expect(rejected(deepseek, DEEPSEEK_REASONING_ERROR_BODY, sse)).toBe(true);
      expect(rejected(deepseek, DEEPSEEK_ANTHROPIC_REASONING_ERROR_BODY, sse)).toBe(true);
      for (const n of [0, 3, 127]) expect(rejected(deepseek, deepseekOld(n), sse), String(n)).toBe(true);
      // Its Responses text, in the Responses error shape.
      expect(rejected(deepseek, responsesError(DEEPSEEK_RESPONSES_REJECTION, 'invalid_request_error'), sse)).toBe(true);
    }
  });

  it('reads 64 KiB of adversarial error text in milliseconds with every provider\'s patterns (no catastrophic backtracking)', () => {
    const n = 64 * 1024 - 64;
    const texts = [
      `reasoning_content pass${' '.repeat(n)}`,
      `reasoning_content ${'pass '.repeat(n / 5)}`,
      `reasoning_text ${'not been '.repeat(n / 9)}`,
      'reasoning'.repeat(n / 9),
      'x'.repeat(n),
      `${'thinking is enabled but reasoning_content is missing in assistant tool call message at index '.repeat(n / 200)}${'9'.repeat(1000)}x`,
      `${'Missing `reasoning_content` field in the assistant message at message index '.repeat(n / 160)}`,
    ];
    for (const provider of PROVIDERS) {
      for (const text of texts) {
        for (const framed of [JSON.stringify({ error: { message: text } }), `data: ${JSON.stringify({ type: 'error', message: text.slice(0, 1000) })}\n\n`.repeat(60)]) {
          const started = performance.now();
          isReasoningRejection(400, Buffer.from(framed), provider.rejections);
          expect(performance.now() - started, `${provider.id} ${text.slice(0, 20)}`).toBeLessThan(50);
        }
      }
    }
  });

  it('Kimi: its text at any index', () => {
    for (const n of [1, 2, 40]) expect(rejected(kimi, kimiReasoningErrorBody(n)), String(n)).toBe(true);
  });

  it('MiMo: its own text and the variants relays give', () => {
    expect(rejected(mimo, REASONING_ERROR_BODY)).toBe(true);
    expect(rejected(mimo, REASONING_ERROR_BODY, true)).toBe(true);
    expect(rejected(mimo, DEEPSEEK_REASONING_ERROR_BODY)).toBe(true);
    // On its Responses API (Codex), where DeepSeek's sentence names reasoning_text.
    const responses = JSON.stringify({ error: { message: 'The `reasoning_text` in the thinking mode must be passed back to the API.', type: 'invalid_request_error', param: 'input', code: 'invalid_request_error' } });
    expect(rejected(mimo, responses)).toBe(true);
    expect(rejected(kimi, responses)).toBe(false);
  });

  it('takes no other 400 for it: other providers\' texts, unrelated errors, other statuses', () => {
    const other = JSON.stringify({ error: { message: 'reasoning_content is not supported for this model', type: 'invalid_request_error' } });
    const tooLong = JSON.stringify({ error: { message: "This model's maximum context length is 65536 tokens", type: 'invalid_request_error' } });
    expect(rejected(deepseek, kimiReasoningErrorBody(1))).toBe(false);
    expect(rejected(kimi, DEEPSEEK_REASONING_ERROR_BODY)).toBe(false);
    expect(rejected(kimi, REASONING_ERROR_BODY)).toBe(false);
    for (const provider of PROVIDERS) {
      expect(rejected(provider, other), provider.id).toBe(false);
      expect(rejected(provider, tooLong), provider.id).toBe(false);
      expect(isReasoningRejection(500, Buffer.from(DEEPSEEK_REASONING_ERROR_BODY), provider.rejections), provider.id).toBe(false);
    }
  });
});

describe('the thinking switch', () => {
  it('MiMo and Kimi think unless the request turns it off; DeepSeek\'s deepseek-chat only when turned on', () => {
    for (const provider of [mimo, kimi]) {
      expect(thinkingDisabled({ model: 'deepseek-chat' }, firstPolicy('placeholder', provider).thinkingOffModels), provider.id).toBe(false);
      expect(thinkingDisabled({ thinking: { type: 'disabled' } }, firstPolicy('placeholder', provider).thinkingOffModels), provider.id).toBe(true);
    }
    const off = firstPolicy('placeholder', deepseek).thinkingOffModels;
    expect(thinkingDisabled({ model: 'deepseek-chat' }, off)).toBe(true);
    expect(thinkingDisabled({ model: 'deepseek-chat', thinking: { type: 'enabled' } }, off)).toBe(false);
    expect(thinkingDisabled({ model: 'deepseek-reasoner' }, off)).toBe(false);
    expect(thinkingDisabled({ model: 'deepseek-v4-pro', thinking: { type: 'disabled' } }, off)).toBe(true);
  });

  it('degrades nothing on a DeepSeek request that does not think', () => {
    const request = { model: 'deepseek-chat', messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c1', content: 'r' }] };
    expect(rewriteChatRequest(body(request), () => undefined, firstPolicy('placeholder', deepseek)).kind).toBe('unchanged');
    expect(rewriteChatRequest(body({ ...request, model: 'deepseek-reasoner' }), () => undefined, firstPolicy('placeholder', deepseek)).kind).toBe('rewritten');
  });
});

describe('the retry ladder per provider', () => {
  const plainHistory = (tools: boolean) => ({
    model: 'deepseek-reasoner',
    ...(tools ? { tools: [{ type: 'function', function: { name: 'f' } }] } : {}),
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello there' },
      { role: 'user', content: 'again' },
    ],
  });

  it('DeepSeek: the retry fills plain turns when tools are declared, and only then', () => {
    expect(retryPolicy('placeholder', deepseek)).toMatchObject({ degrade: 'flatten', plainTurns: 'with-tools' });
    const withTools = rewriteChatRequest(body(plainHistory(true)), () => undefined, retryPolicy('placeholder', deepseek));
    expect(withTools.kind === 'rewritten' && withTools.changes.placeholders).toBe(1);
    const sent = JSON.parse((withTools as { body: Buffer }).body.toString()) as Json;
    expect(sent.messages[1].reasoning_content).toMatch(/^Reasoning for step 1 was not kept/);
    expect(rewriteChatRequest(body(plainHistory(false)), () => undefined, retryPolicy('placeholder', deepseek)).kind).toBe('unchanged');
  });

  it('MiMo and Kimi keep the ladder as it was: plain turns only after flatten', () => {
    for (const provider of [mimo, kimi]) {
      expect(retryPolicy('placeholder', provider).plainTurns, provider.id).toBe(false);
      expect(retryPolicy('flatten', provider).plainTurns, provider.id).toBe(true);
      expect(rewriteChatRequest(body(plainHistory(true)), () => undefined, retryPolicy('placeholder', provider)).kind, provider.id).toBe('unchanged');
    }
  });
});

describe("MiMo's repairs", () => {
  const call = (id: string, name: string) => ({ id, type: 'function', function: { name, arguments: '{"path":"a.ts"}' } });
  const history = (assistant: Json) => ({
    model: 'mimo-v2.6-pro',
    messages: [{ role: 'user', content: 'read a.ts' }, { role: 'assistant', ...assistant }, { role: 'tool', tool_call_id: 'call_1', content: 'x' }],
  });
  const names: Record<string, string> = { [nameKey('call_1')]: 'read_file' };
  const lookup: ReasoningLookup = (keys) => {
    for (const key of keys) if (key in names) return names[key];
    return undefined;
  };
  const sentAssistant = (outcome: ReturnType<typeof rewriteChatRequest>): Json => JSON.parse((outcome as { body: Buffer }).body.toString()).messages[1];

  it('gives a tool-call message with null, absent or text-part content a string, keeping its identity', () => {
    const cases: [unknown, string][] = [[null, ''], [undefined, ''], [[{ type: 'text', text: '先看 ' }, 'a.ts'], '先看 a.ts']];
    for (const [content, expected] of cases) {
      const assistant = { content, tool_calls: [call('call_1', 'read_file')], reasoning_content: 'kept' };
      const outcome = rewriteChatRequest(body(history(assistant)), lookup, firstPolicy('placeholder', mimo));
      expect(outcome.kind === 'rewritten' && outcome.changes.repaired, JSON.stringify(content)).toBe(1);
      const sent = sentAssistant(outcome);
      expect(sent.content).toBe(expected);
      expect(sent.reasoning_content).toBe('kept');
      expect(chatTurnIdentity(sent)).toEqual(chatTurnIdentity(assistant));
    }
  });

  it('leaves content with a part that is not text alone (joining would lose it)', () => {
    const assistant = { content: [{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: 'data:x' } }], tool_calls: [call('call_1', 'read_file')], reasoning_content: 'kept' };
    expect(rewriteChatRequest(body(history(assistant)), lookup, firstPolicy('placeholder', mimo)).kind).toBe('unchanged');
  });

  it('names an unnamed call from what the upstream named that id, and never invents a name', () => {
    const named = rewriteChatRequest(body(history({ content: '', tool_calls: [call('call_1', '')], reasoning_content: 'kept' })), lookup, firstPolicy('placeholder', mimo));
    expect(sentAssistant(named).tool_calls[0].function).toEqual({ name: 'read_file', arguments: '{"path":"a.ts"}' });
    const unknown = rewriteChatRequest(body(history({ content: '', tool_calls: [call('call_2', '')], reasoning_content: 'kept' })), lookup, firstPolicy('placeholder', mimo));
    expect(unknown.kind).toBe('unchanged');
    // A remembered value that is not a tool name is not used.
    const odd = rewriteChatRequest(body(history({ content: '', tool_calls: [call('call_1', '')], reasoning_content: 'kept' })), () => 'not a name; rm -rf', firstPolicy('placeholder', mimo));
    expect(odd.kind).toBe('unchanged');
  });

  it('finds the reasoning of a turn whose name it put back (the name is part of the turn)', () => {
    const reasoning = 'the reasoning of this turn';
    const learnedTurn = chatTurnIdentity({ content: '', tool_calls: [call('call_1', 'read_file')] })!;
    const both: ReasoningLookup = (keys) => {
      for (const key of keys) {
        if (key in names) return names[key];
        if (key.startsWith('t:')) return reasoning;
      }
      return undefined;
    };
    expect(learnedTurn.ids).toEqual(['call_1']);
    const outcome = rewriteChatRequest(body(history({ content: null, tool_calls: [call('call_1', '')] })), both, firstPolicy('placeholder', mimo));
    expect(outcome.kind === 'rewritten' && outcome.changes).toMatchObject({ injected: 1, repaired: 1 });
    expect(sentAssistant(outcome).reasoning_content).toBe(reasoning);
  });

  it('repairs nothing for DeepSeek or Kimi', () => {
    for (const provider of [deepseek, kimi]) {
      const outcome = rewriteChatRequest(body(history({ content: null, tool_calls: [call('call_1', '')], reasoning_content: 'kept' })), lookup, firstPolicy('placeholder', provider));
      expect(outcome.kind, provider.id).toBe('unchanged');
    }
  });
});

describe('the CA and the providers it covers', () => {
  const dirs: string[] = [];
  const fresh = (): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-providers-ca-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const configOf = (...argv: string[]) => resolveConfig(parseArgs(argv).options);

  it('refuses to start with a provider the CA does not cover, naming the one command that makes a new CA', async () => {
    const dir = fresh();
    await loadOrCreateCa({ dir, domains: configOf('--certs', dir).domains });
    const config = configOf('--certs', dir, '--providers', 'mimo,deepseek');
    const error = await loadOrCreateCa({ dir, domains: config.domains, renewCommand: caRenewCommand(config) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(MimoProxyError);
    expect((error as MimoProxyError).code).toBe('CA_NOT_COVERING');
    expect((error as MimoProxyError).message).toContain('api.deepseek.com');
    expect((error as MimoProxyError).hint).toContain(`mimo-proxy ca --renew --providers mimo,deepseek --certs ${dir}`);
    expect((error as MimoProxyError).hint).toMatch(/trust the new ca\.pem again and remove the old CA/);
  });

  it('names --hosts in that command only when MiMo\'s domains are not the default, and quotes a folder with spaces', () => {
    expect(caRenewCommand(configOf('--certs', '/tmp/a b', '--hosts', 'xiaomimimo.com,mimo.example.org', '--providers', 'mimo,kimi'))).toBe(
      "mimo-proxy ca --renew --providers mimo,kimi --hosts xiaomimimo.com,mimo.example.org --certs '/tmp/a b'",
    );
  });

  it('ca --renew makes a CA for every enabled provider and keeps the old files aside, saying what to trust and remove', async () => {
    const dir = fresh();
    const old = await loadOrCreateCa({ dir, domains: ['xiaomimimo.com'] });
    const out: string[] = [];
    const io = { env: {}, platform: process.platform, stdout: (t: string) => out.push(t), stderr: (t: string) => out.push(t) };
    expect(await caCommand(['--renew', '--providers', 'mimo,deepseek,kimi', '--certs', dir], io)).toBe(0);
    const renewed = await loadOrCreateCa({ dir, domains: configOf('--providers', 'mimo,deepseek,kimi').domains });
    expect(renewed.permittedDomains).toEqual(['xiaomimimo.com', 'api.deepseek.com', 'api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com']);
    expect(renewed.fingerprint256).not.toBe(old.fingerprint256);
    const aside = (await fs.readdir(dir)).filter((name) => name.startsWith('old-ca-'));
    expect(aside).toHaveLength(1);
    const keptDir = path.join(dir, aside[0]!);
    expect((await fs.readdir(keptDir)).sort()).toEqual(['ca-key.pem', 'ca.pem']);
    expect(await fs.readFile(path.join(keptDir, 'ca.pem'), 'utf8')).toBe(old.caPem);
    expect(statSync(keptDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(keptDir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    const text = out.join('');
    expect(text).toContain(renewed.fingerprint256);
    expect(text).toContain(old.fingerprint256);
    expect(text).toContain(keptDir);
    expect(text).toMatch(/Trust it again/);
    expect(text).toMatch(/Remove the old CA from every trust store/);
    // A leaf for a provider's host now issues.
    expect((await renewed.leafFor('api.deepseek.com')).certPem).toContain('BEGIN CERTIFICATE');
  });

  it('ca --renew says which of the old files it kept aside: a folder with a certificate and no key keeps no key', async () => {
    const dir = fresh();
    const old = await loadOrCreateCa({ dir, domains: ['xiaomimimo.com'] });
    await fs.rm(path.join(dir, 'ca-key.pem'));
    const out: string[] = [];
    const io = { env: {}, platform: process.platform, stdout: (t: string) => out.push(t), stderr: (t: string) => out.push(t) };
    expect(await caCommand(['--renew', '--certs', dir], io)).toBe(0);
    const text = out.join('');
    expect(text).toContain(old.fingerprint256);
    expect(text).not.toMatch(/and its key are kept/);
    expect(text).toMatch(/The old CA \(SHA-256 [0-9A-F:]+\) is kept in \S+old-ca-\S+ \(its key was not there\)/);
  });

  it('ca --renew over corrupt CA files keeps them aside as they were and makes a working CA; a certs path through a file is a clear error', async () => {
    const dir = fresh();
    await loadOrCreateCa({ dir, domains: ['xiaomimimo.com'] });
    await fs.writeFile(path.join(dir, 'ca.pem'), 'garbage');
    await expect(loadOrCreateCa({ dir, domains: ['xiaomimimo.com'] })).rejects.toThrow(/cannot be used/);
    const renewal = await renewCa({ dir, domains: ['xiaomimimo.com', 'api.deepseek.com'] });
    expect(renewal.oldFingerprint256).toBeUndefined();
    expect(await fs.readFile(path.join(renewal.keptAside!, 'ca.pem'), 'utf8')).toBe('garbage');
    expect(statSync(path.join(renewal.keptAside!, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect((await loadOrCreateCa({ dir, domains: ['xiaomimimo.com', 'api.deepseek.com'] })).fingerprint256).toBe(renewal.ca.fingerprint256);
    const file = path.join(dir, 'a-file');
    await fs.writeFile(file, '');
    await expect(renewCa({ dir: path.join(file, 'certs'), domains: ['xiaomimimo.com'] })).rejects.toMatchObject({ code: 'CERTS_DIR_UNWRITABLE' });
  });

  it.skipIf(process.platform !== 'linux')('ca --renew with --certs on a pseudo-filesystem (/proc) ends with CERTS_DIR_UNWRITABLE instead of spinning forever', async () => {
    // Node's recursive mkdir never returns there (mkdir answers ENOENT under an existing /proc).
    const run = await runNode([CLI, 'ca', '--renew', '--certs', '/proc/mimo-proxy-certs'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, ms: 10_000 });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/^ERROR: could not write the CA to \/proc\/mimo-proxy-certs: .+ Fix: pass --certs DIR with a directory you own/);
  });

  it('renewCa in an empty folder just makes the CA (nothing to keep aside)', async () => {
    const dir = fresh();
    const renewal = await renewCa({ dir, domains: ['api.deepseek.com'] });
    expect(renewal.keptAside).toBeUndefined();
    expect(renewal.ca.permittedDomains).toEqual(['api.deepseek.com']);
  });
});
