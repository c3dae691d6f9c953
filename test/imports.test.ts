/**
 * Imports run one way: no file of src/ imports itself back through others,
 * and collector/, metrics/ and sources/ depend on each other in one
 * direction only (the collector runs sources and bounds their samples; the
 * sources produce samples; the metrics read the snapshot), with the neutral
 * snapshot, catalog and contract modules below them. monitoring/ (the bundle
 * generator) never imports the demo.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : tsFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** Every relative import (type-only ones too: they are dependencies of the design) of every file, resolved to files. */
function importGraph(dirs: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of dirs.flatMap(tsFiles)) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    const targets = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'|import\('(\.[^']+)'\)/gm)]
      .map((m) => m[1] ?? m[2] ?? m[3]!)
      .map((spec) => path.normalize(path.join(path.dirname(file), spec.replace(/\.js$/, '.ts'))));
    graph.set(file, targets);
  }
  return graph;
}

/** The cycles of a graph, as node lists (Tarjan's strongly connected components of more than one node, or a self-loop). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** The directory of a file under src/ (`src/metrics/x.ts` → `metrics`; a top-level file is its own module). */
function area(file: string): string {
  const parts = file.split(path.sep);
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.ts$/, '');
}

describe('import direction', () => {
  const graph = importGraph(['src']);

  it('src/ has no import cycle between files', () => {
    expect(graph.size).toBeGreaterThan(30);
    expect(cycles(graph)).toEqual([]);
  });

  it('collector/, metrics/ and sources/ depend on each other one way, also through the modules between them', () => {
    // Area graph, with every file's transitive dependencies: an edge A → B
    // when a file of A reaches a file of B through any chain of imports.
    const reach = (start: string): Set<string> => {
      const seen = new Set<string>();
      const todo = [...(graph.get(start) ?? [])];
      while (todo.length > 0) {
        const f = todo.pop()!;
        if (seen.has(f)) continue;
        seen.add(f);
        todo.push(...(graph.get(f) ?? []));
      }
      return seen;
    };
    const areas = ['collector', 'metrics', 'sources'];
    const edges = new Map<string, string[]>(areas.map((a) => [a, []]));
    for (const file of graph.keys()) {
      const from = area(file);
      if (!areas.includes(from)) continue;
      for (const dep of reach(file)) {
        const to = area(dep);
        if (to !== from && areas.includes(to) && !edges.get(from)!.includes(to)) edges.get(from)!.push(to);
      }
    }
    expect(cycles(edges)).toEqual([]);
    expect(edges.get('collector')!.sort()).toEqual(['metrics', 'sources']);
    expect(edges.get('metrics')).toEqual([]);
  });

  it('the cycle check finds a cycle when there is one', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['d']],
      ['e', ['a']],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c'], ['d']]);
  });

  it("the exporter (src/main.ts and all it imports) never loads Prisma Client: its query compiler's memory is what issue 11's bound left out", () => {
    // Walk the relative imports from the entry point, type-only ones left
    // out (they are erased), and collect the packages it imports.
    const seen = new Set<string>();
    const packages = new Set<string>();
    const todo = [path.join('src', 'main.ts')];
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const text = readFileSync(path.join(ROOT, file), 'utf8');
      for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'|import\('([^']+)'\)/gm)) {
        const spec = m[1] ?? m[2] ?? m[3]!;
        if (spec.startsWith('.')) todo.push(path.normalize(path.join(path.dirname(file), spec.replace(/\.js$/, '.ts'))));
        else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    expect(seen.size).toBeGreaterThan(30);
    expect(seen).toContain(path.join('src', 'db', 'client.ts'));
    expect(packages).toContain('pg');
    expect([...seen].filter((f) => f.includes(`${path.sep}generated${path.sep}`))).toEqual([]);
    expect([...packages].filter((p) => p.startsWith('@prisma/') || p === 'prisma')).toEqual([]);
  });

  it('monitoring/ does not import the demo', () => {
    const monitoring = importGraph(['monitoring']);
    const demo = [...monitoring.entries()].filter(([, deps]) => deps.some((d) => d.startsWith(path.join('src', 'demo'))));
    expect(demo.map(([file]) => file)).toEqual([]);
  });
});
