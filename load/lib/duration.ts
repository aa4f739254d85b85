// k6 duration strings ("30s", "2m", "1h30m", "500ms") in pure JavaScript, for scripts and the runner.

const UNIT_MS: Record<string, number> = {
  us: 0.001,
  µs: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Milliseconds of a k6 duration string, or undefined when it is not one. */
export function durationMs(text: string): number | undefined {
  const part = /(\d+(?:\.\d+)?)(us|µs|ms|s|m|h|d)/y;
  let total = 0;
  while (part.lastIndex < text.length) {
    const match = part.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  return text.length > 0 ? total : undefined;
}
