import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { runCommand } from './command-runner.ts';
import { probeNetnsPattern } from './availability.ts';
import { OWNER_DIR, ownerFile, runOfName, volumesRoot } from './run-names.ts';

/**
 * Removes what an aborted earlier run left behind (SIGKILLed worker, crashed machine):
 * namespaces, the host link, hosts files, owner records. A run is stale when the process
 * recorded in its owner file is gone; runs of live processes (a concurrent suite) are left
 * alone. Returns what was removed, for the log.
 */
export async function sweepLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const stale = (run: string) => !ownerAlive(run);

  for (const ns of await netnsNames()) {
    const run = runOfName(ns);
    const probePid = probeNetnsPattern.exec(ns)?.[1];
    const isStale = run !== undefined ? stale(run) : probePid !== undefined && !pidAlive(Number(probePid));
    if (!isStale) continue;
    await deleteNetns(ns);
    removed.push(`netns ${ns}`);
  }
  for (const link of await rootLinkNames()) {
    const run = runOfName(link);
    if (run === undefined || !stale(run)) continue;
    await runCommand('ip', ['link', 'del', link]);
    removed.push(`link ${link}`);
  }
  for (const dir of listDir('/etc/netns')) {
    const run = runOfName(dir);
    if (run === undefined || !stale(run)) continue;
    rmSync(`/etc/netns/${dir}`, { recursive: true, force: true });
    removed.push(`/etc/netns/${dir}`);
  }
  for (const dir of listDir('/tmp')) {
    const run = /^meshlet-e2e-([0-9a-f]{6})$/.exec(dir)?.[1];
    if (run === undefined || !stale(run)) continue;
    rmSync(volumesRoot(run), { recursive: true, force: true });
    removed.push(volumesRoot(run));
  }
  for (const file of listDir(OWNER_DIR)) {
    const run = file.replace(/\.pid$/, '');
    if (stale(run)) rmSync(`${OWNER_DIR}/${file}`, { force: true });
  }
  return removed;
}

/** Kills every process still inside `ns`, then deletes it (a netns with processes would outlive its name). */
export async function deleteNetns(ns: string): Promise<void> {
  const pids = await runCommand('ip', ['netns', 'pids', ns]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await runCommand('ip', ['netns', 'del', ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

function ownerAlive(run: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(ownerFile(run), 'utf8').trim());
  } catch {
    return false;
  }
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function netnsNames(): Promise<string[]> {
  const r = await runCommand('ip', ['netns', 'list']);
  // Lines look like `mlp-abc123-a (id: 3)` or just `mlp-abc123-a`.
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
}

async function rootLinkNames(): Promise<string[]> {
  const r = await runCommand('ip', ['-o', 'link', 'show']);
  // `5: mlhabc123@if2: <...>`: the name ends at '@' or ':'.
  return r.stdout.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '').filter(Boolean);
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
