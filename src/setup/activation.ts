/**
 * Shell activation, as data: which variables point clients at the proxy and
 * our CA (see /work/shared/CLIENTS.md for who reads what), the operations that
 * set them and later give back the exact previous values, and the rendering of
 * those operations for each shell. Pure: no files, no processes.
 *
 * Saving the previous values works like Python venv's `_OLD_*` variables, but
 * exported, so that `mimo-proxy env` (a child of the shell) can see them:
 *   _MIMO_PROXY_OLD_<NAME>=<value>   NAME had this value before activation
 *   _MIMO_PROXY_UNSET_<NAME>=1       NAME was unset before activation
 * A name that already has one of these is not saved again, so activating twice
 * keeps the originals.
 */

export type Shell = 'bash' | 'zsh' | 'fish' | 'powershell' | 'cmd';
export const SHELLS: readonly Shell[] = ['bash', 'zsh', 'fish', 'powershell', 'cmd'];

export type EnvOp = { op: 'set'; name: string; value: string } | { op: 'unset'; name: string };

/** Every proxy variable a client may read; ALL_PROXY too, since an inherited one wins in Zed and is curl's fallback. */
export const PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy'] as const;
export const NO_PROXY_VARIABLES = ['NO_PROXY', 'no_proxy'] as const;
/** CA variables that REPLACE the default trust store: they get the combined bundle. */
export const REPLACING_CA_VARIABLES = ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO'] as const;
/** CA variables that ADD to the default trust store: our CA alone is enough, unless the user already set one. */
export const ADDING_CA_VARIABLES = ['NODE_EXTRA_CA_CERTS', 'DENO_CERT', 'CODEX_CA_CERTIFICATE'] as const;
/** Node 24.5+/22.21+ honour HTTP(S)_PROXY only with this set. */
export const NODE_PROXY_SWITCH = 'NODE_USE_ENV_PROXY';
/** Marker: set to the proxy URL while a shell is activated. */
export const ACTIVE_VARIABLE = 'MIMO_PROXY_ACTIVE';

export const MANAGED_VARIABLES: readonly string[] = [
  ...PROXY_VARIABLES,
  ...NO_PROXY_VARIABLES,
  NODE_PROXY_SWITCH,
  ...ADDING_CA_VARIABLES,
  ...REPLACING_CA_VARIABLES,
  ACTIVE_VARIABLE,
];

export const SAVED_PREFIX = '_MIMO_PROXY_OLD_';
export const UNSET_PREFIX = '_MIMO_PROXY_UNSET_';
export const DEACTIVATE_FUNCTION = 'mimo_proxy_deactivate';

/** Loopback never goes through the proxy (opencode needs this; Go skips loopback on its own). */
export const LOOPBACK_NO_PROXY: readonly string[] = ['localhost', '127.0.0.1', '::1'];

export type Environment = Readonly<Record<string, string | undefined>>;

export interface ActivationTarget {
  /** What HTTPS_PROXY is set to (may carry USER:PASS). */
  proxyUrl: string;
  /** The same without credentials, for MIMO_PROXY_ACTIVE. */
  marker: string;
  /** Our CA alone (<certs>/ca.pem). */
  caPath: string;
  /** Previously trusted certificates plus our CA (<certs>/bundle.pem). */
  bundlePath: string;
}

function hasOwn(env: Environment, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(env, name) && env[name] !== undefined;
}

/** Whether NAME's pre-activation value is saved (as a value or as "was unset"). */
export function isSaved(env: Environment, name: string): boolean {
  return hasOwn(env, SAVED_PREFIX + name) || hasOwn(env, UNSET_PREFIX + name);
}

/** The managed variables as they were before any activation: saved values win over current ones. */
export function originalEnvironment(env: Environment): Record<string, string | undefined> {
  const original: Record<string, string | undefined> = {};
  for (const name of MANAGED_VARIABLES) {
    if (hasOwn(env, SAVED_PREFIX + name)) original[name] = env[SAVED_PREFIX + name];
    else if (hasOwn(env, UNSET_PREFIX + name)) original[name] = undefined;
    else original[name] = env[name];
  }
  return original;
}

/** `localhost,127.0.0.1,::1` followed by the user's own entries, each once (case-insensitive), in order. */
export function mergeNoProxy(...lists: (string | undefined)[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const entry of [...LOOPBACK_NO_PROXY, ...lists.flatMap((list) => (list ?? '').split(/[\s,]+/))]) {
    const key = entry.toLowerCase();
    if (entry === '' || seen.has(key)) continue;
    seen.add(key);
    out.push(entry);
  }
  return out.join(',');
}

/** The files of CA variables the user had set before activation: their certificates go into the bundle. */
export function previousCaFiles(original: Environment): { replacing: string[]; adding: string[] } {
  const files = (names: readonly string[]): string[] => [...new Set(names.map((n) => original[n]).filter((v): v is string => v !== undefined && v !== ''))];
  return { replacing: files(REPLACING_CA_VARIABLES), adding: files(ADDING_CA_VARIABLES) };
}

/** The value of every managed variable while activated. */
export function activationValues(env: Environment, target: ActivationTarget): Record<string, string> {
  const original = originalEnvironment(env);
  const values: Record<string, string> = {};
  // ALL_PROXY is overridden rather than cleared: clients that read only ALL_PROXY then reach us too.
  for (const name of PROXY_VARIABLES) values[name] = target.proxyUrl;
  const noProxy = mergeNoProxy(original.NO_PROXY, original.no_proxy);
  for (const name of NO_PROXY_VARIABLES) values[name] = noProxy;
  values[NODE_PROXY_SWITCH] = '1';
  for (const name of ADDING_CA_VARIABLES) {
    const before = original[name];
    // One the user had already set (a corporate CA) must keep working: the bundle holds its certificates too.
    values[name] = before === undefined || before === '' || before === target.caPath ? target.caPath : target.bundlePath;
  }
  for (const name of REPLACING_CA_VARIABLES) values[name] = target.bundlePath;
  values[ACTIVE_VARIABLE] = target.marker;
  return values;
}

/** Save what is not saved yet, then set every managed variable. */
export function activationOps(env: Environment, target: ActivationTarget): EnvOp[] {
  const ops: EnvOp[] = [];
  for (const name of MANAGED_VARIABLES) {
    if (isSaved(env, name)) continue;
    const value = env[name];
    ops.push(value === undefined ? { op: 'set', name: UNSET_PREFIX + name, value: '1' } : { op: 'set', name: SAVED_PREFIX + name, value });
  }
  for (const [name, value] of Object.entries(activationValues(env, target))) ops.push({ op: 'set', name, value });
  return ops;
}

/** Give back each saved value (unset what was unset) and drop the saved copies. Empty when nothing was saved. */
export function deactivationOps(env: Environment): EnvOp[] {
  const ops: EnvOp[] = [];
  for (const name of MANAGED_VARIABLES) {
    if (hasOwn(env, SAVED_PREFIX + name)) {
      ops.push({ op: 'set', name, value: env[SAVED_PREFIX + name] as string }, { op: 'unset', name: SAVED_PREFIX + name });
    } else if (hasOwn(env, UNSET_PREFIX + name)) {
      ops.push({ op: 'unset', name }, { op: 'unset', name: UNSET_PREFIX + name });
    }
  }
  return ops;
}

/** The environment after ops (for `run`, which sets them on a child). */
export function applyOps(env: Environment, ops: readonly EnvOp[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  for (const op of ops) {
    if (op.op === 'set') out[op.name] = op.value;
    else delete out[op.name];
  }
  return out;
}

/** Which shell to print for: the basename of $SHELL (the login shell), else the platform's usual one. */
export function detectShell(shellVariable: string | undefined, platform: NodeJS.Platform): Shell {
  const base = (shellVariable ?? '').split(/[\\/]/).pop()?.replace(/\.exe$/i, '').toLowerCase() ?? '';
  if (base === 'zsh' || base === 'fish' || base === 'bash') return base;
  if (base === 'pwsh' || base === 'powershell') return 'powershell';
  if (base === '' && platform === 'win32') return 'powershell';
  return 'bash'; // sh, dash, ksh...: the POSIX output is plain `export`
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkName(name: string): string {
  if (!NAME.test(name)) throw new Error(`not a variable name: ${JSON.stringify(name)}`);
  return name;
}

/** POSIX single quotes: nothing inside is special except `'`, which closes, so it becomes '\'' . */
export function quotePosix(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** fish single quotes: only `\` and `'` are special inside, escaped with a backslash. */
export function quoteFish(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** PowerShell single quotes: a quote is doubled; PowerShell also takes the typographic quotes U+2018..U+201B as quotes. */
export function quotePowerShell(value: string): string {
  return `'${value.replace(/['\u2018\u2019\u201A\u201B]/g, (q) => q + q)}'`;
}

/** cmd: `set "K=v"` keeps spaces and & | < > literal; a line break cannot be expressed at all. */
function cmdValue(name: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error(`${name} holds a line break, which cmd cannot set`);
  return value;
}

export function renderOp(shell: Shell, op: EnvOp): string {
  const name = checkName(op.name);
  switch (shell) {
    case 'bash':
    case 'zsh':
      return op.op === 'set' ? `export ${name}=${quotePosix(op.value)}` : `unset ${name}`;
    case 'fish':
      return op.op === 'set' ? `set -gx ${name} ${quoteFish(op.value)}` : `set -e -g ${name}`;
    case 'powershell':
      return op.op === 'set' ? `$Env:${name} = ${quotePowerShell(op.value)}` : `Remove-Item -Path Env:${name} -ErrorAction SilentlyContinue`;
    case 'cmd':
      return op.op === 'set' ? `set "${name}=${cmdValue(name, op.value)}"` : `set "${name}="`;
  }
}

/** The shell function that undoes activation from the saved values; cmd has no functions (undefined). */
export function deactivateFunction(shell: Shell): string | undefined {
  const f = DEACTIVATE_FUNCTION;
  const lines: string[] = [];
  switch (shell) {
    case 'bash':
    case 'zsh':
      lines.push(`${f}() {`);
      for (const n of MANAGED_VARIABLES) {
        const old = SAVED_PREFIX + n;
        const was = UNSET_PREFIX + n;
        lines.push(`  if [ -n "\${${old}+x}" ]; then export ${n}="$${old}"; unset ${old}; elif [ -n "\${${was}+x}" ]; then unset ${n} ${was}; fi`);
      }
      lines.push(`  unset -f ${f}`, '}');
      return lines.join('\n');
    case 'fish':
      lines.push(`function ${f}`);
      for (const n of MANAGED_VARIABLES) {
        const old = SAVED_PREFIX + n;
        const was = UNSET_PREFIX + n;
        lines.push(`  if set -q ${old}; set -gx ${n} $${old}; set -e -g ${old}; else if set -q ${was}; set -e -g ${n}; set -e -g ${was}; end`);
      }
      lines.push(`  functions -e ${f}`, 'end');
      return lines.join('\n');
    case 'powershell':
      lines.push(`function global:${f} {`);
      for (const n of MANAGED_VARIABLES) {
        const old = SAVED_PREFIX + n;
        const was = UNSET_PREFIX + n;
        lines.push(
          `  if (Test-Path -Path Env:${old}) { $Env:${n} = $Env:${old}; Remove-Item -Path Env:${old} } elseif (Test-Path -Path Env:${was}) { Remove-Item -Path Env:${n} -ErrorAction SilentlyContinue; Remove-Item -Path Env:${was} }`,
        );
      }
      lines.push(`  Remove-Item -Path Function:${f} -ErrorAction SilentlyContinue`, '}');
      return lines.join('\n');
    case 'cmd':
      return undefined;
  }
}

function removeFunction(shell: Shell): string | undefined {
  switch (shell) {
    case 'bash':
    case 'zsh':
      return `unset -f ${DEACTIVATE_FUNCTION} 2>/dev/null || true`;
    case 'fish':
      return `functions -e ${DEACTIVATE_FUNCTION}`;
    case 'powershell':
      return `Remove-Item -Path Function:${DEACTIVATE_FUNCTION} -ErrorAction SilentlyContinue`;
    case 'cmd':
      return undefined;
  }
}

function script(lines: (string | undefined)[]): string {
  return lines.filter((l): l is string => l !== undefined).join('\n') + '\n';
}

/** What `mimo-proxy env` prints: save the originals, set the variables, define the deactivate function. */
export function activationScript(shell: Shell, env: Environment, target: ActivationTarget): string {
  return script([...activationOps(env, target).map((op) => renderOp(shell, op)), deactivateFunction(shell)]);
}

/** What `mimo-proxy env --unset` prints: the previous values back, and no deactivate function. */
export function deactivationScript(shell: Shell, env: Environment): string {
  return script([...deactivationOps(env).map((op) => renderOp(shell, op)), removeFunction(shell)]);
}
