import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  activationOps,
  activationScript,
  activationValues,
  applyOps,
  deactivationOps,
  deactivationScript,
  detectShell,
  MANAGED_VARIABLES,
  mergeNoProxy,
  originalEnvironment,
  previousCaFiles,
  quotePowerShell,
  renderOp,
  type ActivationTarget,
} from '../../src/setup/activation.js';

const certs = "/tmp/it's a dir/证书 $HOME `x`";
const target: ActivationTarget = {
  proxyUrl: 'http://127.0.0.1:8899',
  marker: 'http://127.0.0.1:8899',
  caPath: `${certs}/ca.pem`,
  bundlePath: `${certs}/bundle.pem`,
};

/** What the user's shell had before activation: a corporate proxy, their own NO_PROXY, a CA file, one empty value. */
const before: Record<string, string> = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: '/tmp',
  HTTPS_PROXY: 'http://corp.example:3128',
  NO_PROXY: 'corp.example,.internal,LOCALHOST',
  SSL_CERT_FILE: '/etc/corp/roots.pem',
  http_proxy: '',
  UNRELATED: "stays 'as' is",
};

const BASH_OWN = new Set(['PWD', 'SHLVL', '_', 'OLDPWD']);

/** Evaluates `script` in a real bash started with `env`, and returns the environment it ends with. */
function bashAfter(script: string, env: Record<string, string>): Record<string, string> {
  const result = spawnSync('bash', ['--noprofile', '--norc', '-c', 'eval "$MIMO_TEST_SCRIPT" || exit 99; unset MIMO_TEST_SCRIPT; env -0'], {
    env: { ...env, MIMO_TEST_SCRIPT: script },
    encoding: 'utf8',
    timeout: 10_000,
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  const out: Record<string, string> = {};
  for (const entry of result.stdout.split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    if (!BASH_OWN.has(name)) out[name] = entry.slice(eq + 1);
  }
  return out;
}

describe('activation values', () => {
  it('points every proxy variable, ALL_PROXY included, at the proxy', () => {
    const values = activationValues({ ALL_PROXY: 'socks5://corp:1080' }, target);
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy']) expect(values[name]).toBe(target.proxyUrl);
    expect(values.NODE_USE_ENV_PROXY).toBe('1');
    expect(values.MIMO_PROXY_ACTIVE).toBe(target.marker);
  });

  it('keeps loopback first in NO_PROXY and merges the user entries of both spellings once each', () => {
    expect(mergeNoProxy('corp.example, .internal,localhost', '127.0.0.1,other,CORP.example')).toBe('localhost,127.0.0.1,::1,corp.example,.internal,other');
    expect(mergeNoProxy(undefined, '')).toBe('localhost,127.0.0.1,::1');
    const values = activationValues({ no_proxy: 'a.example' }, target);
    expect(values.NO_PROXY).toBe('localhost,127.0.0.1,::1,a.example');
    expect(values.no_proxy).toBe(values.NO_PROXY);
  });

  it('gives adding CA variables our CA, or the bundle when the user had already set one', () => {
    const fresh = activationValues({}, target);
    expect(fresh.NODE_EXTRA_CA_CERTS).toBe(target.caPath);
    expect(fresh.DENO_CERT).toBe(target.caPath);
    expect(fresh.CODEX_CA_CERTIFICATE).toBe(target.caPath);
    const corporate = activationValues({ NODE_EXTRA_CA_CERTS: '/etc/corp/ca.pem' }, target);
    expect(corporate.NODE_EXTRA_CA_CERTS).toBe(target.bundlePath);
    for (const name of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO']) expect(fresh[name]).toBe(target.bundlePath);
  });

  it('reads the originals from the saved copies once a shell is activated', () => {
    const activated = applyOps(before, activationOps(before, target));
    expect(originalEnvironment(activated)).toEqual(originalEnvironment(before));
    expect(previousCaFiles(originalEnvironment(activated))).toEqual({ replacing: ['/etc/corp/roots.pem'], adding: [] });
    // The bundle must come from the user's file, not from our own bundle.
    expect(activated.SSL_CERT_FILE).toBe(target.bundlePath);
  });

  it('does not save again when activated twice, so the originals survive', () => {
    const once = applyOps(before, activationOps(before, target));
    const ops = activationOps(once, { ...target, proxyUrl: 'http://127.0.0.1:9999', marker: 'http://127.0.0.1:9999' });
    expect(ops.filter((op) => op.name.startsWith('_MIMO_PROXY_'))).toEqual([]);
    const twice = applyOps(once, ops);
    expect(twice.HTTPS_PROXY).toBe('http://127.0.0.1:9999');
    expect(applyOps(twice, deactivationOps(twice))).toEqual(before);
  });

  it('has nothing to undo in a shell that was never activated', () => {
    expect(deactivationOps(before)).toEqual([]);
  });
});

describe('shell detection', () => {
  it('uses the basename of $SHELL and falls back to bash, or PowerShell on Windows', () => {
    expect(detectShell('/usr/bin/zsh', 'linux')).toBe('zsh');
    expect(detectShell('/opt/homebrew/bin/fish', 'darwin')).toBe('fish');
    expect(detectShell('/usr/local/bin/pwsh', 'linux')).toBe('powershell');
    expect(detectShell('C:\\Program Files\\PowerShell\\7\\pwsh.exe', 'win32')).toBe('powershell');
    expect(detectShell('/bin/dash', 'linux')).toBe('bash');
    expect(detectShell(undefined, 'linux')).toBe('bash');
    expect(detectShell(undefined, 'win32')).toBe('powershell');
  });
});

describe('bash evaluation', () => {
  it('sets every variable to the exact value, paths with spaces, quotes, $ and backticks included', () => {
    const after = bashAfter(activationScript('bash', before, target), before);
    expect(after).toMatchObject(activationValues(before, target));
    expect(after.SSL_CERT_FILE).toBe(`${certs}/bundle.pem`);
    expect(after.NODE_EXTRA_CA_CERTS).toBe(`${certs}/ca.pem`);
    expect(after.NO_PROXY).toBe('localhost,127.0.0.1,::1,corp.example,.internal');
    expect(after._MIMO_PROXY_OLD_HTTPS_PROXY).toBe('http://corp.example:3128');
    expect(after._MIMO_PROXY_OLD_http_proxy).toBe('');
    expect(after._MIMO_PROXY_UNSET_HTTP_PROXY).toBe('1');
    expect(after.UNRELATED).toBe(before.UNRELATED);
  });

  it('restores the previous environment exactly with mimo_proxy_deactivate', () => {
    const after = bashAfter(`${activationScript('bash', before, target)}\nmimo_proxy_deactivate\n! declare -F mimo_proxy_deactivate >/dev/null || exit 3`, before);
    expect(after).toEqual(before);
  });

  it('restores the previous environment exactly with env --unset, set values and unset ones alike', () => {
    const activated = bashAfter(activationScript('bash', before, target), before);
    const restored = bashAfter(deactivationScript('bash', activated), activated);
    expect(restored).toEqual(before);
    for (const name of MANAGED_VARIABLES) if (!(name in before)) expect(restored).not.toHaveProperty(name);
  });

  it('restores the originals after activating twice', () => {
    const once = bashAfter(activationScript('bash', before, target), before);
    const second = { ...target, proxyUrl: 'http://[::1]:9000', marker: 'http://[::1]:9000' };
    const twice = bashAfter(activationScript('bash', once, second), once);
    expect(twice.HTTPS_PROXY).toBe('http://[::1]:9000');
    expect(bashAfter('mimo_proxy_deactivate 2>/dev/null || eval "$UNDO"', { ...twice, UNDO: deactivationScript('bash', twice) })).toEqual({ ...before, UNDO: deactivationScript('bash', twice) });
    // And through the function defined by the second activation, in one shell.
    expect(bashAfter(`${activationScript('bash', once, second)}\nmimo_proxy_deactivate`, once)).toEqual(before);
  });

  it('carries hostile original values through activate and deactivate unchanged', () => {
    const hostile = { ...before, HTTPS_PROXY: "it's \"quoted\" \\ $(echo no) `no` \n新行 ;& |", CURL_CA_BUNDLE: "/a b/'c'/d.pem" };
    expect(bashAfter(`${activationScript('bash', hostile, target)}\nmimo_proxy_deactivate`, hostile)).toEqual(hostile);
  });
});

describe('other shells', () => {
  const hasFish = spawnSync('fish', ['--version'], { timeout: 5000 }).status === 0;

  it.skipIf(!hasFish)('prints fish code that fish parses (fish --no-execute; skipped: fish is not installed)', () => {
    const script = activationScript('fish', before, target);
    expect(script).toContain(`set -gx SSL_CERT_FILE '/tmp/it\\'s a dir/证书 $HOME \`x\`/bundle.pem'`);
    const check = spawnSync('fish', ['--no-execute', '-c', script], { encoding: 'utf8', timeout: 10_000 });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it.skipIf(!hasFish)('activates and deactivates a real fish exactly (skipped: fish is not installed)', () => {
    const run = (script: string): Record<string, string> => {
      const r = spawnSync('fish', ['--no-config', '-c', `${script}\nenv -0`], { env: before, encoding: 'utf8', timeout: 10_000 });
      expect(r.stderr).toBe('');
      return Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]).filter(([k]) => !BASH_OWN.has(k as string) && k !== 'USER'));
    };
    expect(run(activationScript('fish', before, target))).toMatchObject(activationValues(before, target));
    // fish exports USER and PWD on its own; everything else must be exactly as before.
    expect(run(`${activationScript('fish', before, target)}\nmimo_proxy_deactivate`)).toEqual(before);
    const activated = run(activationScript('fish', before, target));
    expect(run(`${activationScript('fish', before, target)}\n${deactivationScript('fish', activated)}`)).toEqual(before);
  });

  it('prints PowerShell code made only of the expected statement forms', () => {
    const quoted = String.raw`'(?:[^'\u2018-\u201B]|(['\u2018-\u201B])\1)*'`;
    const forms = [
      new RegExp(String.raw`^\$Env:[A-Za-z_][A-Za-z0-9_]* = ${quoted}$`),
      /^Remove-Item -Path (?:Env|Function):[A-Za-z_][A-Za-z0-9_]* -ErrorAction SilentlyContinue$/,
      /^function global:mimo_proxy_deactivate \{$/,
      /^ {2}if \(Test-Path -Path Env:(_MIMO_PROXY_OLD_\w+)\) \{ \$Env:(\w+) = \$Env:\1; Remove-Item -Path Env:\1 \} elseif \(Test-Path -Path Env:(_MIMO_PROXY_UNSET_\w+)\) \{ Remove-Item -Path Env:\2 -ErrorAction SilentlyContinue; Remove-Item -Path Env:\3 \}$/,
      /^ {2}Remove-Item -Path Function:mimo_proxy_deactivate -ErrorAction SilentlyContinue$/,
      /^\}$/,
    ];
    const lines = (activationScript('powershell', { ...before, HTTPS_PROXY: "a'b‘c’d" }, target) + deactivationScript('powershell', {})).trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(MANAGED_VARIABLES.length * 2);
    for (const line of lines) expect(forms.some((f) => f.test(line)), line).toBe(true);
    expect(lines).toContain("$Env:_MIMO_PROXY_OLD_HTTPS_PROXY = 'a''b‘‘c’’d'");
    expect(quotePowerShell("it's")).toBe("'it''s'");
  });

  it('prints cmd code as set "K=v" lines, and refuses a value cmd cannot hold', () => {
    const lines = activationScript('cmd', before, target).trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^set "[A-Za-z_][A-Za-z0-9_]*=[^"\r\n]*(?:"[^"\r\n]*)*"$/);
    expect(lines).toContain(`set "SSL_CERT_FILE=${certs}/bundle.pem"`);
    expect(renderOp('cmd', { op: 'unset', name: 'HTTPS_PROXY' })).toBe('set "HTTPS_PROXY="');
    expect(() => renderOp('cmd', { op: 'set', name: 'X', value: 'a\nb' })).toThrow(/line break/);
  });

  it('refuses a variable name that is not one', () => {
    expect(() => renderOp('bash', { op: 'set', name: 'A;rm', value: '' })).toThrow(/not a variable name/);
  });
});
