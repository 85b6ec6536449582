/**
 * A real redis-server (Debian's package) for the shared-store tests: one
 * process on a free loopback port, no persistence, that a test can stop,
 * pause (SIGSTOP), resume and restart on the same port, with a password or a
 * TLS port when asked. Every instance is stopped by the test that started it;
 * `hasRedisServer` lets a file skip with a reason when the binary is absent
 * (.ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.js';
import type { TestCa } from './pki.js';

export const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

export interface RedisServerOptions {
  password?: string;
  /** Serve TLS (only) with a certificate for 127.0.0.1 from this CA. */
  tlsCa?: TestCa;
  /** The names that certificate is for (default 127.0.0.1 and localhost). */
  tlsNames?: string[];
  /** This port instead of a free one (a server that comes up where a proxy already looks). */
  port?: number;
}

export interface RedisServer {
  /** The port clients use (the TLS port with tlsCa). */
  readonly port: number;
  /** redis://127.0.0.1:PORT (rediss:// with TLS; no credentials). */
  readonly url: string;
  /** Stops the process (SIGTERM, then SIGKILL); its data is gone (no persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Stops it for good and removes its folder. */
  dispose(): Promise<void>;
  /** One command through redis-cli (plain port only), e.g. ['DBSIZE']. */
  cli(args: string[]): string;
}

/** Resolves once something accepts connections on the port (at most `ms`). */
async function waitForPort(port: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server did not listen on ${port} within ${ms} ms`);
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-redis-'));
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  if (options.password) args.push('--requirepass', options.password);
  if (options.tlsCa) {
    const leaf = options.tlsCa.issue(options.tlsNames ?? ['127.0.0.1', 'localhost']);
    writeFileSync(path.join(dir, 'cert.pem'), leaf.certPem);
    writeFileSync(path.join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'cert.pem'), '--tls-key-file', path.join(dir, 'key.pem'), '--tls-auth-clients', 'no');
  } else {
    args.push('--port', String(port));
  }
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `${options.tlsCa ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    async start() {
      if (child) return;
      child = spawn('redis-server', args, { stdio: 'ignore' });
      await waitForPort(port);
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      running.kill('SIGCONT');
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    cli(cliArgs) {
      const auth = options.password ? ['-a', options.password, '--no-auth-warning'] : [];
      return spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...cliArgs], { encoding: 'utf8', timeout: 5000 }).stdout.trim();
    },
  };
  await server.start();
  return server;
}
