/**
 * The registry of providers: upstream APIs that enforce the reasoning rule
 * with a hard 400 (PROVIDERS.md). A provider is one entry, the one place a
 * new one is added: its domains (each with every subdomain), which dialect
 * serves which of its paths, its rejection texts, how thinking is switched
 * on, how far the retry ladder goes, and which other avoidable 400s its
 * requests get repaired for. `--providers` enables entries (MiMo alone by
 * default); a host that no enabled provider covers is tunnelled untouched.
 *
 * Placeholders (reasoning/degrade.ts) are always non-empty and specific to
 * their turn, which is what every provider here needs: DeepSeek rejects `""`
 * and a constant placeholder made models parrot it.
 */
import { isOurHost } from './net/hosts.js';
import { ANY_REASONING_REJECTION, type UpstreamRules } from './reasoning/upstream.js';

/**
 * One surface: the dialect (by its name in ../dialects.ts) serving the request paths that match.
 * By name, so this registry loads no dialect: `mimo-proxy env` reads it on every activation.
 */
export interface Surface {
  dialect: string;
  /** The request path (query included). */
  path: RegExp;
}

/** The Anthropic-compatible endpoint: base `https://<host>/anthropic`. */
export const ANTHROPIC_MESSAGES_PATH = /^\/anthropic\/v1\/messages\/?(?:[?#].*)?$/;
/** OpenAI chat completions on any base path (`/v1/chat/completions`, `/chat/completions`, `/coding/v1/...`). */
export const CHAT_COMPLETIONS_PATH = /^(?:\/[^?#]*)?\/chat\/completions\/?(?:[?#].*)?$/;
/** The OpenAI Responses API on any base path (`/v1/responses`): what Codex speaks. Not its sub-paths. */
export const RESPONSES_PATH = /^(?:\/[^?#]*)?\/responses\/?(?:[?#].*)?$/;

export interface Provider extends UpstreamRules {
  /** What `--providers` takes. */
  readonly id: string;
  /** For people: the banner, the status page. */
  readonly label: string;
  /** Domains intercepted when it is on, each with all its subdomains (MiMo's are --hosts). */
  readonly domains: readonly string[];
  /** Its surfaces: which dialect serves which request path, the first match winning. */
  readonly surfaces: readonly Surface[];
  /** What is known of its rule: checked against its live API, or only reported (PROVIDERS.md). */
  readonly evidence: 'platform notice' | 'reported';
}

/** DeepSeek's chat completions: on its bare base URL and on `/v1`. */
const DEEPSEEK_CHAT_PATH = /^\/(?:v1\/)?chat\/completions\/?(?:[?#].*)?$/;
/** DeepSeek's Responses API, beside its chat completions. */
const DEEPSEEK_RESPONSES_PATH = /^\/(?:v1\/)?responses\/?(?:[?#].*)?$/;

export const PROVIDERS: readonly Provider[] = [
  {
    id: 'mimo',
    label: 'Xiaomi MiMo',
    domains: ['xiaomimimo.com'],
    surfaces: [
      { dialect: 'anthropic', path: ANTHROPIC_MESSAGES_PATH },
      { dialect: 'chat', path: CHAT_COMPLETIONS_PATH },
      { dialect: 'responses', path: RESPONSES_PATH },
    ],
    // "The reasoning_content in the thinking mode must be passed back to the API." on both
    // surfaces (MIMO-API.md), matched loosely: the wording is only known from one notice (on the
    // Responses surface none is known yet; DeepSeek's there names `reasoning_text`).
    rejections: [ANY_REASONING_REJECTION],
    repairs: { toolCallContent: true, toolCallNames: true },
    evidence: 'platform notice',
  },
  {
    id: 'deepseek',
    label: 'DeepSeek',
    domains: ['api.deepseek.com'],
    surfaces: [
      { dialect: 'chat', path: DEEPSEEK_CHAT_PATH },
      { dialect: 'anthropic', path: ANTHROPIC_MESSAGES_PATH },
      { dialect: 'responses', path: DEEPSEEK_RESPONSES_PATH },
    ],
    rejections: [
      // chat
      /The `reasoning_content` in the thinking mode must be passed back to the API/,
      // chat, V3.2
      /Missing `reasoning_content` field in the assistant message at message index \d+/,
      // Anthropic
      /The content\[\]\.thinking in the thinking mode must be passed back to the API/,
      // Responses (what Codex meets there)
      /The `reasoning_text` in the thinking mode must be passed back to the API/,
    ],
    // `deepseek-chat` is its non-thinking model; `deepseek-reasoner` and the V4 models think
    // unless `thinking` says otherwise.
    thinkingOffModels: /^deepseek-chat$/,
    // Reported: once tools are declared, every earlier assistant turn needs its reasoning.
    plainTurnsWithTools: true,
    evidence: 'reported',
  },
  {
    id: 'kimi',
    label: 'Moonshot Kimi',
    domains: ['api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com'],
    // Chat on any base path: `https://api.moonshot.ai/v1`, `https://api.kimi.com/coding/v1`.
    surfaces: [{ dialect: 'chat', path: CHAT_COMPLETIONS_PATH }],
    rejections: [/thinking is enabled but reasoning_content is missing in assistant tool call message at index \d+/],
    evidence: 'reported',
  },
];

/** The provider ids `--providers` takes. */
export const PROVIDER_IDS: readonly string[] = PROVIDERS.map((provider) => provider.id);

/** The default of `--providers`: MiMo alone, so nothing changes for anyone who does not ask. */
export const DEFAULT_PROVIDERS = 'mimo';

export function providerById(id: string): Provider | undefined {
  return PROVIDERS.find((provider) => provider.id === id);
}

/** An enabled provider and the domains it intercepts (MiMo's from --hosts), as the configuration holds it. */
export interface EnabledProvider {
  id: string;
  domains: string[];
}

/**
 * The enabled provider whose domains cover `host`; undefined: not ours. When two cover it
 * (--hosts may name another provider's domain), the one whose domain names the host most
 * closely wins, and on a tie the provider whose own entry lists that domain over one given it
 * by --hosts; only then the first in the list. Never the order alone: `--hosts
 * xiaomimimo.com,api.deepseek.com` written before DeepSeek was a provider must not give
 * DeepSeek's host MiMo's rules once DeepSeek is enabled.
 */
export function providerForHost(host: string, enabled: readonly EnabledProvider[]): Provider | undefined {
  let best: { provider: Provider; length: number; own: boolean } | undefined;
  for (const { id, domains } of enabled) {
    const provider = providerById(id);
    if (!provider) continue;
    for (const domain of domains) {
      if (!isOurHost(host, [domain])) continue;
      const length = domain.replace(/^\./, '').length;
      const own = provider.domains.includes(domain);
      if (!best || length > best.length || (length === best.length && own && !best.own)) best = { provider, length, own };
    }
  }
  return best?.provider;
}

/** Every provider with its own domains, enabled or not (direct mode names its upstream itself). */
export const ALL_PROVIDERS: readonly EnabledProvider[] = PROVIDERS.map((provider) => ({ id: provider.id, domains: [...provider.domains] }));

/** The name of the dialect serving a request to `provider`, or undefined: the request passes through untouched. */
export function surfaceFor(provider: Provider, method: string | undefined, path: string): string | undefined {
  if (method !== 'POST') return undefined;
  return provider.surfaces.find((surface) => surface.path.test(path))?.dialect;
}

/** A word for a POSIX shell: as is when plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:,=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The one command that makes a new CA for these providers in this certs folder (named by the
 * CA_NOT_COVERING error): `--hosts` only when MiMo's domains are not its default.
 */
export function caRenewCommand(config: { certsDir: string; providers: readonly EnabledProvider[] }): string {
  const words = ['mimo-proxy', 'ca', '--renew', '--providers', config.providers.map((provider) => provider.id).join(',')];
  const mimo = config.providers.find((provider) => provider.id === 'mimo');
  const defaults = providerById('mimo')?.domains ?? [];
  if (mimo && mimo.domains.join(',') !== defaults.join(',')) words.push('--hosts', mimo.domains.join(','));
  words.push('--certs', config.certsDir);
  return words.map(shellWord).join(' ');
}
