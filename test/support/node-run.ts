/**
 * One `node ARGS` process run to its end, as a user runs the CLI: its exit
 * code and everything it printed. Bounded: SIGKILLed after `ms`; `until`
 * ends it early (one SIGTERM) once stdout matches.
 */
import { spawn } from 'node:child_process';

export interface NodeRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runNode(args: readonly string[], options: { env?: NodeJS.ProcessEnv; ms?: number; until?: RegExp } = {}): Promise<NodeRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...args], { env: options.env ?? {}, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.ms ?? 20_000);
    let stopped = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      // Once: a second SIGTERM would meet Node's default handler and kill it mid-shutdown.
      if (!stopped && options.until?.test(stdout)) {
        stopped = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
