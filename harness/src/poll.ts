/** Options for {@link eventually}. */
export interface PollOptions {
  /** What is being waited for, in words; used in the failure message. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    const text = JSON.stringify(value);
    return text && text.length > 500 ? `${text.slice(0, 500)}…` : String(text);
  } catch {
    return String(value);
  }
}

/**
 * Polls `check` until it returns without throwing (and, when it returns a
 * boolean, returns true). Fails after the deadline with what it last saw, so
 * a failing test explains itself. Never used as a sleep: it stops as soon as
 * the condition holds.
 */
export async function eventually<T>(check: () => Promise<T> | T, opts: PollOptions): Promise<Exclude<T, false>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = "nothing yet";
  for (;;) {
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}; last saw: ${describe(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
