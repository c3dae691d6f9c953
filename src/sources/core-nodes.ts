/**
 * Core nodes (CoreNode, Server Management module): status, load and the age
 * of each node's latest metrics sample, for every expected node and every
 * node the database knows.
 */
import { KNOWN, MISSING_NODE_STATUS, UNKNOWN_LABEL } from '../catalog.js';
import type { Database } from '../db/client.js';
import { countInvalid, knownLabel, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { CoreNodeOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';

/** Options of the core-nodes source. */
export interface CoreNodesOptions {
  /** Hostnames that must exist; one without a row is reported MISSING. */
  expectedNodes: readonly string[];
  /** Rows read at most (large platforms have ~500 nodes). */
  maxNodes: number;
}

/** A CoreNode row as read. */
export interface CoreNodeRow {
  id: string;
  hostname: string;
  role: string | null;
  status: string | null;
  metrics: unknown;
  lastMetricsAt: Date | null;
}

/** One node as the exporter reports it. */
export interface CoreNodeView {
  /** Database id; null for an expected node without a row. */
  id: string | null;
  hostname: string;
  /** Raw role, null when NULL or missing. */
  role: string | null;
  /** Raw status; null when NULL; MISSING for an expected node without a row. */
  status: string | null;
  roleLabel: string;
  statusLabel: string;
  expected: boolean;
  /** Utilisation 0..1; undefined when unknown or invalid. */
  cpuRatio?: number;
  memoryRatio?: number;
  diskRatio?: number;
  lastMetricsAt?: Date;
}

/** What a core-nodes collection returns. */
export interface CoreNodesData extends SourceData {
  nodes: CoreNodeView[];
}

/**
 * Reads one percentage from a node's metrics JSON: a finite number in 0..100
 * becomes a 0..1 ratio; missing or null is unknown; anything else (a string,
 * NaN-like, out of range) is unknown and counted as invalid.
 */
export function parsePercent(metrics: unknown, key: string, invalid: InvalidCounts): number | undefined {
  if (metrics === null || metrics === undefined || typeof metrics !== 'object' || Array.isArray(metrics)) return undefined;
  const value = (metrics as Record<string, unknown>)[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    countInvalid(invalid, 'wrong_type');
    return undefined;
  }
  if (value < 0 || value > 100) {
    countInvalid(invalid, 'out_of_range');
    return undefined;
  }
  // toPrecision drops binary noise (24.6 / 100 = 0.24600000000000002).
  return Number((value / 100).toPrecision(12));
}

/** How far in the future a metrics timestamp may be (clock skew between hosts), ms. */
const CLOCK_SKEW_MS = 300_000;

/** Turns rows into node views: every expected node first (MISSING when absent), then the others. */
export function mapCoreNodes(rows: readonly CoreNodeRow[], options: Pick<CoreNodesOptions, 'expectedNodes'>, now: Date): CoreNodesData {
  const invalid: InvalidCounts = {};
  const byHost = new Map(rows.map((r) => [r.hostname, r]));
  const expected = new Set(options.expectedNodes);
  const view = (row: CoreNodeRow): CoreNodeView => {
    const metricsIsObject = row.metrics !== null && typeof row.metrics === 'object' && !Array.isArray(row.metrics);
    if (row.metrics !== null && !metricsIsObject) countInvalid(invalid, 'wrong_type');
    let lastMetricsAt = row.lastMetricsAt ?? undefined;
    // A sample "written" in the future (beyond clock skew) would make a stale
    // node look fresh: unknown. One before 1970 is served: it reads as stale.
    if (lastMetricsAt && lastMetricsAt.getTime() > now.getTime() + CLOCK_SKEW_MS) {
      countInvalid(invalid, 'bad_timestamp');
      lastMetricsAt = undefined;
    } else if (lastMetricsAt && lastMetricsAt.getTime() < 0) {
      countInvalid(invalid, 'bad_timestamp');
    }
    return {
      id: row.id,
      hostname: row.hostname,
      role: row.role,
      status: row.status,
      roleLabel: knownLabel(row.role, KNOWN.nodeRole, invalid),
      statusLabel: knownLabel(row.status, KNOWN.nodeStatus, invalid),
      expected: expected.has(row.hostname),
      cpuRatio: parsePercent(row.metrics, 'cpuPercent', invalid),
      memoryRatio: parsePercent(row.metrics, 'ramPercent', invalid),
      diskRatio: parsePercent(row.metrics, 'diskPercent', invalid),
      lastMetricsAt,
    };
  };
  const nodes: CoreNodeView[] = options.expectedNodes.map((hostname) => {
    const row = byHost.get(hostname);
    if (row) return view(row);
    return {
      id: null,
      hostname,
      role: null,
      status: MISSING_NODE_STATUS,
      roleLabel: UNKNOWN_LABEL,
      statusLabel: MISSING_NODE_STATUS,
      expected: true,
    };
  });
  for (const row of [...rows].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0))) {
    if (!expected.has(row.hostname)) nodes.push(view(row));
  }
  return { nodes, invalid };
}

/** Every state a node can be in, as the status state set lists them. */
export const NODE_STATES = [...KNOWN.nodeStatus, MISSING_NODE_STATUS, UNKNOWN_LABEL] as const;

/** Metric samples of the core nodes. */
export function coreNodeSamples(data: CoreNodesData): Sample[] {
  const s = new SampleSet();
  for (const n of data.nodes) {
    const node = { node: n.hostname };
    if (n.id !== null) s.add('coreNodeInfo', { node: n.hostname, role: n.roleLabel }, 1);
    s.add('coreNodeExpected', node, n.expected ? 1 : 0);
    for (const state of NODE_STATES) s.add('coreNodeStatus', { node: n.hostname, status: state }, state === n.statusLabel ? 1 : 0);
    if (n.cpuRatio !== undefined) s.add('coreNodeCpu', node, n.cpuRatio);
    if (n.memoryRatio !== undefined) s.add('coreNodeMemory', node, n.memoryRatio);
    if (n.diskRatio !== undefined) s.add('coreNodeDisk', node, n.diskRatio);
    if (n.lastMetricsAt !== undefined) s.add('coreNodeMetricsTimestamp', node, toSeconds(n.lastMetricsAt));
  }
  return s.list();
}

function percent(ratio: number | undefined): number | null {
  // Ratios came from percentages / 100: round back to avoid 57.99999.
  return ratio === undefined ? null : Math.round(ratio * 100 * 1e9) / 1e9;
}

/** The core nodes' section of the JSON overview (pure). */
export function coreNodesOverview(data: CoreNodesData): CoreNodeOverview[] {
  return data.nodes.map((n) => {
    const o: CoreNodeOverview = {
      id: n.id ?? '',
      label: n.hostname,
      role: n.role ?? UNKNOWN_LABEL,
      status: n.status ?? UNKNOWN_LABEL,
      cpuPercent: percent(n.cpuRatio),
      ramPercent: percent(n.memoryRatio),
      diskPercent: percent(n.diskRatio),
      expected: n.expected,
    };
    if (n.lastMetricsAt) o.lastMetricsAt = n.lastMetricsAt.toISOString();
    return o;
  });
}

/** The core-nodes source. */
export function coreNodesSource(db: Database, options: CoreNodesOptions): Source<CoreNodesData, 'coreNodes'> {
  return {
    name: 'core_nodes',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<CoreNodesData> {
      // Bounded by the number of nodes (hundreds), not by history.
      const rows = await db.read(ctx.timeoutMs, (tx) =>
        tx.coreNode.findMany({
          select: { id: true, hostname: true, role: true, status: true, metrics: true, lastMetricsAt: true },
          orderBy: { hostname: 'asc' },
          take: options.maxNodes,
        }),
      );
      return mapCoreNodes(rows, options, ctx.now);
    },
    samples: coreNodeSamples,
    section: { name: 'coreNodes', overview: coreNodesOverview },
  };
}
