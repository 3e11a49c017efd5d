// A bounded trie of templates: request paths (segments) and DNS names (labels, TLD first).
// Memory stays bounded by three limits, and every observation recorded broader than its own
// template because of a limit is counted as folded:
// - a node with more than `maxSiblings` distinct children turns them into one '*' child (the
//   many ids or hostnames under one parent that the segment classifier did not recognise);
// - the nodes of all tries of a model share one budget (`NodeBudget`); once spent, a new
//   template is recorded as its longest known prefix plus '**' (a "deep" terminal);
// - depth is capped by the caller (paths: MAX_PATH_DEPTH).
import { WILDCARD } from './segment-classifier.js';

/** How often, when, and with what (HTTP methods) a template was seen. Times are epoch ms. */
export interface TemplateStats {
  count: number;
  first: number;
  last: number;
  /** e.g. the HTTP methods seen on a path; empty where the trie has none. */
  tags: Set<string>;
}

export class NodeBudget {
  used = 0;
  folded = 0;
  constructor(readonly limit: number) {}
}

export interface TrieLimits {
  /** More distinct children than this under one node collapse into '*'. */
  maxSiblings: number;
  /** Children of nodes shallower than this never collapse (TLD and registrable domain of a name). */
  minCollapseDepth: (parts: readonly string[]) => number;
}

class TrieNode {
  children: Map<string, TrieNode> | undefined;
  /** The template ends here. */
  terminal: TemplateStats | undefined;
  /** The template is this prefix followed by anything ('**'). */
  deep: TemplateStats | undefined;
  /** Children were collapsed into '*': new distinct children go there too. */
  collapsed = false;
}

export function mergeStats(into: TemplateStats | undefined, from: TemplateStats): TemplateStats {
  if (into === undefined) return { count: from.count, first: from.first, last: from.last, tags: new Set(from.tags) };
  into.count += from.count;
  if (from.first < into.first) into.first = from.first;
  if (from.last > into.last) into.last = from.last;
  for (const tag of from.tags) into.tags.add(tag);
  return into;
}

function countNodes(node: TrieNode): number {
  let n = 1;
  if (node.children !== undefined) for (const child of node.children.values()) n += countNodes(child);
  return n;
}

/** One entry of a trie's listing: the template's parts, whether it ends in '**', and its stats. */
export interface TemplateEntry {
  parts: string[];
  deep: boolean;
  stats: TemplateStats;
}

export class TemplateTrie {
  private readonly root = new TrieNode();

  constructor(
    private readonly budget: NodeBudget,
    private readonly limits: TrieLimits,
  ) {}

  /**
   * Records one observation of `parts` (already templated, e.g. ['api', 'users', '*']).
   * `deep` records `parts` followed by anything. Returns how the observation was recorded.
   */
  add(parts: readonly string[], stats: TemplateStats, deep = false): 'exact' | 'folded' {
    let node = this.root;
    const minDepth = this.limits.minCollapseDepth(parts);
    let folded = false;
    for (let depth = 0; depth < parts.length; depth++) {
      const part = parts[depth]!;
      let children = node.children;
      let child = children?.get(part);
      if (child === undefined && node.collapsed) {
        child = children?.get(WILDCARD);
        if (child !== undefined && part !== WILDCARD) folded = true;
      }
      if (child === undefined) {
        if (children !== undefined && children.size >= this.limits.maxSiblings && depth >= minDepth) {
          child = this.collapse(node);
          folded = true;
        } else if (this.budget.used >= this.budget.limit) {
          node.deep = mergeStats(node.deep, stats);
          this.budget.folded += stats.count;
          return 'folded';
        } else {
          child = new TrieNode();
          if (children === undefined) {
            children = new Map();
            node.children = children;
          }
          children.set(part, child);
          this.budget.used++;
        }
      }
      node = child;
    }
    if (deep) node.deep = mergeStats(node.deep, stats);
    else node.terminal = mergeStats(node.terminal, stats);
    if (folded) this.budget.folded += stats.count;
    return folded ? 'folded' : 'exact';
  }

  /** Replaces a node's children by one '*' child holding all of them; returns that child. */
  private collapse(node: TrieNode): TrieNode {
    const children = node.children!;
    let before = 0;
    for (const child of children.values()) before += countNodes(child);
    const merged = new TrieNode();
    for (const [key, child] of children) {
      this.mergeInto(merged, child);
      if (key !== WILDCARD && child.terminal !== undefined) this.budget.folded += child.terminal.count;
    }
    children.clear();
    children.set(WILDCARD, merged);
    node.collapsed = true;
    this.budget.used += countNodes(merged) - before;
    return merged;
  }

  private mergeInto(into: TrieNode, from: TrieNode): void {
    if (from.terminal !== undefined) into.terminal = mergeStats(into.terminal, from.terminal);
    if (from.deep !== undefined) into.deep = mergeStats(into.deep, from.deep);
    if (from.collapsed) into.collapsed = true;
    if (from.children === undefined) return;
    into.children ??= new Map();
    for (const [key, child] of from.children) {
      let target = into.children.get(key);
      if (target === undefined) {
        target = new TrieNode();
        into.children.set(key, target);
      }
      this.mergeInto(target, child);
    }
    // The merge may leave more siblings than allowed: collapse them too (depth is past the
    // minimum here, as merging only happens below a collapsed node).
    if (into.children.size > this.limits.maxSiblings && !into.collapsed) {
      const merged = new TrieNode();
      for (const child of into.children.values()) this.mergeInto(merged, child);
      into.children.clear();
      into.children.set(WILDCARD, merged);
      into.collapsed = true;
    }
  }

  /** Every template, in a deterministic order (parts compared one by one, '*' after words). */
  entries(): TemplateEntry[] {
    const out: TemplateEntry[] = [];
    const walk = (node: TrieNode, parts: string[]): void => {
      if (node.terminal !== undefined) out.push({ parts: [...parts], deep: false, stats: node.terminal });
      if (node.deep !== undefined) out.push({ parts: [...parts], deep: true, stats: node.deep });
      if (node.children === undefined) return;
      const keys = [...node.children.keys()].sort(comparePart);
      for (const key of keys) {
        parts.push(key);
        walk(node.children.get(key)!, parts);
        parts.pop();
      }
    };
    walk(this.root, []);
    return out;
  }

  get isEmpty(): boolean {
    return this.root.terminal === undefined && this.root.deep === undefined && this.root.children === undefined;
  }

  /** Nodes below the root. */
  get size(): number {
    return countNodes(this.root) - 1;
  }

  /** Gives this trie's nodes back to the budget (the trie is being dropped or merged away). */
  release(): void {
    this.budget.used -= this.size;
  }
}

function comparePart(a: string, b: string): number {
  if (a === b) return 0;
  if (a === WILDCARD) return 1;
  if (b === WILDCARD) return -1;
  return a < b ? -1 : 1;
}
