import { readFile } from 'node:fs/promises';
import type { Pod, PodProcess } from '../harness/index.ts';
import { runCommandSync } from '../../../src/dev/netns/command-runner.ts';
import { waitFor } from '../../../src/dev/netns/wait.ts';

/** tcpdump is not part of the harness's needs: the wire-capture test says it is skipped without it. */
export function tcpdumpAvailable(): boolean {
  return runCommandSync('tcpdump', ['--version']).code === 0;
}

/**
 * The bytes on a pod's wire: tcpdump on the pod's eth0 (every packet into and out of the
 * pod), written as a pcap file. The tests search the raw capture for byte patterns: a
 * plaintext marker that must not appear, TLS record headers that must.
 */
export class WireCapture {
  readonly #proc: PodProcess;
  readonly #file: string;

  private constructor(proc: PodProcess, file: string) {
    this.#proc = proc;
    this.#file = file;
  }

  /** Starts capturing TCP on `pod`'s eth0 into `file`; resolves once tcpdump listens. */
  static async start(pod: Pod, file: string): Promise<WireCapture> {
    // --immediate-mode and -U: each packet is read and written at once (without them a capture
    // stopped right after the traffic holds none: they wait in the kernel's ring buffer); -Z root: Debian's
    // tcpdump drops to its own user before opening the file, which then cannot be created.
    const proc = pod.spawn('tcpdump', ['-i', 'eth0', '-n', '-s', '0', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'tcp'], { label: 'tcpdump' });
    await proc.waitForLine('listening on eth0');
    return new WireCapture(proc, file);
  }

  /**
   * Waits until the capture holds `bytes` (a marker sent last): on a loaded machine tcpdump can
   * be scheduled after the traffic ends, and a capture stopped at once would miss packets that
   * were on the wire. Everything sent before the marker is in the file once the marker is.
   */
  async waitForBytes(what: string, bytes: Buffer): Promise<void> {
    await waitFor(what, async () => ((await readFile(this.#file)).includes(bytes) ? true : undefined));
  }

  /** Stops tcpdump and returns the capture. */
  async stop(): Promise<Buffer> {
    await this.#proc.stop();
    return readFile(this.#file);
  }
}
