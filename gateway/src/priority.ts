import type { Priority, Severity } from "./types.js";

/** Section 3: (severity, environment) → priority; pairs not listed are P2, info is always P3. */
const TABLE: Record<string, Priority> = {
  "critical:production": "P0",
  "critical:staging": "P1",
  "warning:production": "P1",
  "critical:development": "P2",
  "warning:staging": "P2",
  "warning:development": "P2",
};

export function priorityFor(severity: Severity, environment: string): Priority {
  if (severity === "info") return "P3";
  return TABLE[`${severity}:${environment.toLowerCase()}`] ?? "P2";
}
