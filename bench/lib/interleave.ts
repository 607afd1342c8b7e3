import type { RunSample } from './figures.ts';

export interface RepeatPlan {
  rounds: number;
  /** Warm twice before the first round's runs (off in --quick, where time matters more). */
  primeFirstRound: boolean;
  log: (line: string) => void;
}

/**
 * Runs every target `rounds` times, rotating the order each round so drift on a shared
 * machine (another process waking up, thermal state, page cache) hits all targets alike;
 * each measured run is preceded by its own warm-up (two in the first round unless told otherwise). Returns the runs by target name.
 */
export async function interleave<T extends { name: string }>(
  scenario: string,
  targets: readonly T[],
  plan: RepeatPlan,
  warmUp: (t: T) => Promise<void>,
  measure: (t: T) => Promise<RunSample>,
): Promise<Map<string, RunSample[]>> {
  const runs = new Map<string, RunSample[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + round) % targets.length]!;
      // The first round warms twice: the JIT of a Node upstream or proxy (grpc-js above all)
      // is still settling after one short warm-up, and round 1 would otherwise pay for it.
      if (round === 0 && plan.primeFirstRound) await warmUp(t);
      await warmUp(t);
      const r = await measure(t);
      runs.get(t.name)!.push(r);
      const cpu = Object.entries(r.cpuSecondsPer1k)
        .map(([role, v]) => `${role} ${v.toFixed(3)}`)
        .join(', ');
      plan.log(
        `  ${scenario} round ${round + 1}/${plan.rounds} ${t.name.padEnd(7)} p50 ${r.latency.p50Us} µs  p99 ${r.latency.p99Us} µs  ${r.operationsPerSec.toFixed(0)}/s  errors ${r.errors}${cpu ? `  CPU s/1k: ${cpu}` : ''}`,
      );
    }
  }
  return runs;
}
