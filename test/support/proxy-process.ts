/**
 * The proxy as a user runs it: the compiled CLI (`node dist/cli/main.js start`) in its own
 * process, so a test tells a crash (the process exits) from a refused request, and can run it
 * under a lower file-descriptor limit. Every process started here is stopped by stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

const START_MS = 15_000;
const STOP_MS = 5_000;

export interface ProxyProcess {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it logged (stderr) so far. */
  log(): string;
  /** Whether the process still runs. */
  alive(): boolean;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

/** `mimo-proxy start --port 0 --no-persist ARGS` (without --no-persist beside a --store), optionally under `ulimit -n fileLimit`. */
export async function spawnProxy(args: string[], options: { fileLimit?: number } = {}): Promise<ProxyProcess> {
  const argv = [CLI, 'start', '--port', '0', ...(args.includes('--store') ? [] : ['--no-persist']), ...args];
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^MIMO_PROXY_|proxy$/i.test(name)) env[name] = value;
  const child =
    options.fileLimit === undefined
      ? spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -n ${options.fileLimit} && exec "$0" "$@"`, process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the proxy printed no "listening on" line in ${START_MS} ms; log:\n${log}`));
    }, START_MS);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited (${code ?? signal}) before listening; log:\n${log}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    log: () => log,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}
