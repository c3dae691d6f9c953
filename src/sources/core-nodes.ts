/**
 * Core nodes (CoreNode, Server Management module): status, load and the age
 * of each node's latest metrics sample, for every expected node and every
 * node that is not ONLINE, plus the count of all nodes by status.
 *
 * Hostile rows are bounded in SQL: the `metrics` document never leaves the
 * database (only the type and value of its three keys do), hostnames and
 * raw values are cut, impossible times are dropped there, and the nodes
 * reported one by one are bounded by priority (expected, OFFLINE, any other
 * state but ONLINE, then ONLINE) so what pages is never the part cut off.
 */
import { KNOWN, MISSING_NODE_STATUS, UNKNOWN_LABEL } from '../catalog.js';
import type { Database } from '../db/client.js';
import { isOneOf, readEnumLabels } from '../db/enum-labels.js';
import { raw, type Sql } from '../db/sql.js';
import { countInvalid, knownLabel, SampleSet, toSeconds, type InvalidCounts, type Sample } from '../metrics/sample.js';
import type { CoreNodeOverview } from '../contract.js';
import type { CollectContext, Source, SourceData } from './types.js';
import { isValidInstant, isValidTime } from './valid-time.js';

/** Options of the core-nodes source. */
export interface CoreNodesOptions {
  /** Hostnames that must exist; one without a row is reported MISSING. */
  expectedNodes: readonly string[];
  /**
   * Nodes reported one by one at most (capped at MAX_REPORTED_NODES). Past
   * it, only ONLINE nodes that are not expected are left out; they still
   * count in `ops_core_nodes`.
   */
  maxNodes: number;
}

/**
 * Hard ceiling on the nodes reported one by one: each has up to
 * SERIES_PER_NODE series, so 500 nodes (6,000 series) stay well under the
 * runner's per-source series cap (20,000), and the exporter's memory low.
 * Large platforms run ~500 nodes; what pages is always kept first.
 */
export const MAX_REPORTED_NODES = 500;
/** Series one node can have: info, expected, six status states, three ratios, the metrics timestamp. */
export const SERIES_PER_NODE = 12;
/**
 * Longest hostname used as a label, characters; a longer one is cut in SQL
 * the way the runner cuts any label value (190 characters, "…", 8 hex digits
 * of its SHA-256), so it stays distinct and its full text is never read.
 */
const MAX_HOSTNAME_LENGTH = 200;
const HOSTNAME_KEPT = 190;
/** Characters of id, role and status read (they are shown, never used as labels beyond the known values). */
const MAX_TEXT_LENGTH = 200;

/** A JSON value's type as `jsonb_typeof` names it; null when the key is missing. */
export type JsonType = 'object' | 'array' | 'string' | 'number' | 'boolean' | 'null';

/** A CoreNode row as the SQL returns it: small values only. */
export interface CoreNodeRow {
  /** Cut to 200 characters. */
  id: string;
  /** The hostname, cut as described at MAX_HOSTNAME_LENGTH when longer. */
  hostname: string;
  hostnameCut: boolean;
  /** Raw role and status, cut to 200 characters. */
  role: string | null;
  status: string | null;
  /** Type of the `metrics` document; null when the column is NULL. */
  metricsType: JsonType | null;
  /** Type of each percentage key, and its value when it is a number a double can hold. */
  cpuType: JsonType | null;
  cpuValue: number | null;
  ramType: JsonType | null;
  ramValue: number | null;
  diskType: JsonType | null;
  diskValue: number | null;
  /** lastMetricsAt when valid (valid-time.ts); null when NULL or invalid. */
  lastMetricsAt: Date | null;
  /** lastMetricsAt was set but invalid (infinite, before 1970, beyond the clock-skew allowance). */
  badLastMetricsAt: boolean;
}

/** Nodes counted by status, as the SQL groups them: a known status, or null for NULL and any other value. */
export interface CoreNodeStatusCount {
  status: string | null;
  nodes: number;
}

/** What one collection reads. */
export interface CoreNodesRead {
  /** The nodes reported one by one, at most the bound, by priority. */
  rows: CoreNodeRow[];
  /** Every CoreNode row, by status. */
  counts: CoreNodeStatusCount[];
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
  /** Expected nodes (config order), then the other nodes read, by hostname. */
  nodes: CoreNodeView[];
  /**
   * Every CoreNode row by status label (NODE_COUNT_STATES, each present),
   * including rows left out of `nodes`: the sums are exact beyond the bound.
   */
  statusCounts: Record<string, number>;
  /** Rows not reported one by one: healthy nodes beyond the bound, and rows with an empty hostname. */
  omitted: number;
}

/** The status labels of `ops_core_nodes`. */
export const NODE_COUNT_STATES = [...KNOWN.nodeStatus, UNKNOWN_LABEL] as const;

/** jsonb_typeof of a JavaScript JSON value; null for a missing key (pure). */
export function jsonTypeOf(value: unknown): JsonType | null {
  if (value === undefined) return null;
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  const t = typeof value;
  if (t === 'number' || t === 'string' || t === 'boolean' || t === 'object') return t;
  return null;
}

/**
 * One percentage from the type and value SQL read for it: a number in
 * 0..100 becomes a 0..1 ratio; a missing key or JSON null is unknown; any
 * other type, or a number no double can hold (1e400), is unknown and counted
 * as wrong_type; a number out of 0..100 as out_of_range.
 */
export function percentFrom(type: JsonType | null, value: number | null, invalid: InvalidCounts): number | undefined {
  if (type === null || type === 'null') return undefined;
  if (type !== 'number' || value === null || !Number.isFinite(value)) {
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

/**
 * The same rule on a metrics document already in JavaScript (the reference
 * the SQL extraction follows): a non-object document has no percentages.
 */
export function parsePercent(metrics: unknown, key: string, invalid: InvalidCounts): number | undefined {
  if (jsonTypeOf(metrics) !== 'object') return undefined;
  const value = (metrics as Record<string, unknown>)[key];
  return percentFrom(jsonTypeOf(value), typeof value === 'number' ? value : null, invalid);
}

/** Turns what was read into node views and counts (pure). */
export function mapCoreNodes(read: CoreNodesRead, options: Pick<CoreNodesOptions, 'expectedNodes'>, now: Date): CoreNodesData {
  const invalid: InvalidCounts = {};
  const expected = new Set(options.expectedNodes);
  const rows: CoreNodeRow[] = [];
  for (const row of read.rows) {
    // Prometheus reads an empty label value as no label: a row without a
    // hostname (empty, or NULL where a platform allows it; SQL reads NULL as
    // empty) has no name to report under, and stays counted in ops_core_nodes.
    if (row.hostname === '') countInvalid(invalid, 'null_value');
    else rows.push(row);
  }
  const byHost = new Map(rows.map((r) => [r.hostname, r]));
  const view = (row: CoreNodeRow): CoreNodeView => {
    if (row.hostnameCut) countInvalid(invalid, 'label_overflow');
    if (row.metricsType !== null && row.metricsType !== 'null' && row.metricsType !== 'object') countInvalid(invalid, 'wrong_type');
    const isObject = row.metricsType === 'object';
    let lastMetricsAt = row.lastMetricsAt ?? undefined;
    if (row.badLastMetricsAt || (lastMetricsAt && !isValidInstant(lastMetricsAt, now))) {
      countInvalid(invalid, 'bad_timestamp');
      lastMetricsAt = undefined;
    }
    return {
      id: row.id,
      hostname: row.hostname,
      role: row.role,
      status: row.status,
      roleLabel: knownLabel(row.role, KNOWN.nodeRole, invalid),
      statusLabel: knownLabel(row.status, KNOWN.nodeStatus, invalid),
      expected: expected.has(row.hostname),
      cpuRatio: isObject ? percentFrom(row.cpuType, row.cpuValue, invalid) : undefined,
      memoryRatio: isObject ? percentFrom(row.ramType, row.ramValue, invalid) : undefined,
      diskRatio: isObject ? percentFrom(row.diskType, row.diskValue, invalid) : undefined,
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
  const statusCounts: Record<string, number> = Object.fromEntries(NODE_COUNT_STATES.map((s) => [s, 0]));
  let total = 0;
  for (const c of read.counts) {
    const label = c.status !== null && (KNOWN.nodeStatus as readonly string[]).includes(c.status) ? c.status : UNKNOWN_LABEL;
    statusCounts[label] = (statusCounts[label] ?? 0) + c.nodes;
    total += c.nodes;
  }
  // Left out by the bound (never an expected node nor one that is not
  // ONLINE while the bound has room for them): counted, and still in
  // statusCounts.
  const beyondBound = Math.max(0, total - read.rows.length);
  if (beyondBound > 0) countInvalid(invalid, 'label_overflow', beyondBound);
  return { nodes, statusCounts, omitted: beyondBound + (read.rows.length - rows.length), invalid };
}

/** Every state a node can be in, as the status state set lists them. */
export const NODE_STATES = [...KNOWN.nodeStatus, MISSING_NODE_STATUS, UNKNOWN_LABEL] as const;

/** Metric samples of the core nodes. */
export function coreNodeSamples(data: CoreNodesData): Sample[] {
  const s = new SampleSet();
  for (const status of NODE_COUNT_STATES) s.add('coreNodes', { status }, data.statusCounts[status] ?? 0);
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

/**
 * The type of one key of the document `m`, and its value as a double: NULL
 * when it is not a number or no double can hold it (beyond ±1.797…e308,
 * where JSON.parse gives Infinity); 0 when it rounds to zero as a double
 * (PostgreSQL refuses such a cast, JSON.parse gives 0).
 */
function percentColumns(key: 'cpuPercent' | 'ramPercent' | 'diskPercent', prefix: 'cpu' | 'ram' | 'disk'): Sql {
  const v = `(r.m -> '${key}')`;
  return raw(`jsonb_typeof(${v}) AS "${prefix}Type",
         CASE WHEN jsonb_typeof(${v}) <> 'number' THEN NULL
              WHEN abs(${v}::numeric) >= 1.7976931348623158079e308 THEN NULL
              WHEN abs(${v}::numeric) <= 2.4703282292062328e-324 THEN 0::float8
              ELSE ${v}::numeric::float8 END AS "${prefix}Value"`);
}

/** Reads the bounded node list and the counts, in one snapshot. */
export async function readCoreNodes(db: Database, ctx: CollectContext, options: CoreNodesOptions): Promise<CoreNodesRead> {
  const limit = Math.max(0, Math.min(options.maxNodes, MAX_REPORTED_NODES));
  const expected = [...options.expectedNodes];
  return db.read(ctx.timeoutMs, async (tx) => {
    const labels = await readEnumLabels(tx, ['CoreNode.status']);
    const offline = isOneOf(labels, 'CoreNode.status', ['OFFLINE'], 'n');
    const online = isOneOf(labels, 'CoreNode.status', ['ONLINE'], 'n');
    // Which nodes are reported one by one: a sort of the id, hostname and
    // status of every row (hundreds on large platforms), never the
    // documents. The healthy remainder is what the limit cuts.
    // The chosen rows' `metrics` are detoasted once (`#> '{}'` returns the
    // whole document; OFFSET 0 keeps it a value the outer keys reuse): a
    // 40 MiB document costs one decompression in the server, and only the
    // types and numbers of its three keys are sent.
    const rows = await tx.query<CoreNodeRow[]>`
      SELECT left(r."id", ${MAX_TEXT_LENGTH}::int) AS "id",
             CASE WHEN length(r."hostname") <= ${MAX_HOSTNAME_LENGTH}::int THEN r."hostname"
                  ELSE left(r."hostname", ${HOSTNAME_KEPT}::int) || '…' || left(encode(sha256(convert_to(r."hostname", 'UTF8')), 'hex'), 8)
             END AS "hostname",
             length(r."hostname") > ${MAX_HOSTNAME_LENGTH}::int AS "hostnameCut",
             left(r."role"::text, ${MAX_TEXT_LENGTH}::int) AS "role",
             left(r."status"::text, ${MAX_TEXT_LENGTH}::int) AS "status",
             jsonb_typeof(r.m) AS "metricsType",
             ${percentColumns('cpuPercent', 'cpu')},
             ${percentColumns('ramPercent', 'ram')},
             ${percentColumns('diskPercent', 'disk')},
             CASE WHEN ${isValidTime(raw('r.at'), ctx.now)} THEN r.at END AS "lastMetricsAt",
             (r.at IS NOT NULL AND NOT ${isValidTime(raw('r.at'), ctx.now)}) AS "badLastMetricsAt"
        FROM (SELECT n."id", COALESCE(n."hostname", '') AS "hostname", n."role", n."status", n."lastMetricsAt" AS at, n."metrics"::jsonb #> '{}' AS m
                FROM (SELECT n."id"
                        FROM "CoreNode" n
                       ORDER BY CASE WHEN n."hostname" = ANY(${expected}::text[]) THEN 0
                                     WHEN ${offline} THEN 1
                                     WHEN ${online} THEN 3
                                     ELSE 2 END,
                                n."hostname"
                       LIMIT ${limit}::int) picked
                JOIN "CoreNode" n ON n."id" = picked."id"
              OFFSET 0) r`;
    const known = isOneOf(labels, 'CoreNode.status', KNOWN.nodeStatus);
    const counts = await tx.query<CoreNodeStatusCount[]>`
      SELECT CASE WHEN ${known} THEN "status"::text END AS "status", count(*)::int AS "nodes"
        FROM "CoreNode"
       GROUP BY 1`;
    return { rows, counts };
  });
}

/** The core-nodes source. */
export function coreNodesSource(db: Database, options: CoreNodesOptions): Source<CoreNodesData, 'coreNodes'> {
  return {
    name: 'core_nodes',
    backend: 'database',
    async collect(ctx: CollectContext): Promise<CoreNodesData> {
      return mapCoreNodes(await readCoreNodes(db, ctx, options), options, ctx.now);
    },
    samples: coreNodeSamples,
    section: { name: 'coreNodes', overview: coreNodesOverview },
  };
}
