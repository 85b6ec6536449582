import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS, MimoProxyError, type ErrorCode } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The README's table, as it must read: one row per code, in the registry's order. */
function errorTable(): string {
  const rows = Object.entries(ERRORS).map(([code, spec]) => `| \`${code}\` | ${spec.meaning} | ${spec.fix} |`);
  return ['| code | meaning | fix |', '|---|---|---|', ...rows].join('\n');
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** Each code a throw site in src/ names: `new MimoProxyError(` followed by its code string. */
function thrownCodes(): Set<string> {
  const codes = new Set<string>();
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/new MimoProxyError\(\s*'([A-Z_]+)'/g)) codes.add(m[1] as string);
  }
  return codes;
}

describe('the error code registry', () => {
  it('is what the README lists under "Error codes", row for row', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = /\n### Error codes\n([\s\S]*?)(?=\n##)/.exec(readme)?.[1] ?? '';
    // On a mismatch the diff shows the rows to paste into the README.
    expect(section).toContain(errorTable());
  });

  it('lists every code a throw site uses, and no code that nothing throws', () => {
    const thrown = thrownCodes();
    expect(thrown.size).toBeGreaterThan(10);
    expect([...thrown].filter((code) => !Object.hasOwn(ERRORS, code))).toEqual([]);
    expect(Object.keys(ERRORS).filter((code) => !thrown.has(code))).toEqual([]);
  });

  it('gives each code a meaning and a fix, each one phrase without a pipe that would split the table', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
      for (const text of [spec.meaning, spec.fix]) {
        expect(text.length, code).toBeGreaterThan(10);
        expect(text, code).not.toMatch(/[|\n]|\.$/);
      }
    }
  });

  it('uses the registry fix as the hint when a throw site gives none', () => {
    const code: ErrorCode = 'OPEN_PROXY';
    const err = new MimoProxyError(code, '--host 0.0.0.0 would let other machines use this proxy without a password');
    expect(err.hint).toBe(ERRORS.OPEN_PROXY.fix);
    expect(err.format()).toBe(`ERROR: --host 0.0.0.0 would let other machines use this proxy without a password. Fix: ${ERRORS.OPEN_PROXY.fix}`);
    expect(new MimoProxyError('BAD_OPTION', 'x', 'a specific fix').hint).toBe('a specific fix');
  });
});
