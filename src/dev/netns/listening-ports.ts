/**
 * TCP ports in LISTEN state in a /proc/net/tcp or tcp6 text. Reading /proc/<pid>/net/tcp
 * shows the listeners of that process's network namespace, so the test runner (in the root
 * namespace) can see a pod's sockets without entering it.
 */
export function parseListeningPorts(procNetTcp: string): Set<number> {
  const ports = new Set<number>();
  for (const line of procNetTcp.split('\n')) {
    // `  0: 00000000:1F90 00000000:0000 0A ...`: local address, remote address, state (0A = LISTEN).
    const m = /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+[0-9A-F]+:[0-9A-F]{4}\s+0A\s/.exec(line);
    if (m?.[1] !== undefined) ports.add(parseInt(m[1], 16));
  }
  return ports;
}
