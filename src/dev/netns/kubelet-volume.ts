import { lstat, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

let counter = 0;

/**
 * Writes `files` into `dir` exactly the way kubelet's atomic writer updates a ConfigMap,
 * Secret or projected volume (kubelet pkg/volume/util/atomic_writer.go): a fresh
 * `..<timestamp>` directory, a `..data_tmp` symlink to it renamed atomically over `..data`,
 * each key a symlink to `..data/<key>`, and the old timestamped directory removed. Keys
 * missing from `files` disappear, as they do in kubelet. Pods of a netns cluster share the
 * machine's filesystem, so this is how their volumes are "mounted" and updated.
 */
export async function kubeletWrite(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${process.pid}.${counter++}`;
  const tsDir = join(dir, stamp);
  await mkdir(tsDir);
  for (const [key, value] of Object.entries(files)) await writeFile(join(tsDir, key), value);

  let previous: string | undefined;
  try {
    previous = await readlink(join(dir, '..data'));
  } catch {
    previous = undefined;
  }
  await symlink(stamp, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));

  const entries = await readdir(dir);
  for (const key of Object.keys(files)) {
    if (!entries.includes(key)) await symlink(join('..data', key), join(dir, key));
  }
  for (const entry of entries) {
    if (entry.startsWith('..') || entry in files) continue;
    const st = await lstat(join(dir, entry));
    if (st.isSymbolicLink()) await rm(join(dir, entry));
  }
  if (previous && previous !== stamp) await rm(join(dir, previous), { recursive: true, force: true });
}
