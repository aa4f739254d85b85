// The `k6` module for the embedded runner: check, group, sleep, fail, randomSeed.
import { mulberry32 } from "../../lib/random.js";
import { builtin, contexts, currentContext, groups, sampleTags } from "../engine/runtime.js";

export function check<T>(
  value: T,
  checks: Record<string, (value: T) => boolean>,
  tags?: Record<string, string>,
): boolean {
  const ctx = currentContext();
  let all = true;
  for (const [name, predicate] of Object.entries(checks)) {
    const ok = Boolean(predicate(value));
    all &&= ok;
    builtin.checks.add(ok ? 1 : 0, sampleTags(ctx, { check: name, ...tags }));
    groups.recordCheck(ctx?.groupPath ?? "", name, ok);
  }
  return all;
}

/** Runs `fn` inside a named group (nested groups give "::a::b" paths) and records group_duration. */
export function group<T>(name: string, fn: () => T): T {
  if (name === "" || name.includes("::"))
    throw new Error(`group name ${JSON.stringify(name)}: must be non-empty and not contain "::"`);
  const ctx = currentContext();
  const groupPath = groups.enter(ctx?.groupPath ?? "", name);
  const inner = { ...ctx, groupPath };
  const started = performance.now();
  const done = () => builtin.groupDuration.add(performance.now() - started, sampleTags(inner));
  const result = contexts.run(inner, fn);
  if (result instanceof Promise) return result.finally(done) as T;
  done();
  return result;
}

/**
 * Pauses the VU. k6's sleep blocks its VU; here all VUs share one event loop, so sleep returns a
 * promise: write `await sleep(1)` (valid on k6 too) for the pause to take effect.
 */
export function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

export function fail(message?: string): never {
  throw new Error(message ?? "fail() called");
}

/** Makes Math.random reproducible, as k6's randomSeed does for its VUs. */
export function randomSeed(seed: number): void {
  Math.random = mulberry32(seed);
}

export default { check, group, sleep, fail, randomSeed };
