// Every experiment by name, and the suites the Taskfile runs.
import type { Experiment, RunParameters } from "../src/experiment.js";
import { infra } from "./infra.js";
import { network } from "./network.js";
import { resources } from "./resources.js";

export const EXPERIMENTS: Record<string, (p: RunParameters) => Experiment> = { ...network, ...infra, ...resources };

const named = (group: string) => Object.keys(EXPERIMENTS).filter((n) => n.startsWith(`${group}/`));

export const SUITES: Record<string, string[]> = {
  network: named("network"),
  "redis-failover": ["infra/redis-failover"],
  infra: named("infra"),
  resources: named("resources"),
  all: Object.keys(EXPERIMENTS),
};
