// Scenario 11: two gateway replicas on one Redis and API server. Concurrent first
// sightings of the same fingerprints make exactly one request each; each duplicate
// refreshes the dedup TTL; past the window, a still-active request takes the next
// sighting and a finished one leaves room for a new request.
import { scenario } from "../src/dsl.js";
import { replicasDedupWindow } from "../src/scenarios/replicas-dedup-window.js";

scenario("11. two replicas deduplicate as one; each duplicate refreshes the dedup window", ({ given, when, then }) =>
  replicasDedupWindow({ given, when, then }),
);
