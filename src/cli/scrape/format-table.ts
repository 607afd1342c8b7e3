/**
 * Plain-text views of admin data for the CLI (`meshlet connections`, `meshlet top`): an
 * aligned table and the unit formats both use, so the two views read alike.
 */

/** Left-aligned columns separated by two spaces; numeric columns are right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** 512B, 1.5KiB, 3.2MiB: exact below 1 KiB, one decimal above. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)}${units[u]}`;
}

/** 42s, 3m07s, 2h05m, 3d04h: coarse enough to read at a glance. */
export function formatAge(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** A latency in seconds as µs / ms / s with three significant digits; "-" for none. */
export function formatLatency(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 0.001) return `${Number((seconds * 1e6).toPrecision(3))}µs`;
  if (seconds < 1) return `${Number((seconds * 1e3).toPrecision(3))}ms`;
  return `${Number(seconds.toPrecision(3))}s`;
}
