import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { cpSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
} from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { binary, repoRoot, scratchDir } from "../paths.js";
import { eventually } from "../poll.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";

/** The project's RemediationRequest CRD, applied to every cluster the suites use. */
export const REMEDIATION_REQUEST_CRD = join(repoRoot, "gateway", "deploy", "base", "crd-remediationrequest.yaml");

/** Which admin credential the kubeconfig carries: the static bearer token or a client certificate. */
export type KubeAuthMode = "token" | "cert";

/** A Kubernetes object as it travels over the wire (no typed model, no field renaming). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ApplyOptions {
  /** "All": the server validates and admits the objects but persists nothing. */
  dryRun?: "All";
  fieldManager?: string;
}

interface Pki {
  caCert: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saPublicKey: string;
  saPrivateKey: string;
}

const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[serving_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
`;

/**
 * A throwaway CA, the API server's serving certificate, an admin client
 * certificate (O=system:masters) and the service-account signing key, as
 * envtest prepares them. node:crypto cannot issue X.509 certificates, so the
 * openssl CLI signs; P-256 keys keep it fast.
 */
function makePki(dir: string): Pki {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync(binary("openssl"), args, { stdio: ["ignore", "ignore", "pipe"] });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  writeFileSync(file("openssl.cnf"), OPENSSL_CONFIG);
  const config = ["-config", file("openssl.cnf")];
  // biome-ignore format: option/value pairs read best on one line
  openssl("req", "-x509", "-new", ...newKey, "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "30",
    "-subj", "/CN=gateway-harness-ca", ...config, "-extensions", "ca_ext");
  const issue = (name: string, subject: string, extensions: string) => {
    // biome-ignore format: option/value pairs read best on one line
    openssl("req", "-new", ...newKey, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`),
      "-subj", subject, ...config);
    // biome-ignore format: option/value pairs read best on one line
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key"),
      "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", "30", "-out", file(`${name}.crt`),
      "-extfile", file("openssl.cnf"), "-extensions", extensions);
  };
  issue("serving", "/CN=kube-apiserver", "serving_ext");
  issue("admin", "/O=system:masters/CN=harness-admin", "client_ext");
  const sa = generateKeyPairSync("ec", {
    namedCurve: "prime256v1",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  writeFileSync(file("sa.pub"), sa.publicKey);
  writeFileSync(file("sa.key"), sa.privateKey);
  return {
    caCert: file("ca.crt"),
    servingCert: file("serving.crt"),
    servingKey: file("serving.key"),
    adminCert: file("admin.crt"),
    adminKey: file("admin.key"),
    saPublicKey: file("sa.pub"),
    saPrivateKey: file("sa.key"),
  };
}

function writeKubeconfig(path: string, server: string, pki: Pki, auth: KubeAuthMode, token: string): void {
  const b64 = (p: string) => readFileSync(p).toString("base64");
  const user =
    auth === "cert"
      ? { "client-certificate-data": b64(pki.adminCert), "client-key-data": b64(pki.adminKey) }
      : { token };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "harness", cluster: { server, "certificate-authority-data": b64(pki.caCert) } }],
    users: [{ name: "harness-admin", user }],
    contexts: [{ name: "harness", context: { cluster: "harness", user: "harness-admin", namespace: "default" } }],
    "current-context": "harness",
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
}

/**
 * A real Kubernetes control plane without nodes, like controller-runtime's
 * envtest: etcd + kube-apiserver on loopback with TLS, RBAC and the CRDs applied.
 * `const kube = await new KubeApiServer().withCrds([REMEDIATION_REQUEST_CRD]).start()`
 */
export class KubeApiServer {
  private crds: string[] = [];
  private auth: KubeAuthMode = "token";

  /** CRD YAML files to apply; start() returns once each is Established and served. */
  withCrds(paths: string[]): this {
    this.crds.push(...paths);
    return this;
  }

  /** Admin credential written into the kubeconfig (default "token"). */
  withAuth(mode: KubeAuthMode): this {
    this.auth = mode;
    return this;
  }

  async start(): Promise<StartedKubeApiServer> {
    return this.launch(await KubeApiServer.seedFor(this.crds));
  }

  /**
   * etcd's data with `crds` applied, made once per machine and copied by every start: a cluster
   * whose CRDs are already stored starts about 3 s sooner (kube-apiserver finds its bootstrap
   * objects present, and holds creates for ~2 s only after a CRD is newly established).
   */
  private static async seedFor(crds: string[]): Promise<string> {
    const hash = createHash("sha256");
    for (const name of ["etcd", "kube-apiserver"]) {
      const path = binary(name);
      hash.update(existsSync(`${path}.stamp`) ? readFileSync(`${path}.stamp`) : `${path}@${statSync(path).mtimeMs}`);
    }
    for (const crd of crds) hash.update(readFileSync(crd));
    const seed = join(tmpdir(), `gw-kube-seed-${hash.digest("hex").slice(0, 16)}`);
    if (existsSync(seed)) return seed;
    const made = await new KubeApiServer().withCrds(crds).launch(undefined);
    await made.saveEtcdData(seed);
    return seed;
  }

  /** Starts etcd and kube-apiserver, etcd from a copy of `seed` (its data) when given. */
  private async launch(seed: string | undefined): Promise<StartedKubeApiServer> {
    const dir = scratchDir("kube");
    const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const pki = makePki(dir);
    const token = randomBytes(24).toString("hex");
    writeFileSync(join(dir, "tokens.csv"), `${token},harness-admin,harness-admin,"system:masters"\n`, { mode: 0o600 });
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = join(dir, "kubeconfig");
    writeKubeconfig(kubeconfigPath, server, pki, this.auth, token);

    const etcdClientUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = new ManagedProcess({
      name: `etcd-${etcdClientPort}`,
      command: binary("etcd"),
      args: [
        "--name=harness",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${etcdClientUrl}`,
        `--advertise-client-urls=${etcdClientUrl}`,
        `--listen-peer-urls=${etcdPeerUrl}`,
        `--initial-advertise-peer-urls=${etcdPeerUrl}`,
        `--initial-cluster=harness=${etcdPeerUrl}`,
        "--unsafe-no-fsync", // a test cluster trades durability on power loss for speed
        "--log-level=warn",
      ],
      ready: () => httpReady(`${etcdClientUrl}/health`),
      readyTimeoutMs: 30_000,
    });

    const apiServerArgs = [
      `--etcd-servers=${etcdClientUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      // Endpoints of the "kubernetes" Service may not be loopback, and nothing here routes through it.
      "--endpoint-reconciler-type=none",
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      // Like a hardened cluster: a request without credentials is 401, not system:anonymous.
      "--anonymous-auth=false",
      "--authorization-mode=RBAC",
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${pki.saPublicKey}`,
      `--service-account-signing-key-file=${pki.saPrivateKey}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      // No controller-manager runs, so nothing would mint the tokens this plugin expects on pods.
      "--disable-admission-plugins=ServiceAccount",
      "--allow-privileged=true",
      "--profiling=false",
      // Without it a graceful stop waits for every open watch (the gateway's index keeps one) until
      // the stop timeout SIGKILLs it; with it the server ends its watches and exits in about a second.
      "--shutdown-watch-termination-grace-period=2s",
    ];
    const handle = new StartedKubeApiServer(etcd, apiServerArgs, apiPort, kubeconfigPath, token, dir);
    try {
      if (seed) cpSync(seed, join(dir, "etcd"), { recursive: true });
      await etcd.start();
      await handle.startApiServer();
      for (const crd of this.crds) await handle.applyYaml(crd);
    } catch (err) {
      await handle.stop();
      throw err;
    }
    return handle;
  }
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

/** Kinds applied before everything else, so objects that need them find them. */
const APPLY_FIRST = ["CustomResourceDefinition", "Namespace"];

/**
 * Any cluster reached through a kubeconfig: the harness's own API server, or a
 * user's cluster (e2e:cluster, Kind). Clients, server-side apply, namespaces
 * and ServiceAccount credentials; no process control.
 */
export class KubeCluster {
  private cachedConfig: KubeConfig | undefined;

  constructor(private readonly kubeconfigPath: string) {}

  getKubeconfigPath(): string {
    return this.kubeconfigPath;
  }
  /** The current context's API server. */
  getServerUrl(): string {
    const server = this.config().getCurrentCluster()?.server;
    if (!server) throw new Error(`${this.kubeconfigPath}: the current context names no cluster server`);
    return server;
  }

  /** A fresh KubeConfig loaded from the kubeconfig file (the caller may change it). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  clients() {
    const kc = this.config();
    return {
      core: kc.makeApiClient(CoreV1Api),
      apps: kc.makeApiClient(AppsV1Api),
      custom: kc.makeApiClient(CustomObjectsApi),
      apiextensions: kc.makeApiClient(ApiextensionsV1Api),
      rbac: kc.makeApiClient(RbacAuthorizationV1Api),
      authentication: kc.makeApiClient(AuthenticationV1Api),
    };
  }

  async createNamespace(name: string, labels?: Record<string, string>): Promise<void> {
    await this.clients().core.createNamespace({ body: { metadata: { name, labels } } });
  }

  /**
   * A token for a ServiceAccount (created when missing) via the TokenRequest
   * API: an identity with only the RBAC the test grants it.
   */
  async serviceAccountToken(namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
    const { core } = this.clients();
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
    const res = await core.createNamespacedServiceAccountToken({
      namespace,
      name,
      body: { spec: { audiences: [], expirationSeconds } },
    });
    if (!res.status?.token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
    return res.status.token;
  }

  /** Writes a kubeconfig at `path` that authenticates as that ServiceAccount (see serviceAccountToken). */
  async serviceAccountKubeconfig(namespace: string, name: string, path: string): Promise<string> {
    const token = await this.serviceAccountToken(namespace, name);
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "harness",
          cluster: {
            server: this.getServerUrl(),
            "certificate-authority-data": Buffer.from(this.caCert()).toString("base64"),
            ...(this.config().getCurrentCluster()?.skipTLSVerify && { "insecure-skip-tls-verify": true }),
          },
        },
      ],
      users: [{ name, user: { token } }],
      contexts: [{ name, context: { cluster: "harness", user: name } }],
      "current-context": name,
    };
    writeFileSync(path, stringify(config), { mode: 0o600 });
    return path;
  }

  /**
   * Server-side apply of multi-document YAML (text or a file path). CRDs and
   * Namespaces go first; an applied CRD is waited for until it is Established
   * and served. With `dryRun: "All"` the server validates everything (schema,
   * admission) and stores nothing. Returns the objects as the server answered.
   */
  async applyYaml(textOrPath: string, opts: ApplyOptions = {}): Promise<KubeObject[]> {
    const isPath = !textOrPath.includes("\n") && existsSync(textOrPath);
    const source = isPath ? textOrPath : "YAML text";
    const docs = parseAllDocuments(isPath ? readFileSync(textOrPath, "utf8") : textOrPath);
    const objects: KubeObject[] = [];
    for (const [i, doc] of docs.entries()) {
      if (doc.errors.length > 0)
        throw new Error(`${source}: document ${i + 1} is not valid YAML: ${doc.errors[0]?.message}`);
      const obj = doc.toJS() as KubeObject | null;
      if (obj === null) continue;
      if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
        throw new Error(`${source}: document ${i + 1} needs apiVersion, kind and metadata.name`);
      }
      objects.push(obj);
    }
    const rank = (o: KubeObject) => (APPLY_FIRST.includes(o.kind) ? APPLY_FIRST.indexOf(o.kind) : APPLY_FIRST.length);
    objects.sort((a, b) => rank(a) - rank(b));

    const discovery = new Map<string, ApiResource[]>();
    const applied: KubeObject[] = [];
    for (const obj of objects) {
      const what = `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`;
      const path = await this.resourcePath(obj, discovery);
      const query = new URLSearchParams({ fieldManager: opts.fieldManager ?? "harness", force: "true" });
      if (opts.dryRun) query.set("dryRun", opts.dryRun);
      const res = await this.request("PATCH", `${path}?${query}`, {
        body: JSON.stringify(obj),
        contentType: "application/apply-patch+yaml",
      });
      if (res.status >= 300) throw new Error(`apply ${what} from ${source}: ${describeFailure(res)}`);
      applied.push(JSON.parse(res.body) as KubeObject);
      if (obj.kind === "CustomResourceDefinition" && !opts.dryRun) await this.waitForCrd(obj);
    }
    return applied;
  }

  /** API path of one object, found through discovery (so any kind the server serves works). */
  private async resourcePath(obj: KubeObject, discovery: Map<string, ApiResource[]>): Promise<string> {
    const groupPath = obj.apiVersion.includes("/") ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
    let resources = discovery.get(groupPath);
    if (!resources) {
      const res = await this.request("GET", groupPath);
      if (res.status !== 200)
        throw new Error(`${obj.apiVersion} is not served by the API server: ${describeFailure(res)}`);
      resources = (JSON.parse(res.body) as { resources: ApiResource[] }).resources;
      discovery.set(groupPath, resources);
    }
    const resource = resources.find((r) => r.kind === obj.kind && !r.name.includes("/"));
    if (!resource) throw new Error(`kind ${obj.kind} is not served in ${obj.apiVersion} (is its CRD applied?)`);
    const ns = resource.namespaced ? `/namespaces/${obj.metadata.namespace ?? "default"}` : "";
    return `${groupPath}${ns}/${resource.name}/${encodeURIComponent(obj.metadata.name as string)}`;
  }

  /**
   * Established is not enough: the REST endpoint may lag it, and
   * kube-apiserver holds creates for ~2 s after a CRD is established (for HA
   * consistency, kubernetes/kubernetes#99199). A dry-run create pays that
   * here instead of in the first test.
   */
  private async waitForCrd(crd: KubeObject): Promise<void> {
    const spec = crd.spec as {
      group: string;
      scope: string;
      names: { plural: string; kind: string };
      versions: { name: string; served: boolean }[];
    };
    const version = spec.versions.find((v) => v.served)?.name;
    const groupVersion = `${spec.group}/${version}`;
    await eventually(
      async () => {
        const res = await this.request(
          "GET",
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
        );
        const conditions = (JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } })
          .status?.conditions;
        if (!conditions?.some((c) => c.type === "Established" && c.status === "True")) return false;
        const list = await this.request("GET", `/apis/${groupVersion}/${spec.names.plural}?limit=1`);
        if (list.status !== 200) throw new Error(`list ${spec.names.plural}: ${describeFailure(list)}`);
        return true;
      },
      { what: `CRD ${crd.metadata.name} to be Established and served`, timeoutMs: 30_000, intervalMs: 50 },
    );
    const ns = spec.scope === "Namespaced" ? "/namespaces/default" : "";
    const skeleton = { apiVersion: groupVersion, kind: spec.names.kind, metadata: { name: "warm-up" } };
    const warmUp = await this.request("POST", `/apis/${groupVersion}${ns}/${spec.names.plural}?dryRun=All`, {
      body: JSON.stringify(skeleton),
      contentType: "application/json",
    });
    // Any verdict on the skeleton (422 for a missing spec, 201 when nothing is required) means writes are served.
    if (warmUp.status === 404 || warmUp.status >= 500) {
      throw new Error(`dry-run create of ${spec.names.kind}: ${describeFailure(warmUp)}`);
    }
  }

  /** One raw HTTPS call with the kubeconfig's credentials (no typed model in between). */
  async request(
    method: string,
    path: string,
    body?: { body: string; contentType: string },
    timeoutMs = 10_000,
  ): Promise<{ status: number; body: string }> {
    const options: RequestOptions = { method, headers: {} };
    await this.config().applyToHTTPSOptions(options);
    if (body) Object.assign(options.headers as object, { "Content-Type": body.contentType });
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(path, this.getServerUrl()), { ...options, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body?.body);
    });
  }

  private config(): KubeConfig {
    this.cachedConfig ??= this.kubeConfig();
    return this.cachedConfig;
  }

  /** PEM of the CA the kubeconfig trusts (inline or as a file). */
  private caCert(): string {
    const cluster = this.config().getCurrentCluster();
    if (cluster?.caData) return Buffer.from(cluster.caData, "base64").toString("utf8");
    if (cluster?.caFile) return readFileSync(cluster.caFile, "utf8");
    return "";
  }
}

export class StartedKubeApiServer extends KubeCluster {
  /** The kube-apiserver process (fault verbs: pause/resume/kill). */
  readonly apiServer: ManagedProcess;

  constructor(
    readonly etcd: ManagedProcess,
    apiServerArgs: string[],
    apiPort: number,
    kubeconfigPath: string,
    private readonly token: string,
    private readonly dir: string,
  ) {
    super(kubeconfigPath);
    this.apiServer = new ManagedProcess({
      name: `kube-apiserver-${apiPort}`,
      command: binary("kube-apiserver"),
      args: apiServerArgs,
      ready: async () => (await this.request("GET", "/readyz", undefined, 2_000)).status === 200,
      readyTimeoutMs: 90_000,
      stopTimeoutMs: 15_000,
    });
  }

  /** Bearer token of the admin user (group system:masters), whatever withAuth() chose for the kubeconfig. */
  getToken(): string {
    return this.token;
  }
  /** PEM of the CA that signed the serving certificate. */
  getCaCert(): string {
    return readFileSync(join(this.dir, "ca.crt"), "utf8");
  }

  /** Starts kube-apiserver (again) on the same port and waits for /readyz. */
  async startApiServer(): Promise<void> {
    await this.apiServer.start();
    // /readyz can pass before the bootstrap controller has created "default".
    await eventually(async () => (await this.request("GET", "/api/v1/namespaces/default")).status === 200, {
      what: "namespace default to exist",
      timeoutMs: 30_000,
    });
  }

  /** Graceful stop of kube-apiserver only; etcd keeps the data. */
  async stopApiServer(): Promise<void> {
    await this.apiServer.stop();
  }

  /** Stop and start kube-apiserver; every object survives in etcd. */
  async restart(): Promise<void> {
    await this.stopApiServer();
    await this.startApiServer();
  }

  /**
   * Stops both processes and moves etcd's data to `path` (left as it is when another process
   * saved its copy there first), then removes the rest.
   */
  async saveEtcdData(path: string): Promise<void> {
    await this.apiServer.stop();
    await this.etcd.stop();
    try {
      renameSync(join(this.dir, "etcd"), path);
    } catch (err) {
      if (!["EEXIST", "ENOTEMPTY"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Ends both processes and removes certificates, kubeconfig and etcd data. Killed, not stopped:
   * nothing of theirs is kept, and a graceful stop of kube-apiserver takes a second.
   */
  async stop(): Promise<void> {
    await this.apiServer?.kill();
    await this.etcd.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function describeFailure(res: { status: number; body: string }): string {
  try {
    const status = JSON.parse(res.body) as { message?: string };
    return `${res.status} ${status.message ?? res.body}`;
  } catch {
    return `${res.status} ${res.body.slice(0, 500)}`;
  }
}
