import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { binary, scratchDir } from "../paths.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";

/** Notification timing of one webhook receiver (Prometheus durations such as "1s"). */
export interface WebhookOptions {
  /** Wait before the first notification of a new group (default "1s", short for tests). */
  groupWait?: string;
  /** Wait before notifying about new alerts in a group already notified (default "1s"). */
  groupInterval?: string;
  /** Re-send an unchanged firing group after this long (default "1h"). */
  repeatInterval?: string;
  /** Also notify when alerts resolve (default true). */
  sendResolved?: boolean;
  /** Labels that split alerts into notifications (default ["alertname"]). */
  groupBy?: string[];
  /** A bearer token sent with every notification (a gateway with auth on checks it). */
  bearerToken?: string;
}

interface WebhookReceiver extends WebhookOptions {
  url: string;
}

// Every alert reaches every webhook: one child route per receiver, all
// matching everything, with `continue` so matching goes on to the next one.
// The root receiver only gets what no child matched, i.e. nothing.
function renderConfig(webhooks: WebhookReceiver[]): string {
  return stringify({
    route: {
      receiver: "discard",
      routes: webhooks.map((w, i) => ({
        receiver: `webhook-${i}`,
        continue: true,
        group_by: w.groupBy ?? ["alertname"],
        group_wait: w.groupWait ?? "1s",
        group_interval: w.groupInterval ?? "1s",
        repeat_interval: w.repeatInterval ?? "1h",
      })),
    },
    receivers: [
      { name: "discard" },
      ...webhooks.map((w, i) => ({
        name: `webhook-${i}`,
        webhook_configs: [
          {
            url: w.url,
            send_resolved: w.sendResolved ?? true,
            ...(w.bearerToken && { http_config: { authorization: { credentials: w.bearerToken } } }),
          },
        ],
      })),
    ],
  });
}

/**
 * A real Alertmanager on loopback, clustering off, fresh storage each run.
 * `const am = await new AlertmanagerServer().withWebhookReceiver("http://127.0.0.1:8080/api/v1/signals/prometheus").start()`
 */
export class AlertmanagerServer {
  private readonly webhooks: WebhookReceiver[] = [];

  /** A webhook that receives every alert (call again for more receivers). */
  withWebhookReceiver(url: string, options: WebhookOptions = {}): this {
    this.webhooks.push({ url, ...options });
    return this;
  }

  async start(): Promise<StartedAlertmanagerServer> {
    const port = await freePort();
    const dir = scratchDir("alertmanager");
    const configPath = join(dir, "alertmanager.yml");
    writeFileSync(configPath, renderConfig(this.webhooks));
    const url = `http://127.0.0.1:${port}`;
    const proc = new ManagedProcess({
      name: `alertmanager-${port}`,
      command: binary("prometheus-alertmanager"),
      args: [
        `--config.file=${configPath}`,
        `--storage.path=${dir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--cluster.listen-address=", // empty: no gossip port, no peers
      ],
      ready: () => httpReady(`${url}/-/ready`),
      readyTimeoutMs: 30_000,
    });
    await proc.startIn(dir);
    return new StartedAlertmanagerServer(proc, url, dir);
  }
}

export class StartedAlertmanagerServer {
  constructor(
    readonly process: ManagedProcess,
    private readonly url: string,
    private readonly dir: string,
  ) {}

  getUrl(): string {
    return this.url;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
