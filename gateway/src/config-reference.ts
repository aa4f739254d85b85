/**
 * Prints the configuration reference (Markdown) from the schema table, so the
 * README never drifts from the code:
 *   npx tsx gateway/src/config-reference.ts > gateway/docs/configuration.md
 */
import { pathToFileURL } from "node:url";
import { CONFIG_FIELDS, type FieldSpec } from "./config-schema.js";
import { KINDS } from "./config-values.js";

function allowed(spec: FieldSpec): string {
  if (spec.values) return spec.values.map((v) => `\`${v}\``).join(", ");
  if (spec.min !== undefined && spec.max !== undefined) return `${spec.min} .. ${spec.max}`;
  if (spec.min !== undefined) return `≥ ${spec.min}`;
  return "";
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

export function configReference(): string {
  const lines = [
    "Settings are read from one YAML file (`--config <file>` or `GATEWAY_CONFIG`); nested keys below are",
    "written as YAML mappings. Durations are written like `100ms`, `30s`, `5m`, `1h30m`; sizes like `512KiB`,",
    "`10MiB` or a number of bytes. Environment overrides win over the file. Reloadable settings are applied on",
    "SIGHUP or when the file changes; changing any other setting is logged and needs a restart.",
    "",
    "| Key | Type | Default | Allowed | Reloadable | Env override | Description |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const spec of CONFIG_FIELDS) {
    const def = typeof spec.default === "string" ? spec.default : JSON.stringify(spec.default);
    const row = [
      `\`${spec.path}\``,
      KINDS[spec.type].label,
      def === "" ? "(empty)" : `\`${def}\``,
      allowed(spec),
      spec.reloadable ? "yes" : "no (restart)",
      spec.env ? `\`${spec.env}\`` : "",
      spec.description,
    ];
    lines.push(`| ${row.map(cell).join(" | ")} |`);
  }
  return `${lines.join("\n")}\n`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.stdout.write(configReference());
