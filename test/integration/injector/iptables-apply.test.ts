import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../unit/injector/cli-support.ts';

/**
 * `meshlet iptables apply` for real: in a fresh network namespace (`unshare -n`, needs root
 * and the iptables package), twice, then `iptables-save` shows exactly one copy of the rules.
 * Skipped where unshare or iptables-restore cannot run.
 */
const canRun = spawnSync('unshare', ['-n', 'iptables-restore', '--version']).status === 0 && spawnSync('setpriv', ['--version']).status === 0;

const cli = join(process.cwd(), 'src', 'cli.ts');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshlet-iptables-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('meshlet iptables apply', () => {
  it.skipIf(!canRun)('installs the rules in a network namespace, idempotently', () => {
    const script = `set -e; export MESHLET_INBOUND_PORTS=8080:15100/http MESHLET_SKIP_OUTBOUND_CIDRS=169.254.169.254/32
${process.execPath} ${cli} iptables apply; ${process.execPath} ${cli} iptables apply; iptables-save -t nat`;
    const saved = execFileSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rules = saved.split('\n').filter((l) => l.startsWith('-A '));
    expect(rules).toEqual([
      '-A PREROUTING -p tcp -j MESHLET_INBOUND',
      '-A OUTPUT -p tcp -j MESHLET_OUTBOUND',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15100 -j RETURN',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15100',
      '-A MESHLET_INBOUND -p tcp -j REDIRECT --to-ports 15006',
      '-A MESHLET_OUTBOUND -m owner --uid-owner 2020 -j RETURN',
      '-A MESHLET_OUTBOUND -o lo -j RETURN',
      '-A MESHLET_OUTBOUND -d 127.0.0.0/8 -j RETURN',
      '-A MESHLET_OUTBOUND -d 169.254.169.254/32 -j RETURN',
      '-A MESHLET_OUTBOUND -p tcp -j REDIRECT --to-ports 15001',
    ]);
  });

  it('fails with IPTABLES_RESTORE_NOT_FOUND when the binary is missing', async () => {
    const { code, stderr } = await runCli(['iptables', 'apply', '--iptables-restore', join(dir, 'no-such-binary')]);
    expect(code).toBe(1);
    expect(stderr).toContain('IPTABLES_RESTORE_NOT_FOUND');
  });

  it.skipIf(!canRun)('fails with IPTABLES_RESTORE_FAILED and the tool output when iptables-restore is not allowed', async () => {
    // The real iptables-restore, run as nobody: it fails exactly as in a container without NET_ADMIN.
    const asNobody = join(dir, 'iptables-restore-as-nobody');
    await writeFile(asNobody, '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups iptables-restore "$@"\n');
    await chmod(asNobody, 0o755);
    const { code, stderr } = await runCli(['iptables', 'apply', '--iptables-restore', asNobody]);
    expect(code).toBe(1);
    expect(stderr).toContain('IPTABLES_RESTORE_FAILED');
    expect(stderr).toMatch(/exited with 4: iptables-restore .*Permission denied/);
  });

  it('script prints the same rules without changing anything, flags overriding the environment', async () => {
    const { code, stdout } = await runCli(['iptables', 'script', '--inbound-ports', '9090/grpc', '--skip-outbound-ports', '5432']);
    expect(code).toBe(0);
    expect(stdout).toContain('-A MESHLET_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15100');
    expect(stdout).toContain('-A MESHLET_OUTBOUND -p tcp --dport 5432 -j RETURN');
  });

  it('a bad variable stops it before anything runs (exit 1, every problem named)', async () => {
    const { code, stderr } = await runCli(['iptables', 'script', '--inbound-ports', '8080/ftp', '--proxy-uid', '0']);
    expect(code).toBe(1);
    expect(stderr).toContain('MESHLET_INBOUND_PORTS');
    expect(stderr).toContain('MESHLET_PROXY_UID');
  });
});
