/**
 * Starts the real proxy (in-process, port 0) in front of the fake MiMo
 * upstream, routed with --connect-to exactly as a user would, with a fresh
 * certs folder. Every test stops what it starts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, resolveConfig } from '../../src/cli/options.js';
import { createLogger, type Logger } from '../../src/log.js';
import { startProxy, type ConnectionLimits, type RunningProxy } from '../../src/proxy/server.js';
import { startFakeMimo, type FakeMimo, type FakeMimoOptions } from './fake-mimo.js';
import { ConnectAgent } from './proxy-client.js';

export interface Harness {
  proxy: RunningProxy;
  certsDir: string;
  logLines: string[];
  stop(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `mimo-${prefix}-`));
}

/** Proxy args for a fake upstream: MiMo's hosts go to it, its CA is trusted upstream. */
export function upstreamArgs(fake: FakeMimo): string[] {
  return [
    '--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${fake.port}`,
    '--connect-to', `token-plan-cn.xiaomimimo.com:443:127.0.0.1:${fake.port}`,
    '--upstream-ca', fake.ca.certPath,
  ];
}

export async function startHarness(args: string[], options: { certsDir?: string; keepCerts?: boolean; limits?: Partial<ConnectionLimits> } = {}): Promise<Harness> {
  const certsDir = options.certsDir ?? tempDir('certs');
  const logLines: string[] = [];
  const log: Logger = createLogger('debug', (line) => {
    logLines.push(line);
  });
  const config = resolveConfig(parseArgs(['--port', '0', '--certs', certsDir, ...args]).options);
  const proxy = await startProxy(config, log, options.limits);
  return {
    proxy,
    certsDir,
    logLines,
    async stop() {
      await proxy.close();
      if (!options.keepCerts && !options.certsDir) rmSync(certsDir, { recursive: true, force: true });
    },
  };
}

export interface Rig {
  fake: FakeMimo;
  h: Harness;
  agent: ConnectAgent;
}

/** The usual integration setup: a fake MiMo, the proxy in front of it (`args` added; a function when they name the fake), a CONNECT agent. */
export async function startRig(fakeOptions: FakeMimoOptions = {}, args: string[] | ((fake: FakeMimo) => string[]) = []): Promise<Rig> {
  const fake = await startFakeMimo(fakeOptions);
  const h = await startHarness([...upstreamArgs(fake), ...(typeof args === 'function' ? args(fake) : args)]);
  return { fake, h, agent: new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port }) };
}

export async function stopRig(rig: Partial<Rig>): Promise<void> {
  rig.agent?.destroy();
  await rig.h?.stop();
  await rig.fake?.close();
}
