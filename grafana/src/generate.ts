// Writes grafana/dashboards/*.json from the TypeScript in grafana/src/dashboards (`task grafana:dashboards`).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Dashboard } from "@grafana/grafana-foundation-sdk/dashboard";
import { repoRoot } from "../../harness/src/paths.js";
import { chaosDashboard } from "./dashboards/chaos.js";
import { gatewayDashboard } from "./dashboards/gateway.js";
import { loadDashboard } from "./dashboards/load.js";

export const DASHBOARD_DIR = join(repoRoot, "grafana", "dashboards");

/** File name in DASHBOARD_DIR → the dashboard. */
export const DASHBOARDS: Record<string, () => Dashboard> = {
  "gateway.json": gatewayDashboard,
  "load-test.json": loadDashboard,
  "chaos.json": chaosDashboard,
};

/** File name → the exact text written. */
export function renderDashboards(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(DASHBOARDS).map(([file, build]) => [file, `${JSON.stringify(build(), null, 2)}\n`]),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  mkdirSync(DASHBOARD_DIR, { recursive: true });
  for (const [file, text] of Object.entries(renderDashboards())) {
    writeFileSync(join(DASHBOARD_DIR, file), text);
    process.stdout.write(`wrote grafana/dashboards/${file}\n`);
  }
}
