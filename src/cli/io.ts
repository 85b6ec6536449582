/** What a command touches of its process, so tests can run commands in-process. */
export interface CommandIo {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  stdout(text: string): void;
  stderr(text: string): void;
}

export function processIo(): CommandIo {
  return {
    env: process.env,
    platform: process.platform,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
}
