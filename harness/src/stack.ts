import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { DataStorageService, type StartedDataStorageService } from "./components/data-storage.js";
import { type ConfigTree, GatewayProcess, type StartedGateway } from "./components/gateway.js";
import { KubeApiServer, REMEDIATION_REQUEST_CRD, type StartedKubeApiServer } from "./components/kube-api.js";
import { PrometheusServer, type StartedPrometheusServer } from "./components/prometheus.js";
import { RedisServer, type StartedRedisServer } from "./components/redis.js";
import { RedisSentinelGroup, StartedRedisSentinelGroup } from "./components/redis-sentinel.js";
import { type StartedToxiproxyServer, type ToxicProxy, ToxiproxyServer } from "./components/toxiproxy.js";
import { currentRunDir, scratchDir } from "./paths.js";
import { freePort } from "./ports.js";

/** Endpoints of a running stack, as written to results/stack.json. */
export interface StackEndpoints {
  gateway: { url: string; configPath: string } | null;
  kubeconfig: string;
  kubernetes: { server: string };
  redis: { url: string } | { sentinels: string; masterName: string };
  dataStorage: { url: string };
  postgres: { uri: string };
  prometheus: { url: string };
  /** withToxiproxy(): the control API, the kubeconfig the gateway uses, its URL through `ingress` (if proxied), every proxy. */
  toxiproxy: {
    api: string;
    kubeconfig: string;
    ingressUrl: string | null;
    proxies: { name: string; listen: string; upstream: string }[];
  } | null;
  logs: string;
}

/** The links withToxiproxy() can put a proxy on (StackProxies says which proxy is which). */
export type ProxiedLink = "redis" | "replication" | "kube" | "dataStorage" | "ingress";
export const ALL_LINKS: readonly ProxiedLink[] = ["redis", "replication", "kube", "dataStorage", "ingress"];

/**
 * The proxies of a stack started withToxiproxy(), one per link; each is
 * named here by its Toxiproxy proxy name. Only the gateway's links go through
 * them: the harness (stack.redis, stack.kube, ...) and Prometheus scraping
 * the gateway connect directly. A link left out of withToxiproxy(links) has
 * no proxy (empty list, or undefined) and is connected directly.
 */
export interface StackProxies {
  /** Gateway → Redis: `redis` (one server), or `redis-sentinel-<i>` per sentinel, in sentinel order. */
  redis: ToxicProxy[];
  /**
   * Gateway → each Sentinel node, `gateway-redis-node-<i>` in node order (empty with one server):
   * redis.natMap maps the address a sentinel announces for node i to it, so the master is reached through it.
   */
  redisNodes: ToxicProxy[];
  /**
   * Into each Sentinel node from its peers and the sentinels, `redis-node-<i>` in node order (empty with one
   * server; RedisSentinelGroup.withReplicationProxy): downstream of the master's runs the replication stream.
   */
  replication: ToxicProxy[];
  /** Gateway → Kubernetes API server, `kube-apiserver` (TLS passes through). */
  kube?: ToxicProxy;
  /** Gateway → Data Storage, `data-storage`. */
  dataStorage?: ToxicProxy;
  /** Load generator → gateway, `ingress` (see ingressUrl()). */
  ingress?: ToxicProxy;
}

/** What withToxiproxy() adds to a started stack. */
interface ProxiedLinks {
  toxiproxy: StartedToxiproxyServer;
  proxies: StackProxies;
  /** The kubeconfig the gateway uses: a copy whose server is the `kube-apiserver` proxy, if that link is proxied. */
  kubeconfigPath: string;
  /** Removes the kubeconfig copy. */
  stop(): Promise<void>;
}

/** The links into the dependencies (every proxy but `ingress`) and the gateway settings that use them. */
interface DependencyLinks extends Omit<ProxiedLinks, "proxies"> {
  proxies: Omit<StackProxies, "ingress">;
  redisConfig: ConfigTree;
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
  private toxiproxy: ReadonlySet<ProxiedLink> | undefined;
  private gatewayMain: string | undefined;
  private gatewayCgroups: string[] = [];
  private gatewayNodeOptions: string[] = [];
  private crds: string[] = [];
  private prometheusDataDir: string | undefined;

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

  /**
   * A ToxiproxyServer with a proxy on each of `links` (default: every link; see
   * StackProxies): to Redis, the Kubernetes API and Data Storage, and in front
   * of the gateway (`ingressUrl()`). With withSentinel() and "replication" the
   * nodes also replicate through proxies of their own, so replicas can be made
   * to lag. Every proxy costs CPU on each byte it carries (at 1000 signals/s all
   * of them took a quarter to a third of a core), so a run proxies what it faults.
   * Needs the stack's gateway (not withoutGateway()).
   */
  withToxiproxy(links: readonly ProxiedLink[] = ALL_LINKS): this {
    const unknown = links.filter((l) => !ALL_LINKS.includes(l));
    if (unknown.length > 0 || links.length === 0)
      throw new Error(
        `LocalStack.withToxiproxy(): links must be some of ${ALL_LINKS.join(", ")} (got: ${JSON.stringify(links)})`,
      );
    this.toxiproxy = new Set(links);
    return this;
  }

  /** Runs another gateway entry point, e.g. a patched copy from `patchedGateway()` (GatewayProcess.withMain). */
  withGatewayMain(path: string): this {
    this.gatewayMain = path;
    return this;
  }

  /** Start the gateway inside these cgroup directories (GatewayProcess.withCgroups). */
  withGatewayCgroups(paths: string[]): this {
    this.gatewayCgroups = paths;
    return this;
  }
  /** Options of the gateway's node process (GatewayProcess.withNodeOptions). */
  withGatewayNodeOptions(options: string[]): this {
    this.gatewayNodeOptions = [...this.gatewayNodeOptions, ...options];
    return this;
  }

  /** More CRD files for the API server beside the RemediationRequest's (e.g. STANDIN_CRDS). */
  withCrds(paths: string[]): this {
    this.crds.push(...paths);
    return this;
  }

  /** Prometheus keeps its TSDB there after the stack stops (PrometheusServer.withDataDir). */
  withPrometheusDataDir(dir: string): this {
    this.prometheusDataDir = dir;
    return this;
  }

  /** Namespaces to create, with their labels (e.g. `environment: production`). */
  withNamespaces(namespaces: Record<string, Record<string, string>>): this {
    Object.assign(this.namespaces, namespaces);
    return this;
  }

  /** Where the gateway listens, as Prometheus reaches it: the configured address, else a free port. */
  private async gatewayListenAddress(): Promise<string> {
    const configured = (this.gatewayConfig.server as ConfigTree | undefined)?.listenAddress;
    return typeof configured === "string"
      ? configured.replace(/^0\.0\.0\.0:/, "127.0.0.1:")
      : `127.0.0.1:${await freePort()}`;
  }

  async start(): Promise<StartedLocalStack> {
    // What started so far, stopped again if a later component fails to start.
    const started: { stop(): Promise<unknown> }[] = [];
    function track<T extends { stop(): Promise<unknown> }>(c: T): T {
      started.push(c);
      return c;
    }
    if (this.toxiproxy && !this.gateway) {
      throw new Error(
        "LocalStack: withToxiproxy() proxies the stack's own gateway; it cannot go with withoutGateway()",
      );
    }
    try {
      // First, because the Sentinel nodes start behind its proxies.
      const toxiproxy = this.toxiproxy ? track(await new ToxiproxyServer().start()) : undefined;
      const group = new RedisSentinelGroup();
      if (toxiproxy && this.toxiproxy?.has("replication")) group.withReplicationProxy(toxiproxy);
      // The gateway's address first, so Prometheus starts beside the dependencies: it applies its
      // targets only some 5 s after it starts, time that now passes while they start.
      const listen = this.gateway ? await this.gatewayListenAddress() : undefined;
      const prometheus = new PrometheusServer();
      if (listen) prometheus.withScrapeTarget("gateway", listen, { scrapeInterval: "1s" });
      if (this.prometheusDataDir) prometheus.withDataDir(this.prometheusDataDir);
      const [redis, kube, dataStorage, prom] = await Promise.all([
        this.sentinel ? group.start().then(track) : new RedisServer().start().then(track),
        new KubeApiServer()
          .withCrds([REMEDIATION_REQUEST_CRD, ...this.crds])
          .start()
          .then(track),
        new DataStorageService().start().then(track),
        prometheus.start().then(track),
      ]);
      for (const [name, labels] of Object.entries({ "kubernaut-system": {}, ...this.namespaces })) {
        await kube.createNamespace(name, labels);
      }
      const deps =
        toxiproxy && this.toxiproxy
          ? track(await dependencyLinks(toxiproxy, this.toxiproxy, redis, kube, dataStorage))
          : undefined;
      let gateway: StartedGateway | undefined;
      let links: ProxiedLinks | undefined;
      if (this.gateway) {
        const process = new GatewayProcess().withConfig({
          server: { listenAddress: listen },
          redis: deps?.redisConfig ?? redisConfig(redis),
          kubernetes: { mode: "kubeconfig", kubeconfigPath: deps?.kubeconfigPath ?? kube.getKubeconfigPath() },
          dataStorage: {
            url: deps?.proxies.dataStorage ? `http://${deps.proxies.dataStorage.getListen()}` : dataStorage.getUrl(),
          },
        });
        // Merged, not spread: settings under dataStorage (or redis, kubernetes) keep the links above.
        process.withConfig(this.gatewayConfig);
        if (this.gatewayMain) process.withMain(this.gatewayMain);
        if (this.gatewayCgroups.length) process.withCgroups(this.gatewayCgroups);
        if (this.gatewayNodeOptions.length) process.withNodeOptions(this.gatewayNodeOptions);
        gateway = track(await process.start());
        if (deps) {
          const ingress = this.toxiproxy?.has("ingress")
            ? await deps.toxiproxy.createProxy("ingress", new URL(gateway.getUrl()).host)
            : undefined;
          links = { ...deps, proxies: { ...deps.proxies, ingress } };
        }
      }
      return new StartedLocalStack(redis, kube, dataStorage, prom, gateway, links);
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

const show = (a: { host: string; port: number }) => `${a.host}:${a.port}`;

/**
 * A proxy on each of the gateway's links in `links`, and the gateway settings
 * that use them. With Sentinel the gateway asks the sentinels through their
 * proxies, and natMap turns each address a sentinel hands out (a node as it
 * announces itself, i.e. its replication proxy, or a sentinel it knows) into
 * the gateway's own proxy for it: without that, the gateway would follow the
 * announced addresses past its proxies. With the Redis link left out but the
 * nodes behind replication proxies, natMap points the gateway at the nodes
 * themselves, so it meets no toxic meant for replication.
 */
async function dependencyLinks(
  toxiproxy: StartedToxiproxyServer,
  links: ReadonlySet<ProxiedLink>,
  redis: StartedRedisServer | StartedRedisSentinelGroup,
  kube: StartedKubeApiServer,
  dataStorage: StartedDataStorageService,
): Promise<DependencyLinks> {
  const proxy = (name: string, upstream: string) => toxiproxy.createProxy(name, upstream);
  const [kubeProxy, dataStorageProxy] = await Promise.all([
    links.has("kube") ? proxy("kube-apiserver", new URL(kube.getServerUrl()).host) : undefined,
    links.has("dataStorage") ? proxy("data-storage", new URL(dataStorage.getUrl()).host) : undefined,
  ]);
  const dir = scratchDir("stack-links");
  let kubeconfigPath = kube.getKubeconfigPath();
  if (kubeProxy) {
    // The serving certificate names 127.0.0.1, so TLS verifies through a loopback proxy too.
    const kubeconfig = parse(readFileSync(kube.getKubeconfigPath(), "utf8")) as {
      clusters: { cluster: { server: string } }[];
    };
    for (const { cluster } of kubeconfig.clusters) cluster.server = `https://${kubeProxy.getListen()}`;
    kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(kubeconfigPath, stringify(kubeconfig), { mode: 0o600 });
  }

  let redisProxies: ToxicProxy[] = [];
  let redisNodes: ToxicProxy[] = [];
  let replication: ToxicProxy[] = [];
  let gatewayRedis: ConfigTree = redisConfig(redis);
  if (redis instanceof StartedRedisSentinelGroup) {
    replication = links.has("replication") ? redis.getNodeProxies() : [];
  }
  if (redis instanceof StartedRedisSentinelGroup && !links.has("redis") && replication.length > 0) {
    const natMap: Record<string, string> = {};
    redis.getNodes().forEach((announced, i) => {
      const node = redis.nodes[i];
      if (node) natMap[show(announced)] = `${node.getHost()}:${node.getPort()}`;
    });
    gatewayRedis = { ...gatewayRedis, natMap };
  } else if (redis instanceof StartedRedisSentinelGroup && links.has("redis")) {
    const sentinels = redis.getSentinels();
    [redisProxies, redisNodes] = await Promise.all([
      Promise.all(sentinels.map((s, i) => proxy(`redis-sentinel-${i}`, show(s)))),
      Promise.all(redis.nodes.map((n, i) => proxy(`gateway-redis-node-${i}`, `${n.getHost()}:${n.getPort()}`))),
    ]);
    const natMap: Record<string, string> = {};
    redis.getNodes().forEach((announced, i) => {
      natMap[show(announced)] = (redisNodes[i] as ToxicProxy).getListen();
    });
    sentinels.forEach((s, i) => {
      natMap[show(s)] = (redisProxies[i] as ToxicProxy).getListen();
    });
    gatewayRedis = { ...redisConfig(redis), sentinels: redisProxies.map((p) => p.getListen()), natMap };
  } else if (!(redis instanceof StartedRedisSentinelGroup) && links.has("redis")) {
    const server = await proxy("redis", `${redis.getHost()}:${redis.getPort()}`);
    redisProxies = [server];
    const url = new URL(redis.getConnectionUrl());
    url.host = server.getListen();
    gatewayRedis = { mode: "single", url: url.toString() };
  }
  return {
    toxiproxy,
    proxies: { redis: redisProxies, redisNodes, replication, kube: kubeProxy, dataStorage: dataStorageProxy },
    kubeconfigPath,
    redisConfig: gatewayRedis,
    stop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

export class StartedLocalStack {
  constructor(
    readonly redis: StartedRedisServer | StartedRedisSentinelGroup,
    readonly kube: StartedKubeApiServer,
    readonly dataStorage: StartedDataStorageService,
    readonly prometheus: StartedPrometheusServer,
    readonly gateway: StartedGateway | undefined,
    private readonly links: ProxiedLinks | undefined,
  ) {}

  /** The Toxiproxy server of withToxiproxy(). */
  get toxiproxy(): StartedToxiproxyServer {
    return this.proxied("toxiproxy").toxiproxy;
  }

  /** The proxy on each link of withToxiproxy(); see StackProxies for which is which. */
  get proxies(): StackProxies {
    return this.proxied("proxies").proxies;
  }

  /** The gateway's base URL through the `ingress` proxy, e.g. http://127.0.0.1:41235 (withToxiproxy() with "ingress"). */
  ingressUrl(): string {
    const ingress = this.proxied("ingressUrl()").proxies.ingress;
    if (!ingress) throw new Error("ingressUrl(): the stack's withToxiproxy() links leave out 'ingress'");
    return `http://${ingress.getListen()}`;
  }

  private proxied(what: string): ProxiedLinks {
    if (!this.links) throw new Error(`${what}: the stack was started without withToxiproxy()`);
    return this.links;
  }

  endpoints(): StackEndpoints {
    const r = this.redis;
    const links = this.links;
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
      toxiproxy: links
        ? {
            api: links.toxiproxy.getApiUrl(),
            kubeconfig: links.kubeconfigPath,
            ingressUrl: links.proxies.ingress ? this.ingressUrl() : null,
            proxies: Object.values(links.proxies)
              .flat()
              .filter((p): p is ToxicProxy => p !== undefined)
              .map((p) => ({ name: p.getName(), listen: p.getListen(), upstream: p.getUpstream() })),
          }
        : null,
      logs: currentRunDir(),
    };
  }

  /**
   * Stops in reverse dependency order: the gateway first, so it can flush its
   * audit buffer, after every toxic is removed and every proxy enabled again.
   */
  async stop(): Promise<void> {
    // A Toxiproxy a test killed has no links to free: the gateway then stops without them.
    await this.links?.toxiproxy.reset().catch(() => {});
    // A gateway that died (e.g. OOM-killed) fails its stop(): the rest is stopped all the same.
    const gateway = await Promise.allSettled([this.gateway?.stop()]);
    await Promise.allSettled([
      this.prometheus.stop(),
      this.dataStorage.stop(),
      this.kube.stop(),
      this.redis.stop(),
      this.links?.toxiproxy.stop(),
      this.links?.stop(),
    ]);
    if (gateway[0].status === "rejected") throw gateway[0].reason;
  }
}
