/**
 * Real clients (curl, Node fetch, the openai SDK, Python httpx and requests),
 * configured ONLY by evaluating `mimo-proxy env` in a real bash: no CA, proxy
 * or agent passed any other way. The proxy is the compiled CLI in a child
 * process, routed to the fake MiMo with --connect-to. The fake rejects any
 * reasoning that is not exactly the one it produced, so a 200 on a later
 * round proves the proxy put back the real reasoning.
 *
 * The machine is simulated as one whose trust store (SSL_CERT_FILE) already
 * holds a "corporate root": the test site's CA. Activation must keep it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, FAKE_MIMO_MODELS, type FakeMimo } from '../support/fake-mimo.js';
import { startTestSite, TEST_SITE_BODY, type TestSite } from '../support/test-site.js';
import { request } from '../support/proxy-client.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'dist/cli/main.js');
const CLIENTS = path.join(ROOT, 'test/support/clients');
const SYSTEM_PYTHON = '/usr/bin/python3';
const BASE_URL = 'https://api.xiaomimimo.com/v1';
const SITE_URL = 'https://site.test/';
/** Every child we run is bounded; a wedged one fails the test instead of hanging it. */
const CHILD_TIMEOUT_MS = 20_000;
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;
const PROXY_START_TIMEOUT_MS = 10_000;
/** Only what a shell needs; every CA and proxy variable of the machine running the tests is left out. */
const BASE_VARIABLES = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TMPDIR', 'TERM'];

type Env = Record<string, string>;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with exactly `env`, stdin /dev/null (or `input`), killed after CHILD_TIMEOUT_MS. */
function run(file: string, args: string[], env: Env, input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: ROOT, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) child.kill('SIGKILL');
      else into.push(chunk);
    };
    child.stdout!.on('data', collect(out));
    child.stderr!.on('data', collect(err));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin?.end(input);
  });
}

/** A client script's one JSON line; its stderr in the failure message if it printed none. */
async function runClient(file: string, args: string[], env: Env): Promise<any> {
  const ran = await run(file, args, env);
  const line = ran.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${path.basename(args[0] ?? file)} exited ${ran.code} without a JSON line; stderr:\n${ran.stderr}`);
  }
}

function parseEnv0(text: string): Env {
  const env: Env = {};
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/**
 * A bash without rc files: Debian's bash reads ~/.bashrc even for `-c` when
 * stdin is a socket (libuv's pipes are socketpairs), and a user's rc may edit PATH.
 */
const BASH = ['--noprofile', '--norc', '-c'];

const q = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

/** Synchronous on purpose: it decides it.skipIf when the file is collected. */
function hasModule(python: string, modules: string): boolean {
  return existsSync(python) && spawnSync(python, ['-c', `import ${modules}`], { timeout: CHILD_TIMEOUT_MS }).status === 0;
}

const PYTHON_OK = hasModule(SYSTEM_PYTHON, 'httpx, requests');
const PYTHON_SKIP = `${SYSTEM_PYTHON} lacks httpx/requests (apt-get install python3-httpx python3-requests; .ci/run does)`;
const CURL_OK = spawnSync('curl', ['--version'], { timeout: CHILD_TIMEOUT_MS }).status === 0;
/** The real Codex CLI: CODEX_JS, else where .ci/run installs it (npm's package, whose script runs the platform binary). */
const CODEX_JS = process.env.CODEX_JS ?? path.join(ROOT, '.ci/codex/node_modules/@openai/codex/bin/codex.js');
const CODEX_OK = existsSync(CODEX_JS) && spawnSync(process.execPath, [CODEX_JS, '--version'], { timeout: CHILD_TIMEOUT_MS }).status === 0;
const CODEX_SKIP = `the Codex CLI is not installed at ${CODEX_JS} (npm install --prefix .ci/codex @openai/codex@0.171.0; .ci/run does)`;
/**
 * Codex with a custom provider on the Responses wire, as a user sets it up for MiMo; update
 * checks, web search (MiMo refuses the tool), the freeform apply_patch tool (a `custom` tool,
 * refused too) and plugin sync off.
 */
const CODEX_CONFIG = `model = "mimo-v2.6-pro"
model_provider = "mimo"
check_for_update_on_startup = false
web_search = "disabled"

[features]
apply_patch_freeform = false
plugins = false
remote_plugin = false

[model_providers.mimo]
name = "MiMo"
base_url = "${BASE_URL}"
env_key = "MIMO_API_KEY"
wire_api = "responses"
`;

describe('real clients configured only by `mimo-proxy env`', () => {
  let fake: FakeMimo;
  let site: TestSite;
  let tmp: string;
  let certsDir: string;
  let proxy: ChildProcess;
  let proxyExit: Promise<void>;
  let proxyLog = '';
  let port = 0;
  /** The shell's environment before activation: a clean base plus the pre-set SSL_CERT_FILE. */
  let before: Env;
  let corporateBundle: string;
  /** After `eval "$(mimo-proxy env)"` in bash, and the same when NODE_EXTRA_CA_CERTS was pre-set too. */
  let activated: Env;
  let activatedWithNodeCa: Env;
  const keys: string[] = [];

  const key = (client: string): string => {
    const k = `sk-${client}-${randomBytes(6).toString('hex')}`;
    keys.push(k);
    return k;
  };
  const clientEnv = (env: Env, apiKey: string): Env => ({ ...env, MIMO_API_KEY: apiKey, MIMO_BASE_URL: BASE_URL, MIMO_ANTHROPIC_BASE_URL: 'https://api.xiaomimimo.com/anthropic', SITE_URL });
  const health = async (): Promise<any> => (await request(`http://127.0.0.1:${port}/health`, { agent: new http.Agent() })).json();
  /** What the fake received under one key (every client uses its own). */
  const requestsOf = (apiKey: string) => fake.requests.filter((r) => r.headers.authorization === `Bearer ${apiKey}`);
  /** Echoes recorded while the requests of one key were served (clients run one at a time). */
  const echoesSince = (count: number) => fake.echoes.slice(count);

  async function activate(pre: Env): Promise<Env> {
    const script = [
      ...Object.entries(pre).map(([name, value]) => `export ${name}=${q(value)}`),
      `eval "$(${q(process.execPath)} ${q(CLI)} env --shell bash --port ${port} --certs ${q(certsDir)})" || exit 97`,
      'env -0',
    ].join('\n');
    const ran = await run('bash', [...BASH, script], base());
    if (ran.code !== 0) throw new Error(`activation failed (${ran.code}): ${ran.stderr}`);
    return parseEnv0(ran.stdout);
  }

  function base(): Env {
    const env: Env = {};
    for (const name of BASE_VARIABLES) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    return env;
  }

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npx tsc -p . first (npm test does)`);
    fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    site = await startTestSite();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'mimo-clients-'));
    certsDir = path.join(tmp, 'certs');
    // The machine's trust store: public roots plus a corporate root (the test site's CA).
    corporateBundle = path.join(tmp, 'corporate-roots.pem');
    writeFileSync(corporateBundle, `${tls.rootCertificates.join('\n')}\n${site.ca.certPem}`);

    const proxyEnv: Env = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (value !== undefined && !/proxy/i.test(name)) proxyEnv[name] = value;
    }
    proxy = spawn(
      process.execPath,
      [
        CLI, 'start', '--port', '0', '--certs', certsDir, '--data', path.join(tmp, 'data'),
        '--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${fake.port}`,
        '--connect-to', `site.test:443:127.0.0.1:${site.port}`,
        '--upstream-ca', fake.ca.certPath, '--log-level', 'debug',
      ],
      { env: proxyEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proxyExit = new Promise((resolve) => proxy.once('exit', () => resolve()));
    proxy.stderr!.on('data', (c: Buffer) => {
      proxyLog += c.toString('utf8');
    });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no "listening on" line in ${PROXY_START_TIMEOUT_MS} ms; log:\n${proxyLog}`)), PROXY_START_TIMEOUT_MS);
      proxy.stdout!.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      proxy.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the proxy exited (${code}) before listening; log:\n${proxyLog}`));
      });
    });

    before = { SSL_CERT_FILE: corporateBundle };
    activated = await activate(before);
    activatedWithNodeCa = await activate({ ...before, NODE_EXTRA_CA_CERTS: site.ca.certPath });
  });

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      proxy.kill('SIGTERM');
      const killer = setTimeout(() => proxy.kill('SIGKILL'), 5000);
      await proxyExit;
      clearTimeout(killer);
    }
    await site?.close();
    await fake?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('activation points every client variable at the proxy and the bundle, and the bundle still trusts the pre-set root', () => {
    const proxyUrl = `http://127.0.0.1:${port}`;
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy']) expect(activated[name]).toBe(proxyUrl);
    expect(activated.NODE_USE_ENV_PROXY).toBe('1');
    const bundle = activated.SSL_CERT_FILE as string;
    expect(path.dirname(bundle)).toBe(certsDir);
    expect(path.basename(bundle)).toMatch(/^bundle-[0-9a-f]{16}\.pem$/);
    for (const name of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE']) expect(activated[name]).toBe(bundle);
    // Node's variable ADDS to its roots: our CA alone when nothing was set before...
    expect(activated.NODE_EXTRA_CA_CERTS).toBe(path.join(certsDir, 'ca.pem'));
    // ...and the bundle when the user already had one (it holds their certificates too).
    expect(activatedWithNodeCa.NODE_EXTRA_CA_CERTS).toBe(bundle);
    expect(activated.PATH).toBe(process.env.PATH);
    const body = (pem: string): string => pem.replace(/-----[A-Z ]+-----|\s+/g, '');
    const bundled = body(readFileSync(bundle, 'utf8'));
    expect(bundled).toContain(body(site.ca.certPem));
    expect(bundled).toContain(body(readFileSync(activated.NODE_EXTRA_CA_CERTS!, 'utf8')));
  });

  it.skipIf(!CURL_OK)('curl runs a streamed 3-round tool conversation through the proxy, each reasoning put back exactly', async () => {
    const apiKey = key('curl');
    const echoes = fake.echoes.length;
    const injected = (await health()).counters.injected;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'curl-conversation.mjs')], clientEnv(activated, apiKey));
    expect(out.statuses).toEqual([200, 200, 200, 200]);
    expect(out.reasoningCharsSeen).toBeGreaterThan(0);
    expect(out.finalContent).toContain('北京今天晴');
    const seen = echoesSince(echoes);
    expect(seen).toHaveLength(6); // 1 + 2 + 3 assistant tool-call messages sent back
    expect(seen.every((e) => e.exact)).toBe(true);
    expect(requestsOf(apiKey).every((r) => r.json?.stream === true && r.status === 200)).toBe(true);
    expect((await health()).counters.injected - injected).toBe(6);
  });

  it.skipIf(!CURL_OK)('curl reaches another HTTPS site through the tunnel and verifies it with the combined bundle', async () => {
    const served = site.requests;
    const ran = await run('curl', ['-sS', SITE_URL], activated);
    expect(ran.stderr).toBe('');
    expect(ran.stdout).toBe(TEST_SITE_BODY);
    expect(site.requests).toBe(served + 1);
  });

  it("Node's built-in fetch lists models and runs a 3-round forgetful tool conversation, every request 200", async () => {
    const apiKey = key('fetch');
    const echoes = fake.echoes.length;
    const injected = (await health()).counters.injected;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'fetch-client.mjs')], clientEnv(activated, apiKey));
    expect(out.models).toEqual({ status: 200, ids: FAKE_MIMO_MODELS });
    expect(out.statuses).toEqual([200, 200, 200, 200]);
    expect(out.finalContent).toContain('北京今天晴');
    const seen = echoesSince(echoes);
    expect(seen).toHaveLength(6);
    expect(seen.every((e) => e.exact)).toBe(true);
    expect((await health()).counters.injected - injected).toBe(6);
  });

  it('Node fetch does not trust a root that was only in SSL_CERT_FILE: NODE_EXTRA_CA_CERTS holds our CA alone', async () => {
    const served = site.requests;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'fetch-client.mjs'), 'site'], clientEnv(activated, key('fetch-site')));
    // Node verifies with its bundled roots plus NODE_EXTRA_CA_CERTS; it never reads SSL_CERT_FILE.
    expect(out.site.error).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    expect(site.requests).toBe(served); // refused during the handshake: no request was sent
  });

  it('Node fetch trusts a corporate root that was in NODE_EXTRA_CA_CERTS before activation (it moves into the bundle)', async () => {
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'fetch-client.mjs'), 'site'], clientEnv(activatedWithNodeCa, key('fetch-corp')));
    expect(out.site).toEqual({ status: 200, body: TEST_SITE_BODY });
  });

  it('the openai npm SDK, given only an API key and base URL, runs a streamed tool conversation of 3+ rounds, every request 200', async () => {
    const apiKey = key('openai');
    const echoes = fake.echoes.length;
    const injected = (await health()).counters.injected;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'openai-client.mjs')], clientEnv(activated, apiKey));
    expect(out.error).toBeNull();
    expect(out.rounds).toBe(4);
    expect(out.reasoningCharsSeen).toBeGreaterThan(0);
    expect(out.finalContent).toContain('北京今天晴');
    const requests = requestsOf(apiKey);
    expect(requests.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(requests.every((r) => r.json?.stream === true)).toBe(true);
    const seen = echoesSince(echoes);
    expect(seen).toHaveLength(6);
    expect(seen.every((e) => e.exact)).toBe(true);
    expect((await health()).counters.injected - injected).toBe(6);
  });

  it.skipIf(!PYTHON_OK)(`Python httpx (system python) runs a 2-round forgetful conversation and verifies another site with SSL_CERT_FILE${PYTHON_OK ? '' : ` (skipped: ${PYTHON_SKIP})`}`, async () => {
    const apiKey = key('httpx');
    const echoes = fake.echoes.length;
    const injected = (await health()).counters.injected;
    const out = await runClient(SYSTEM_PYTHON, [path.join(CLIENTS, 'httpx_client.py')], clientEnv(activated, apiKey));
    expect(out.statuses).toEqual([200, 200]);
    const seen = echoesSince(echoes);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.exact).toBe(true);
    expect((await health()).counters.injected - injected).toBe(1);
    expect(out.site).toEqual({ status: 200, body: TEST_SITE_BODY });
  });

  it.skipIf(!PYTHON_OK)(`Python requests (system python) lists models and verifies another site with REQUESTS_CA_BUNDLE${PYTHON_OK ? '' : ` (skipped: ${PYTHON_SKIP})`}`, async () => {
    const apiKey = key('requests');
    const out = await runClient(SYSTEM_PYTHON, [path.join(CLIENTS, 'requests_client.py')], clientEnv(activated, apiKey));
    expect(out.models).toEqual({ status: 200, ids: FAKE_MIMO_MODELS });
    expect(requestsOf(apiKey).map((r) => r.path)).toEqual(['/v1/models']);
    expect(out.site).toEqual({ status: 200, body: TEST_SITE_BODY });
  });

  it('the @anthropic-ai/sdk client, given only an API key and base URL, completes a streamed tool conversation on the Anthropic surface', async () => {
    const apiKey = key('anthropic');
    const echoes = fake.anthropic.echoes.length;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'anthropic-client.mjs')], clientEnv(activated, apiKey));
    expect(out.error).toBeNull();
    expect(out.rounds).toBe(4);
    expect(out.thinkingCharsSeen).toBeGreaterThan(0);
    expect(out.finalText).toBeTruthy();
    // This SDK version sends the key as a bearer token; older ones used x-api-key.
    const requests = fake.requests.filter((r) => r.headers['x-api-key'] === apiKey || r.headers.authorization === `Bearer ${apiKey}`);
    expect(requests.every((r) => r.path === '/anthropic/v1/messages')).toBe(true);
    expect(requests.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const seen = fake.anthropic.echoes.slice(echoes);
    expect(seen).toHaveLength(6);
    expect(seen.every((e) => e.exact)).toBe(true);
  });

  it('the openai npm SDK\'s Responses API, dropping reasoning items, runs a streamed tool conversation of 3+ rounds, every request 200', async () => {
    const apiKey = key('openai-responses');
    const echoes = fake.responses.echoes.length;
    const injected = (await health()).counters.injected;
    const out = await runClient(process.execPath, [path.join(CLIENTS, 'openai-responses-client.mjs')], clientEnv(activated, apiKey));
    expect(out.error).toBeNull();
    expect(out.rounds).toBe(4);
    expect(out.reasoningItemsSeen).toBe(4);
    expect(out.finalText).toContain('仓库里有三个文件');
    const requests = requestsOf(apiKey);
    expect(requests.every((r) => r.path === '/v1/responses' && r.json?.stream === true)).toBe(true);
    expect(requests.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const seen = fake.responses.echoes.slice(echoes);
    expect(seen).toHaveLength(6);
    expect(seen.every((e) => e.exact)).toBe(true);
    expect((await health()).counters.injected - injected).toBe(6);
  });

  describe.skipIf(!CODEX_OK)(`the real Codex CLI${CODEX_OK ? '' : ` (skipped: ${CODEX_SKIP})`}`, () => {
    /** `codex exec PROMPT` with a fresh CODEX_HOME, in an activated shell's environment; its output and the key it used. */
    async function codex(prompt: string): Promise<Ran & { apiKey: string }> {
      const home = mkdtempSync(path.join(tmp, 'codex-home-'));
      const work = mkdtempSync(path.join(tmp, 'codex-work-'));
      writeFileSync(path.join(home, 'config.toml'), CODEX_CONFIG);
      const apiKey = key('codex');
      const ran = await run(process.execPath, [CODEX_JS, 'exec', '--skip-git-repo-check', '-C', work, prompt], { ...clientEnv(activated, apiKey), HOME: home, CODEX_HOME: home });
      return { ...ran, apiKey };
    }

    afterAll(() => {
      fake.options.responses = {};
    });

    it('drops reasoning items without a summary, and still runs its 3 tool rounds: the proxy puts back the exact items', async () => {
      fake.options.responses = { summary: 'absent' };
      const echoes = fake.responses.echoes.length;
      const injected = (await health()).counters.injected;
      const ran = await codex('列出仓库里的文件');
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toContain('仓库里有三个文件');
      // What the issue reports Codex doing with such an item, and why the proxy is needed here.
      expect(ran.stderr).toContain('ReasoningRawContentDelta without active item');
      const requests = requestsOf(ran.apiKey);
      expect(requests.map((r) => [r.path, r.status])).toEqual(Array(4).fill(['/v1/responses', 200]));
      const seen = fake.responses.echoes.slice(echoes);
      expect(seen).toHaveLength(6);
      expect(seen.every((e) => e.exact)).toBe(true);
      expect((await health()).counters.injected - injected).toBe(6);
    });

    it('keeps reasoning items that carry a summary, and the proxy leaves its requests as they are', async () => {
      fake.options.responses = { summary: 'empty' };
      const echoes = fake.responses.echoes.length;
      const rewritten = (await health()).counters.rewrittenRequests;
      const ran = await codex('列出仓库里的文件');
      expect(ran.code, ran.stderr).toBe(0);
      expect(requestsOf(ran.apiKey).map((r) => r.status)).toEqual([200, 200, 200, 200]);
      const seen = fake.responses.echoes.slice(echoes);
      expect(seen).toHaveLength(6);
      expect(seen.every((e) => e.exact)).toBe(true);
      expect((await health()).counters.rewrittenRequests).toBe(rewritten);
    });
  });

  it('`mimo-proxy env --unset` in the same bash gives back the pre-set SSL_CERT_FILE exactly and removes the rest', async () => {
    const script = [
      `export SSL_CERT_FILE=${q(corporateBundle)}`,
      `eval "$(${q(process.execPath)} ${q(CLI)} env --shell bash --port ${port} --certs ${q(certsDir)})" || exit 97`,
      `eval "$(${q(process.execPath)} ${q(CLI)} env --shell bash --unset)" || exit 98`,
      'env -0',
    ].join('\n');
    const ran = await run('bash', [...BASH, script], base());
    expect(ran.code).toBe(0);
    const after = parseEnv0(ran.stdout);
    expect(after.SSL_CERT_FILE).toBe(corporateBundle);
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'NODE_EXTRA_CA_CERTS', 'NODE_USE_ENV_PROXY', 'CURL_CA_BUNDLE', 'REQUESTS_CA_BUNDLE', 'MIMO_PROXY_ACTIVE']) {
      expect(after[name], name).toBeUndefined();
    }
    expect(Object.keys(after).filter((n) => n.startsWith('_MIMO_PROXY_'))).toEqual([]);
  });

  it('the proxy log (debug level) carries neither the API keys used nor any message text', () => {
    expect(keys.length).toBeGreaterThanOrEqual(4);
    expect(proxyLog).toContain('rewrote request surface=chat');
    for (const k of keys) expect(proxyLog).not.toContain(k);
    for (const word of ['北京', '天气', '晴', 'Beijing']) expect(proxyLog).not.toContain(word);
  });
});
