import { DataStorageService, type StartedDataStorageService } from "./components/data-storage.js";
import { type ConfigTree, GatewayProcess, type StartedGateway } from "./components/gateway.js";
import { KubeApiServer, REMEDIATION_REQUEST_CRD, type StartedKubeApiServer } from "./components/kube-api.js";
import { PrometheusServer, type StartedPrometheusServer } from "./components/prometheus.js";
import { RedisServer, type StartedRedisServer } from "./components/redis.js";
import { RedisSentinelGroup, StartedRedisSentinelGroup } from "./components/redis-sentinel.js";
import { currentRunDir } from "./paths.js";

/** Endpoints of a running stack, as written to results/stack.json. */
export interface StackEndpoints {
  gateway: { url: string; configPath: string } | null;
  kubeconfig: string;
  kubernetes: { server: string };
  redis: { url: string } | { sentinels: string; masterName: string };
  dataStorage: { url: string };
  postgres: { uri: string };
  prometheus: { url: string };
  logs: string;
}

/**
 * Everything the gateway needs (Redis or a Sentinel group, the Kubernetes API
 * with the CRD, Data Storage on PostgreSQL, Prometheus scraping the gateway),
 * plus the gateway itself as its own process.
 * `const stack = await new LocalStack().withNamespaces({ prod: { environment: "production" } }).start()`
 */
export class LocalStack {
  private sentinel = false;
  private gateway = true;
  private gatewayConfig: ConfigTree = {};
  private namespaces: Record<string, Record<string, string>> = {};

  /** Redis as a Sentinel group (master, 2 replicas, 3 sentinels) instead of one server. */
  withSentinel(): this {
    this.sentinel = true;
    return this;
  }

  /** Infrastructure only: for a gateway started elsewhere (or by the suite itself). */
  withoutGateway(): this {
    this.gateway = false;
    return this;
  }

  /** Gateway settings on top of the stack's own (YAML tree, e.g. `{ rateLimit: { enabled: false } }`). */
  withGatewayConfig(config: ConfigTree): this {
    this.gatewayConfig = config;
    return this;
  }

  /** Namespaces to create, with their labels (e.g. `environment: production`). */
  withNamespaces(namespaces: Record<string, Record<string, string>>): this {
    Object.assign(this.namespaces, namespaces);
    return this;
  }

  async start(): Promise<StartedLocalStack> {
    // What started so far, stopped again if a later component fails to start.
    const started: { stop(): Promise<unknown> }[] = [];
    function track<T extends { stop(): Promise<unknown> }>(c: T): T {
      started.push(c);
      return c;
    }
    try {
      const [redis, kube, dataStorage] = await Promise.all([
        this.sentinel ? new RedisSentinelGroup().start().then(track) : new RedisServer().start().then(track),
        new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start().then(track),
        new DataStorageService().start().then(track),
      ]);
      for (const [name, labels] of Object.entries({ "kubernaut-system": {}, ...this.namespaces })) {
        await kube.createNamespace(name, labels);
      }
      const gateway = this.gateway
        ? track(
            await new GatewayProcess()
              .withConfig({
                redis: redisConfig(redis),
                kubernetes: { mode: "kubeconfig", kubeconfigPath: kube.getKubeconfigPath() },
                dataStorage: { url: dataStorage.getUrl() },
                ...this.gatewayConfig,
              })
              .start(),
          )
        : undefined;
      const prometheus = new PrometheusServer();
      if (gateway) prometheus.withScrapeTarget("gateway", new URL(gateway.getUrl()).host, { scrapeInterval: "1s" });
      const prom = track(await prometheus.start());
      return new StartedLocalStack(redis, kube, dataStorage, prom, gateway);
    } catch (err) {
      await Promise.allSettled(started.reverse().map((c) => c.stop()));
      throw err;
    }
  }
}

function redisConfig(redis: StartedRedisServer | StartedRedisSentinelGroup): ConfigTree {
  return redis instanceof StartedRedisSentinelGroup
    ? {
        mode: "sentinel",
        sentinels: redis.getSentinelAddresses().split(","),
        masterName: redis.getMasterName(),
        password: redis.getPassword() ?? "",
      }
    : { mode: "single", url: redis.getConnectionUrl() };
}

export class StartedLocalStack {
  constructor(
    readonly redis: StartedRedisServer | StartedRedisSentinelGroup,
    readonly kube: StartedKubeApiServer,
    readonly dataStorage: StartedDataStorageService,
    readonly prometheus: StartedPrometheusServer,
    readonly gateway: StartedGateway | undefined,
  ) {}

  endpoints(): StackEndpoints {
    const r = this.redis;
    return {
      gateway: this.gateway ? { url: this.gateway.getUrl(), configPath: this.gateway.getConfigPath() } : null,
      kubeconfig: this.kube.getKubeconfigPath(),
      kubernetes: { server: this.kube.getServerUrl() },
      redis:
        r instanceof StartedRedisSentinelGroup
          ? { sentinels: r.getSentinelAddresses(), masterName: r.getMasterName() }
          : { url: r.getConnectionUrl() },
      dataStorage: { url: this.dataStorage.getUrl() },
      postgres: { uri: this.dataStorage.postgres.getConnectionUri() },
      prometheus: { url: this.prometheus.getUrl() },
      logs: currentRunDir(),
    };
  }

  /** Stops in reverse dependency order: the gateway first, so it can flush its audit buffer. */
  async stop(): Promise<void> {
    await this.gateway?.stop();
    await Promise.allSettled([this.prometheus.stop(), this.dataStorage.stop(), this.kube.stop(), this.redis.stop()]);
  }
}
