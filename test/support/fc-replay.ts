import type { Parameters as FcParameters } from 'fast-check'

/**
 * fast-check run parameters that honour a replay from the environment:
 * `FC_SEED=… FC_PATH=… FC_REPLAY_PATH=… npx vitest run test/<file>` re-runs exactly the failing case
 * that fast-check printed (its counterexample shows `replayPath` for command lists).
 */
export function replayParameters<T>(numRuns: number): FcParameters<T> {
  const seed = process.env.FC_SEED
  const path = process.env.FC_PATH
  return {
    numRuns,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path, endOnFailure: true }),
  }
}

/** The `replayPath` printed next to a failing command list, when one is being replayed. */
export function replayPath(): string | undefined {
  return process.env.FC_REPLAY_PATH
}
