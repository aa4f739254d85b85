import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { FastifyBaseLogger } from "fastify";
import { buildConfig, ConfigError, configProblem, type LoadedConfig, loadConfigFile, parseConfig } from "./config.js";
import { CONFIG_FIELDS } from "./config-schema.js";
import type { Metrics } from "./metrics.js";
import type { GatewayConfig } from "./types.js";

export type ReloadResult = "success" | "failure" | "unchanged";

export interface ConfigStoreOptions {
  path: string;
  env?: NodeJS.ProcessEnv;
  log: Pick<FastifyBaseLogger, "info" | "warn" | "error">;
  metrics: Metrics;
  /** Called with each configuration a reload put in force. */
  onApply?: (config: GatewayConfig) => void;
  /** Editors and ConfigMap updates fire several events per change. */
  debounceMs?: number;
}

/**
 * Owns the configuration in force. `config()` returns one frozen object; a
 * reload swaps in a new one (so each request sees a consistent snapshot).
 * Reloads come from SIGHUP (via main) and from changes in the file's
 * directory. An invalid file leaves the running configuration in place; a
 * change to a non-reloadable field is logged and kept at its old value.
 */
export class ConfigStore {
  private loaded: LoadedConfig;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;

  /** Throws ConfigError when the file is invalid (start-up must stop). */
  constructor(private readonly opts: ConfigStoreOptions) {
    this.loaded = loadConfigFile(opts.path, opts.env ?? process.env);
  }

  readonly config = (): GatewayConfig => this.loaded.config;

  reload(trigger: "SIGHUP" | "file"): ReloadResult {
    const { log, metrics } = this.opts;
    let next: LoadedConfig;
    try {
      const text = readFileSync(this.opts.path, "utf8");
      if (trigger === "file" && text === this.loaded.text) return "unchanged";
      next = parseConfig(text, { source: this.opts.path, env: this.opts.env ?? process.env });
    } catch (err) {
      const problems =
        err instanceof ConfigError
          ? err.problems
          : [configProblem(this.opts.path, `cannot read the file (${(err as Error).message})`)];
      log.error({ trigger, problems }, "configuration reload rejected; the running configuration stays in force");
      metrics.configReloads.inc({ result: "failure" });
      return "failure";
    }

    const values = new Map(next.values);
    const applied: string[] = [];
    for (const spec of CONFIG_FIELDS) {
      const before = this.loaded.values.get(spec.path);
      if (JSON.stringify(before) === JSON.stringify(values.get(spec.path))) continue;
      if (spec.reloadable) {
        applied.push(spec.path);
      } else {
        values.set(spec.path, before);
        log.warn({ field: spec.path }, `configuration change to '${spec.path}' needs a restart; it was not applied`);
      }
    }
    this.loaded = { config: buildConfig(values), values, text: next.text };
    metrics.configReloads.inc({ result: "success" });
    log.info({ trigger, changed: applied }, "configuration reloaded");
    this.opts.onApply?.(this.loaded.config);
    return "success";
  }

  /** Reloads after the file changes; watching the directory also catches atomic renames and ConfigMap symlink swaps. */
  watch(): void {
    const file = basename(this.opts.path);
    this.watcher = watch(dirname(this.opts.path), (_event, name) => {
      if (name && name !== file && !name.startsWith("..")) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload("file"), this.opts.debounceMs ?? 200);
    });
    this.watcher.unref();
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
  }
}
