/**
 * File I/O for the certificates folder: private folders, files written with their final
 * mode from the first byte, and errors a user can act on.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MimoProxyError } from '../errors.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
export const PUBLIC_FILE_MODE = 0o644;

const REASONS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'a file is in the way',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'it is a folder',
};

export function errnoCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "permission denied (EACCES)", or the error's own message for codes we have no words for. */
export function describeIoError(error: unknown): string {
  const code = errnoCode(error);
  const reason = code !== undefined ? REASONS[code] : undefined;
  if (reason !== undefined) return `${reason} (${code})`;
  return error instanceof Error ? error.message : String(error);
}

/** What a user sees when the folder cannot hold the CA: the path, the reason, and the flag that fixes it. */
export function unwritableError(what: string, target: string, error: unknown): MimoProxyError {
  return new MimoProxyError(
    'CERTS_DIR_UNWRITABLE',
    `could not write ${what} to ${target}: ${describeIoError(error)}`,
    'pass --certs DIR with a directory you own',
    { cause: error },
  );
}

/**
 * Creates `dir` (and parents) as a private folder. A folder we just made is chmod'ed to 0700
 * because mkdir's mode is filtered through the umask; a folder that already existed keeps its
 * mode (it may be a user's folder), except that `tightenExisting` narrows it to 0700.
 */
export async function ensurePrivateDir(dir: string, tightenExisting = false): Promise<void> {
  const created = await makeDirs(dir, PRIVATE_DIR_MODE);
  const stat = await fs.stat(dir);
  if (!stat.isDirectory()) {
    throw Object.assign(new Error(`${dir} is not a folder`), { code: 'ENOTDIR' });
  }
  if ((created !== undefined || tightenExisting) && (stat.mode & 0o777) !== PRIVATE_DIR_MODE) {
    try {
      await fs.chmod(dir, PRIVATE_DIR_MODE);
    } catch (error) {
      // A folder owned by someone else: its owner decides, and our key files are 0600 anyway.
      if (created !== undefined) throw error;
    }
  }
}

/**
 * `mkdir -p`, one level at a time; returns the first folder it made (undefined: it existed), as
 * fs.mkdir's `recursive` does. Not that option: it never returns on a pseudo-filesystem that
 * answers ENOENT under a parent that exists (/proc), where this throws the ENOENT.
 */
async function makeDirs(dir: string, mode: number): Promise<string | undefined> {
  try {
    await fs.mkdir(dir, { mode });
    return dir;
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST') return undefined;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    const first = await makeDirs(parent, mode);
    try {
      await fs.mkdir(dir, { mode });
    } catch (again) {
      // Made meanwhile by another process: not ours.
      if (errnoCode(again) === 'EEXIST') return first;
      throw again;
    }
    return first ?? dir;
  }
}

/** The file's text, or undefined when it does not exist. Other errors are thrown. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** Narrows a key file that is readable by group or others to 0600 (best effort). */
export async function tightenKeyFile(file: string): Promise<void> {
  try {
    const stat = await fs.stat(file);
    if ((stat.mode & 0o077) !== 0) await fs.chmod(file, PRIVATE_FILE_MODE);
  } catch {
    // Not ours to fix (another owner, read-only mount): the key still works.
  }
}

/**
 * Writes a temp file next to `file`, created with `mode` at open time (so a key is never
 * world-readable, not even for an instant) and flushed to disk. Returns its path.
 */
async function writeTemp(file: string, data: string, mode: number): Promise<string> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    // open's mode passes through the umask; chmod sets exactly `mode` (0644 for ca.pem).
    await handle.chmod(mode);
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  return temp;
}

/** Filesystems without hard links (some network and FAT mounts) answer link() with these. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * Creates `file` with `data` only if it does not exist yet: never overwrites, and other
 * readers see either no file or the whole file. Returns false when the file already existed.
 */
export async function writeNewFile(file: string, data: string, mode: number): Promise<boolean> {
  const temp = await writeTemp(file, data, mode);
  try {
    await fs.link(temp, file);
    return true;
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST') return false;
    if (code === undefined || !NO_HARD_LINKS.has(code)) throw error;
  } finally {
    await fs.rm(temp, { force: true });
  }
  // No hard links here: exclusive create instead (not atomic, but still never overwrites).
  try {
    await fs.writeFile(file, data, { mode, flag: 'wx' });
    await fs.chmod(file, mode);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  }
}

/** Replaces `file` atomically (temp file, then rename): readers see the old or the new whole file. */
export async function replaceFile(file: string, data: string, mode: number): Promise<void> {
  const temp = await writeTemp(file, data, mode);
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}
