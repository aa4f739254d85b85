// The group/check tree k6 reports as `root_group` in the summary.
import { createHash } from "node:crypto";
import type { SummaryCheck as CheckSummary, SummaryGroup as GroupSummary } from "../../lib/k6-summary.js";

const id = (path: string) => createHash("md5").update(path).digest("hex");

class GroupNode {
  readonly groups = new Map<string, GroupNode>();
  readonly checks = new Map<string, CheckSummary>();
  constructor(
    readonly name: string,
    readonly path: string,
  ) {}

  summary(): GroupSummary {
    return {
      name: this.name,
      path: this.path,
      id: id(this.path),
      groups: [...this.groups.values()].map((g) => g.summary()),
      checks: [...this.checks.values()].map((c) => ({ ...c })),
    };
  }
}

export class GroupTree {
  private readonly byPath = new Map<string, GroupNode>([["", new GroupNode("", "")]]);

  /** The path of group `name` inside `parentPath` ("" is the root; paths look like "::a::b"). */
  enter(parentPath: string, name: string): string {
    const path = `${parentPath}::${name}`;
    if (!this.byPath.has(path)) {
      const node = new GroupNode(name, path);
      this.node(parentPath).groups.set(name, node);
      this.byPath.set(path, node);
    }
    return path;
  }

  recordCheck(groupPath: string, name: string, ok: boolean): void {
    const checks = this.node(groupPath).checks;
    let check = checks.get(name);
    if (!check) {
      const path = `${groupPath}::${name}`;
      check = { name, path, id: id(path), passes: 0, fails: 0 };
      checks.set(name, check);
    }
    if (ok) check.passes++;
    else check.fails++;
  }

  summary(): GroupSummary {
    return this.node("").summary();
  }

  private node(path: string): GroupNode {
    return this.byPath.get(path) as GroupNode;
  }
}
