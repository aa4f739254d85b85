/**
 * gateway/deploy/base/prometheusrule.yaml is generated from gateway.rules.yml, so the
 * PrometheusRule a cluster gets and the rules promtool tests cannot differ:
 * `npx tsx grafana/rules/prometheus-rule.ts` writes it, grafana/test/rules.test.ts
 * fails while it is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Document, parseDocument } from "yaml";
import { repoRoot } from "../../harness/src/paths.js";

export const RULES_FILE = join(repoRoot, "grafana", "rules", "gateway.rules.yml");
export const RULES_TEST_FILE = join(repoRoot, "grafana", "rules", "gateway.rules.test.yml");
export const MANIFEST_FILE = join(repoRoot, "gateway", "deploy", "base", "prometheusrule.yaml");

const HEADER = [
  " Generated from grafana/rules/gateway.rules.yml by `npx tsx grafana/rules/prometheus-rule.ts`:",
  " edit that file, not this one (grafana/test/rules.test.ts fails while the two differ).",
  " A Prometheus Operator picks this up when its ruleSelector matches these labels: add its",
  " own (often `release: <name>`) in an overlay.",
].join("\n");

/** The PrometheusRule manifest holding the rule file's groups, comments included. */
export function renderPrometheusRule(rulesText: string): string {
  const rules = parseDocument(rulesText);
  if (rules.errors.length > 0) throw new Error(`gateway.rules.yml: ${rules.errors[0]?.message}`);
  const manifest = new Document({
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "gateway",
      namespace: "kubernaut-system",
      labels: { "app.kubernetes.io/name": "gateway", "app.kubernetes.io/part-of": "kubernaut" },
    },
    spec: {},
  });
  // The parsed node, not its value: block scalars and the comments beside the rules carry over.
  manifest.setIn(["spec", "groups"], rules.get("groups", true));
  manifest.commentBefore = HEADER;
  // Folded text on one line each: re-folding at a width would break lines inside `{{ }}`.
  return manifest.toString({ lineWidth: 0 });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(MANIFEST_FILE, renderPrometheusRule(readFileSync(RULES_FILE, "utf8")));
  console.log(`wrote ${MANIFEST_FILE}`);
}
