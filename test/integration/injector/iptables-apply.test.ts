import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../unit/injector/cli-support.ts';

/**
 * `meshlet iptables apply` for real: in a fresh network namespace (`unshare -n`, needs root
 * and the iptables package, which ships ip6tables too), twice, then `iptables-save` and
 * `ip6tables-save` show exactly one copy of the rules. Skipped where unshare, iptables-restore
 * or ip6tables-restore cannot run, or the kernel has no IPv6. Every test that can install rules
 * does it inside `unshare -n`, never in the machine's own network namespace.
 */
const canRun = spawnSync('unshare', ['-n', 'iptables-restore', '--version']).status === 0 && spawnSync('setpriv', ['--version']).status === 0;
const canRun6 = canRun && existsSync('/proc/net/if_inet6') && spawnSync('unshare', ['-n', 'ip6tables-restore', '--version']).status === 0;

/** Runs `sh -c script` in a fresh network namespace; never throws, returns what happened. */
function inFreshNetns(script: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const meshlet = () => `${process.execPath} ${cli}`;

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

  it.skipIf(!canRun6)('ipv6-interception-bypass: installs the same rules for IPv6 (ip6tables), idempotently, with ::1 as loopback and the IPv6 skip CIDRs', () => {
    const r = inFreshNetns(`set -e; export MESHLET_INBOUND_PORTS=8080:15100/http MESHLET_SKIP_OUTBOUND_CIDRS=169.254.169.254/32,fd00:ec2::254/128
${meshlet()} iptables apply 2>/dev/null; ${meshlet()} iptables apply 2>&1 >/dev/null | grep '^meshlet'; ip6tables-save -t nat`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('meshlet iptables apply: IPv4 rules installed\nmeshlet iptables apply: IPv6 rules installed\nmeshlet iptables apply: rules installed\n');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('-A '))).toEqual([
      '-A PREROUTING -p tcp -j MESHLET_INBOUND',
      '-A OUTPUT -p tcp -j MESHLET_OUTBOUND',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 15100 -j RETURN',
      '-A MESHLET_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15100',
      '-A MESHLET_INBOUND -p tcp -j REDIRECT --to-ports 15006',
      '-A MESHLET_OUTBOUND -m owner --uid-owner 2020 -j RETURN',
      '-A MESHLET_OUTBOUND -o lo -j RETURN',
      '-A MESHLET_OUTBOUND -d ::1/128 -j RETURN',
      '-A MESHLET_OUTBOUND -d fd00:ec2::254/128 -j RETURN',
      '-A MESHLET_OUTBOUND -p tcp -j REDIRECT --to-ports 15001',
    ]);
  });

  it.skipIf(!canRun6)('ipv6-interception-bypass: IPv6 up and ip6tables-restore missing -> the init container fails (exit 1, IP6TABLES_RESTORE_NOT_FOUND)', () => {
    const r = inFreshNetns(`${meshlet()} iptables apply --ip6tables-restore ${join(dir, 'no-such-ip6tables-restore')}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('meshlet iptables apply: IPv4 rules installed');
    expect(r.stderr).toContain(`meshlet iptables apply: IP6TABLES_RESTORE_NOT_FOUND: ${join(dir, 'no-such-ip6tables-restore')} not found`);
    expect(r.stderr).toContain('IPv6 is enabled on lo: without these rules IPv6 connections would reach the app around the sidecar, so the pod must not start');
    expect(r.stderr).not.toContain('meshlet iptables apply: rules installed');
  });

  it.skipIf(!canRun6)('ipv6-interception-bypass: IPv6 up and ip6tables-restore refusing the rules -> exit 1, IP6TABLES_RESTORE_FAILED with its output', async () => {
    // IPv4 as root succeeds; the real ip6tables-restore as nobody fails as without NET_ADMIN.
    const asNobody = join(dir, 'ip6tables-restore-as-nobody');
    await writeFile(asNobody, '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups ip6tables-restore "$@"\n');
    await chmod(asNobody, 0o755);
    const r = inFreshNetns(`${meshlet()} iptables apply --ip6tables-restore ${asNobody}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/IP6TABLES_RESTORE_FAILED: .*ip6tables-restore-as-nobody exited with 4: ip6tables-restore .*Permission denied/);
  });

  it.skipIf(!canRun6)('ipv6-interception-bypass: IPv6 disabled on every interface -> a failing ip6tables-restore is a warning, exit 0', () => {
    const r = inFreshNetns(`sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1 && ${meshlet()} iptables apply --ip6tables-restore ${join(dir, 'no-such-ip6tables-restore')}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('meshlet iptables apply: WARNING: IPv6 rules not installed (IP6TABLES_RESTORE_NOT_FOUND:');
    expect(r.stderr).toContain('IPv6 is disabled on every interface of the pod (lo: net.ipv6.conf.<interface>.disable_ipv6=1), so no IPv6 traffic can reach the pod or leave it');
    expect(r.stderr).toContain('meshlet iptables apply: rules installed');
  });

  it.skipIf(!canRun6)('IPv6 disabled on every interface: the IPv6 rules are still installed when ip6tables works (defence in depth)', () => {
    const r = inFreshNetns(`set -e; sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1; ${meshlet()} iptables apply 2>/dev/null; ip6tables-save -t nat`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('-A MESHLET_INBOUND -p tcp -j REDIRECT --to-ports 15006');
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

  it('script --ipv6 prints the ip6tables-restore rules, IPv6 skip CIDRs in, IPv4 ones out', async () => {
    const { code, stdout } = await runCli(['iptables', 'script', '--ipv6', '--inbound-ports', '8080', '--skip-outbound-cidrs', '10.0.0.0/8,fd00:ec2::254/128']);
    expect(code).toBe(0);
    expect(stdout).toContain('applied with ip6tables-restore');
    expect(stdout).toContain('-A MESHLET_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15100');
    expect(stdout).toContain('-A MESHLET_OUTBOUND -d ::1/128 -j RETURN');
    expect(stdout).toContain('-A MESHLET_OUTBOUND -d fd00:ec2::254/128 -j RETURN');
    expect(stdout).not.toContain('10.0.0.0/8');
    expect(stdout).not.toContain('127.0.0.0/8');
  });

  it('script prints the same rules without changing anything, flags overriding the environment', async () => {
    const { code, stdout } = await runCli(['iptables', 'script', '--inbound-ports', '9090/grpc', '--skip-outbound-ports', '5432']);
    expect(code).toBe(0);
    expect(stdout).toContain('-A MESHLET_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15100');
    expect(stdout).toContain('-A MESHLET_OUTBOUND -p tcp --dport 5432 -j RETURN');
  });

  it('a bad variable stops it before anything runs (exit 1, every problem named)', async () => {
    const saved = { ports: process.env.MESHLET_INBOUND_PORTS, uid: process.env.MESHLET_PROXY_UID };
    process.env.MESHLET_INBOUND_PORTS = '8080/ftp';
    process.env.MESHLET_PROXY_UID = '0';
    try {
      const { code, stderr } = await runCli(['iptables', 'script']);
      expect(code).toBe(1);
      expect(stderr).toContain('MESHLET_INBOUND_PORTS');
      expect(stderr).toContain('MESHLET_PROXY_UID');
    } finally {
      for (const [name, value] of [['MESHLET_INBOUND_PORTS', saved.ports], ['MESHLET_PROXY_UID', saved.uid]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('the same bad values as flags are a usage error (exit 2, every flag named)', async () => {
    const { code, stderr } = await runCli(['iptables', 'script', '--inbound-ports', '8080/ftp', '--proxy-uid', '0']);
    expect(code).toBe(2);
    expect(stderr).toContain('--inbound-ports "8080/ftp"');
    expect(stderr).toContain('--proxy-uid "0"');
  });
});
