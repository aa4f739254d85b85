// e2e:kind's cluster: created from e2e/kind/kind-config.yaml, the gateway's image built and
// loaded into it, the overlay applied server-side and waited for; then the scenarios run
// against it as against any cluster (e2e:cluster), through the NodePorts the config maps to
// 127.0.0.1. Its logs are exported when a scenario failed; it is deleted at the end, always.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { KubeCluster } from "../../harness/src/components/kube-api.js";
import { binary, repoRoot, toolsBin } from "../../harness/src/paths.js";
import { eventually } from "../../harness/src/poll.js";

const KIND_DIR = join(repoRoot, "e2e", "kind");
/** As named in kind-config.yaml. */
const CLUSTER = "kubernaut-e2e";
const IMAGE = "kubernaut/gateway:dev";
const NAMESPACE = "kubernaut-system";

export interface KindTarget {
  kubeconfig: string;
  gatewayUrl: string;
  dataStorageUrl: string;
  redisUrl: string;
}

/** Why Kind cannot run here (undefined: it can): its Docker engine or the pinned kind binary is missing. */
export function kindUnavailable(): string | undefined {
  const docker = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 20_000 });
  const errno = (docker.error as NodeJS.ErrnoException | undefined)?.code;
  const engine =
    errno === "ENOENT"
      ? "no `docker` command on PATH"
      : docker.error
        ? `\`docker info\` did not answer within 20 s (${docker.error.message})`
        : docker.status !== 0
          ? `the Docker daemon is not answering (docker info: ${docker.stderr.trim() || `exit ${docker.status}`})`
          : undefined;
  const kind = join(toolsBin, "kind");
  const noKind = existsSync(kind) ? undefined : `${relative(repoRoot, kind)} is not built (run ./taskw setup)`;
  if (engine) return `e2e:kind needs a Docker engine: ${engine}${noKind ? `; it also needs kind: ${noKind}` : ""}`;
  if (noKind) return `e2e:kind needs the pinned kind binary: ${noKind}`;
  return undefined;
}

/** One command of the bring-up, its output on the terminal; throws naming it when it fails. */
function step(what: string, command: string, args: string[]): void {
  process.stdout.write(`e2e:kind: ${what}\n`);
  const r = spawnSync(command, args, { cwd: repoRoot, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`e2e:kind: ${what} failed (${command} ${args.join(" ")}: exit ${r.status})`);
}

/** Creates the cluster and deploys everything into it; the caller deletes it with `deleteKindCluster`. */
export async function createKindCluster(dir: string): Promise<KindTarget> {
  const kind = binary("kind");
  const kubeconfig = join(dir, "kubeconfig");
  step("creating the Kind cluster", kind, [
    "create",
    "cluster",
    "--config",
    join(KIND_DIR, "kind-config.yaml"),
    "--kubeconfig",
    kubeconfig,
    "--wait",
    "180s",
  ]);
  step(`building ${IMAGE}`, "docker", ["build", "-f", "gateway/Dockerfile", "-t", IMAGE, "."]);
  step(`loading ${IMAGE} into the cluster`, kind, ["load", "docker-image", IMAGE, "--name", CLUSTER]);
  const manifests = execFileSync(binary("kustomize"), ["build", KIND_DIR], { encoding: "utf8" });
  const cluster = new KubeCluster(kubeconfig);
  process.stdout.write("e2e:kind: applying e2e/kind (server-side)\n");
  await cluster.applyYaml(manifests, { fieldManager: "e2e-kind" });
  await workloadsReady(cluster);
  return {
    kubeconfig,
    gatewayUrl: "http://127.0.0.1:30080",
    dataStorageUrl: "http://127.0.0.1:30081",
    redisUrl: "redis://127.0.0.1:30379",
  };
}

/** Every Deployment and StatefulSet of the namespace has all its replicas ready, or says which has not. */
async function workloadsReady(cluster: KubeCluster): Promise<void> {
  const { apps } = cluster.clients();
  process.stdout.write("e2e:kind: waiting for every workload to be ready\n");
  await eventually(
    async () => {
      const workloads = [
        ...(await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items,
        ...(await apps.listNamespacedStatefulSet({ namespace: NAMESPACE })).items,
      ];
      const waiting = workloads
        .filter((w) => (w.status?.readyReplicas ?? 0) < (w.spec?.replicas ?? 1))
        .map((w) => `${w.metadata?.name} ${w.status?.readyReplicas ?? 0}/${w.spec?.replicas ?? 1}`);
      if (waiting.length > 0) throw new Error(`not ready: ${waiting.join(", ")}`);
      return true;
    },
    { what: "every workload in kubernaut-system to be ready", timeoutMs: 600_000, intervalMs: 2_000 },
  );
}

/** Exports the cluster's logs into `logsDir` when asked, then deletes the cluster (best effort, reported). */
export function deleteKindCluster(logsDir: string | undefined): void {
  const kind = binary("kind");
  if (logsDir) spawnSync(kind, ["export", "logs", logsDir, "--name", CLUSTER], { stdio: "inherit" });
  const r = spawnSync(kind, ["delete", "cluster", "--name", CLUSTER], { stdio: "inherit" });
  if (r.status !== 0)
    process.stderr.write(
      `e2e:kind: deleting the cluster failed; delete it with: kind delete cluster --name ${CLUSTER}\n`,
    );
}
