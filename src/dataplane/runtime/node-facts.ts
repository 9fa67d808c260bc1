/**
 * Facts about the machine a proxy runs on, for its `/config_dump` (`nodeInfo`): cores, memory, CPU model, OS and
 * kernel, read with `systeminformation`. What does not change while the process runs (CPU, OS) is read once;
 * memory is read on each call (one /proc/meminfo read on Linux).
 */
import si from 'systeminformation';

export interface NodeInfo {
  hostname: string;
  cpus: { logical: number; physical: number; model: string };
  memory: { totalBytes: number; availableBytes: number };
  os: { platform: string; distro: string; release: string; kernel: string; arch: string };
}

type Static = Pick<NodeInfo, 'hostname' | 'cpus' | 'os'>;

export class NodeFacts {
  private fixed: Promise<Static> | undefined;

  async read(): Promise<NodeInfo> {
    this.fixed ??= Promise.all([si.cpu(), si.osInfo()]).then(([cpu, os]) => ({
      hostname: os.hostname,
      cpus: { logical: cpu.cores, physical: cpu.physicalCores, model: [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') },
      os: { platform: os.platform, distro: os.distro, release: os.release, kernel: os.kernel, arch: os.arch },
    }));
    const [fixed, mem] = await Promise.all([this.fixed, si.mem()]);
    return { ...fixed, memory: { totalBytes: mem.total, availableBytes: mem.available } };
  }
}
