import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StraitProcess } from './procs.js';

export interface ControllerHandle {
  proc: StraitProcess;
  xds: string;
  admin: string;
  rootPem: string;
  rootFile: string;
  dataDir: string;
  token(file: string): string;
  credentials(): grpc.ChannelCredentials;
  get(path: string): Promise<{ status: number; body: any; text: string }>;
  stop(): Promise<number | null>;
}

/** Starts a real `strait controller` on free loopback ports and waits for "controller ready". */
export async function startController(configDir: string, dataDir: string, extra: string[] = [], xdsAddress = '127.0.0.1:0'): Promise<ControllerHandle> {
  return startControllerWith(['--config-dir', configDir, ...extra], dataDir, xdsAddress);
}

/** Like startController, with the source flags given by the caller (e.g. `--source kubernetes --kubeconfig F`). */
export async function startControllerWith(sourceArgs: string[], dataDir: string, xdsAddress = '127.0.0.1:0'): Promise<ControllerHandle> {
  const proc = StraitProcess.start(['controller', '--data-dir', dataDir,
    '--xds-address', xdsAddress, '--admin-address', '127.0.0.1:0', ...sourceArgs]);
  const ready = await proc.waitFor((l) => l.msg === 'controller ready', 20_000, 'controller ready');
  const rootFile = ready.rootCert as string;
  const rootPem = readFileSync(rootFile, 'utf8');
  const admin = ready.admin as string;
  return {
    proc, xds: ready.xds as string, admin, rootPem, rootFile, dataDir,
    token: (file) => readFileSync(join(dataDir, 'tokens', file), 'utf8').trim(),
    credentials: () => grpc.credentials.createSsl(Buffer.from(rootPem)),
    async get(path) {
      const res = await fetch(`http://${admin}${path}`);
      const text = await res.text();
      let body: unknown;
      try { body = JSON.parse(text); } catch { body = undefined; }
      return { status: res.status, body, text };
    },
    stop: () => proc.stop(),
  };
}
