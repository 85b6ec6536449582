/**
 * The layout rule: each folder of src/ is one step of the data's path and
 * says what it may import (README, Development). Checked over the sources
 * themselves, so a new import that breaks the rule fails `npm test`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** The leaves: import no other part of the project (config.ts only types from net/). */
const LEAVES = ['errors.ts', 'log.ts', 'stats.ts', 'version.ts', 'config.ts'];

/** Each part of src/ (a folder, or a file at the top) and the parts it may import. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  'errors.ts': [],
  'log.ts': [],
  'stats.ts': [],
  'version.ts': [],
  'config.ts': ['errors.ts', 'log.ts', 'net'],
  net: LEAVES,
  reasoning: LEAVES,
  chat: [...LEAVES, 'reasoning'],
  anthropic: [...LEAVES, 'reasoning'],
  responses: [...LEAVES, 'reasoning'],
  'dialects.ts': [...LEAVES, 'reasoning', 'chat', 'anthropic', 'responses'],
  'providers.ts': [...LEAVES, 'net', 'reasoning'],
  cache: LEAVES,
  ca: [...LEAVES, 'net'],
  setup: [...LEAVES, 'net', 'ca'],
  proxy: [...LEAVES, 'net', 'reasoning', 'dialects.ts', 'providers.ts', 'cache', 'ca'],
  cli: [...LEAVES, 'net', 'reasoning', 'dialects.ts', 'providers.ts', 'cache', 'ca', 'setup', 'proxy'],
  'index.ts': [...LEAVES, 'net', 'reasoning', 'dialects.ts', 'providers.ts', 'cache', 'ca', 'proxy', 'cli'],
};

/**
 * Modules that open sockets or wrap them: only proxy/ (and cli/, whose `status` asks a port)
 * use them, and the shared store's connection: ioredis, imported by cache/redis.ts alone.
 */
const SOCKET_MODULES = ['node:net', 'node:http', 'node:https', 'http-mitm-proxy', 'ioredis', 'net', 'http', 'https'];
const MAY_OPEN_SOCKETS = ['proxy', 'cli'];
/** Each wrapping package and the one file that may import it. */
const SOLE_IMPORTER: Record<string, string> = { 'http-mitm-proxy': path.join('proxy', 'engine.ts'), ioredis: path.join('cache', 'redis.ts') };

/** `import { isIP } from 'node:net'`: pure functions of a string, no socket. */
function onlyAddressChecks(specifier: string, clause: string): boolean {
  if (specifier !== 'node:net' && specifier !== 'net') return false;
  const names = /^\{([^}]*)\}$/.exec(clause)?.[1];
  return names !== undefined && names.split(',').every((name) => ['isIP', 'isIPv4', 'isIPv6', 'type BlockList'].includes(name.trim()) || name.trim().startsWith('type '));
}

interface Import {
  file: string;
  specifier: string;
  typeOnly: boolean;
  /** What it takes: the import clause (`{ isIP }`, `http`, ...), '' for a bare or dynamic import. */
  clause: string;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const found: Import[] = [];
  const statement = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\bfrom\s+['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(statement)) found.push({ file, specifier: m[4] as string, typeOnly: m[2] !== undefined, clause: (m[3] as string).trim() });
  const bare = /^\s*import\s+['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(bare)) found.push({ file, specifier: m[1] as string, typeOnly: false, clause: '' });
  const dynamic = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(dynamic)) found.push({ file, specifier: m[1] as string, typeOnly: false, clause: '' });
  const builtin = /getBuiltinModule\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(builtin)) found.push({ file, specifier: m[1] as string, typeOnly: false, clause: '' });
  return found;
}

/** The part of src/ a file belongs to: its top folder, or its own name at the top. */
function partOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0] as string;
}

const FILES = sources(SRC);
const IMPORTS = FILES.flatMap(importsOf);

describe('the layout of src/', () => {
  it('has a rule for every part', () => {
    expect([...new Set(FILES.map(partOf))].filter((part) => !(part in MAY_IMPORT))).toEqual([]);
  });

  it('imports across parts only as the rule allows', () => {
    const broken: string[] = [];
    for (const { file, specifier, typeOnly } of IMPORTS) {
      if (!specifier.startsWith('.')) continue;
      const from = partOf(file);
      const to = partOf(path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts'));
      if (from === to) continue;
      // config.ts takes only types from net/ (the --connect-to rule's shape).
      if (from === 'config.ts' && to === 'net' && !typeOnly) broken.push(`${path.relative(SRC, file)} -> ${specifier} (values from net/)`);
      if (!(MAY_IMPORT[from] ?? []).includes(to)) broken.push(`${path.relative(SRC, file)} -> ${specifier}`);
    }
    expect(broken).toEqual([]);
  });

  it('opens sockets only in proxy/ (and cli/ to ask a port), speaks to http-mitm-proxy only in proxy/engine.ts and to Redis only in cache/redis.ts', () => {
    const broken: string[] = [];
    for (const { file, specifier, typeOnly, clause } of IMPORTS) {
      if (typeOnly || !SOCKET_MODULES.includes(specifier) || onlyAddressChecks(specifier, clause)) continue;
      const relative = path.relative(SRC, file);
      const sole = SOLE_IMPORTER[specifier];
      if (sole !== undefined ? relative !== sole : !MAY_OPEN_SOCKETS.includes(partOf(file))) broken.push(`${relative} -> ${specifier}`);
    }
    expect(broken).toEqual([]);
  });

  it('reads every import it checks (the patterns above still match this code base)', () => {
    const local = IMPORTS.filter((i) => i.specifier.startsWith('.'));
    expect(local.length).toBeGreaterThan(100);
    expect(IMPORTS.some((i) => i.specifier === 'http-mitm-proxy')).toBe(true);
    expect(IMPORTS.some((i) => i.specifier === 'ioredis')).toBe(true);
    expect(IMPORTS.some((i) => i.typeOnly)).toBe(true);
  });
});
