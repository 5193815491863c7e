// The validated graph: unique ids, known dependencies, no cycles, and the order to build a target in.
import type { NodeSpec } from "./types.ts";
import { UserError } from "./types.ts";

export class Graph<C> {
  private readonly byId = new Map<string, NodeSpec<C>>();

  constructor(nodes: readonly NodeSpec<C>[]) {
    for (const node of nodes) {
      if (this.byId.has(node.id)) throw new Error(`Two nodes share the id "${node.id}"`);
      this.byId.set(node.id, node);
    }
    for (const node of nodes) {
      for (const dep of node.deps) {
        if (!this.byId.has(dep)) throw new Error(`Node "${node.id}" depends on unknown node "${dep}"`);
      }
    }
    this.order(nodes.map((n) => n.id)); // throws on a cycle
  }

  get ids(): string[] {
    return [...this.byId.keys()];
  }

  node(id: string): NodeSpec<C> {
    const node = this.byId.get(id);
    if (!node) throw new UserError(`Unknown node "${id}". Nodes: ${this.ids.join(", ")}.`, 2);
    return node;
  }

  /** The targets and everything they need, dependencies first. */
  order(targets: readonly string[]): string[] {
    const done = new Set<string>();
    const visiting = new Set<string>();
    const out: string[] = [];
    const visit = (id: string, path: string[]) => {
      if (done.has(id)) return;
      if (visiting.has(id)) throw new Error(`Dependency cycle: ${[...path, id].join(" → ")}`);
      visiting.add(id);
      for (const dep of this.node(id).deps) visit(dep, [...path, id]);
      visiting.delete(id);
      done.add(id);
      out.push(id);
    };
    for (const t of targets) visit(t, []);
    return out;
  }

  /** The final nodes: those no other node depends on. */
  sinks(): string[] {
    const used = new Set([...this.byId.values()].flatMap((n) => n.deps));
    return this.ids.filter((id) => !used.has(id));
  }

  mermaid(): string {
    const lines = ["flowchart LR"];
    for (const node of this.byId.values()) {
      lines.push(`  ${node.id}["${node.id}<br/><small>${node.description.replaceAll('"', "'")}</small>"]`);
      for (const dep of node.deps) lines.push(`  ${dep} --> ${node.id}`);
    }
    return lines.join("\n");
  }
}
