import { test as base } from "vitest";
import { AlertmanagerServer, type StartedAlertmanagerServer } from "./components/alertmanager.js";
import { DataStorageService, type StartedDataStorageService } from "./components/data-storage.js";
import { KubeApiServer, REMEDIATION_REQUEST_CRD, type StartedKubeApiServer } from "./components/kube-api.js";
import { PostgresServer, type StartedPostgresServer } from "./components/postgres.js";
import { PrometheusServer, type StartedPrometheusServer } from "./components/prometheus.js";
import { RedisServer, type StartedRedisServer } from "./components/redis.js";
import { RedisSentinelGroup, type StartedRedisSentinelGroup } from "./components/redis-sentinel.js";
import { type StartedToxiproxyServer, ToxiproxyServer } from "./components/toxiproxy.js";
import { LocalStack, type StartedLocalStack } from "./stack.js";

/** Components a suite can ask for; each starts on first use and stops after the file. */
export interface HarnessFixtures {
  redis: StartedRedisServer;
  sentinel: StartedRedisSentinelGroup;
  kube: StartedKubeApiServer;
  postgres: StartedPostgresServer;
  dataStorage: StartedDataStorageService;
  prometheus: StartedPrometheusServer;
  alertmanager: StartedAlertmanagerServer;
  toxiproxy: StartedToxiproxyServer;
  /** Everything the gateway needs, plus the gateway itself as its own process. */
  stack: StartedLocalStack;
}

/** A fixture that starts `start()` once per test file and stops it after the file. */
function perFile<T extends { stop(): Promise<unknown> }>(start: () => Promise<T>) {
  return [
    // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures must destructure their dependencies
    async ({}, use: (value: T) => Promise<void>) => {
      const component = await start();
      try {
        await use(component);
      } finally {
        await component.stop();
      }
    },
    { scope: "file" as const },
  ] as [(context: object, use: (value: T) => Promise<void>) => Promise<void>, { scope: "file" }];
}

/**
 * `test` with harness components as fixtures:
 * `test("...", async ({ stack, kube }) => { ... })` — no teardown by hand.
 */
export const test = base.extend<HarnessFixtures>({
  redis: perFile(() => new RedisServer().start()),
  sentinel: perFile(() => new RedisSentinelGroup().start()),
  kube: perFile(() => new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start()),
  postgres: perFile(() => new PostgresServer().start()),
  dataStorage: perFile(() => new DataStorageService().start()),
  prometheus: perFile(() => new PrometheusServer().start()),
  alertmanager: perFile(() => new AlertmanagerServer().start()),
  toxiproxy: perFile(() => new ToxiproxyServer().start()),
  stack: perFile(() => new LocalStack().start()),
});

export { expect } from "vitest";
