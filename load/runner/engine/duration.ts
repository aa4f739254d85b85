import { durationMs } from "../../lib/duration.js";
import { configError } from "./errors.js";

/** Parses a k6 duration ("30s", "1h30m", "500ms", or a number of milliseconds) into milliseconds. */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value;
  const ms = typeof value === "string" ? durationMs(value) : undefined;
  if (ms === undefined) {
    throw configError(`${field}: must be a duration like "30s", "2m" or "1h30m" (got: ${JSON.stringify(value)})`);
  }
  return ms;
}

/** Formats milliseconds the way k6 prints durations ("1m30.0s", "850ms"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = ((ms % 60_000) / 1000).toFixed(1);
  return `${h > 0 ? `${h}h` : ""}${h > 0 || m > 0 ? `${m}m` : ""}${s}s`;
}
