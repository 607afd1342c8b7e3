import { readFile } from 'node:fs/promises';

/**
 * Reads the pod's labels from a downward API file (`key="value"` per line, values quoted
 * and escaped as Go strings, which JSON.parse reads). The policy selects servers by label.
 */
export async function readPodLabels(file: string): Promise<Record<string, string>> {
  if (file === '') return {};
  const labels: Record<string, string> = {};
  const text = await readFile(file, 'utf8');
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const raw = line.slice(eq + 1).trim();
    labels[line.slice(0, eq).trim()] = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
  }
  return labels;
}
