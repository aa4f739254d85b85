// Scenario 4: deduplication across gateway restarts, graceful (SIGTERM) and
// abrupt (SIGKILL): still one request, counting every occurrence.
import { scenario } from "../src/dsl.js";
import { dedupAcrossRestarts } from "../src/scenarios/dedup-across-restarts.js";

scenario("4. deduplication holds across gateway restarts (SIGTERM and SIGKILL)", ({ given, when, then }) =>
  dedupAcrossRestarts({ given, when, then }),
);
