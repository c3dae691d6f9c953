/**
 * Small helpers over the Grafana foundation SDK so that every panel of the
 * bundle gets the same datasource, a description, a unit and explicit ids.
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  DatasourceVariableBuilder,
  MappingType,
  QueryVariableBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableHide,
  VariableRefresh,
  VariableSort,
  type Dashboard,
  type DataTransformerConfig,
  type DynamicConfigValue,
  type ValueMapping,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import { config } from '../config.js';
import { exporterUp, withMatcher } from '../promql.js';
import { RECORDED } from '../rules.js';
import { DASHBOARD_UIDS } from './ids.js';

/** Every query and panel reads the `datasource` variable. */
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** The `datasource` variable, defaulting to the provisioned Prometheus (pinned uid). */
export function datasourceVariable(): DatasourceVariableBuilder {
  return new DatasourceVariableBuilder('datasource')
    .label('Data source')
    .description('Prometheus that scrapes the ops-overview exporter.')
    .type('prometheus')
    .current({ selected: true, text: config.grafana.prometheusDatasourceUid, value: config.grafana.prometheusDatasourceUid });
}

/** Name of the dashboards' platform variable (`$platform`), whatever the platform label is called. */
export const PLATFORM_VARIABLE = 'platform';

/** The matcher every dashboard query carries: the selected platforms ("All" is `.*`, which also matches no label). */
export function platformMatcher(): string {
  return `${config.platformLabel}=~"$${PLATFORM_VARIABLE}"`;
}

/**
 * Series without a platform label by design (the configured backup age
 * limits, the same for every platform): filtering them on a platform would
 * hide them.
 */
export const PLATFORM_NEUTRAL: readonly string[] = [RECORDED.backupAgeLimit];

/** `expr` with the platform matcher on every selector but the platform-neutral ones. */
export function forPlatforms(expr: string): string {
  return withMatcher(expr, platformMatcher(), PLATFORM_NEUTRAL);
}

/**
 * The platform variable, like kubernetes-mixin's cluster variable: the
 * platforms Prometheus scrapes the exporter for. With `multiPlatform` a
 * multi-value selector with "All"; without, hidden and set to "All", so one
 * platform (with or without the label) looks as it always did.
 */
export function platformVariable(): QueryVariableBuilder {
  const query = `label_values(${exporterUp()}, ${config.platformLabel})`;
  return new QueryVariableBuilder(PLATFORM_VARIABLE)
    .label('Platform')
    .description(`Platforms (the \`${config.platformLabel}\` label Prometheus puts on the exporter's series) shown by every panel.`)
    .datasource(DATASOURCE)
    .query({ qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(config.multiPlatform)
    .includeAll(true)
    .allValue('.*')
    .hide(config.multiPlatform ? VariableHide.DontHide : VariableHide.HideVariable)
    .current({ selected: true, text: 'All', value: '$__all' });
}

/** A legend with the platform in front when several platforms can be shown at once. */
export function legend(format: string): string {
  return config.multiPlatform ? `{{${config.platformLabel}}} ${format}` : format;
}

/** A multi-value query variable over one label of a metric (of the selected platforms), with "All". */
export function labelVariable(name: string, label: string, metric: string, description: string): QueryVariableBuilder {
  const query = `label_values(${forPlatforms(metric)}, ${name})`;
  return new QueryVariableBuilder(name)
    .label(label)
    .description(description)
    .datasource(DATASOURCE)
    .query({ qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ selected: true, text: 'All', value: '$__all' });
}

/** Options of one query. */
export interface QueryOptions {
  legend?: string;
  /** Instant table query (tables, "now" stats) rather than a range. */
  table?: boolean;
  instant?: boolean;
}

/** A Prometheus query with refId, datasource and legend, filtered on the selected platforms. */
export function query(refId: string, expr: string, opts: QueryOptions = {}): DataqueryBuilder {
  const q = new DataqueryBuilder().refId(refId).datasource(DATASOURCE).expr(forPlatforms(expr));
  if (opts.legend !== undefined) q.legendFormat(opts.legend);
  if (opts.table) q.format(PromQueryFormat.Table).instant();
  else if (opts.instant) q.instant();
  else q.range();
  return q;
}

/** Threshold steps, first one the base (`null`): `steps('green', [0.85, 'orange'], [0.95, 'red'])`. */
export function thresholds(base: string, ...steps: [number, string][]): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder()
    .mode(ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps.map(([value, color]) => ({ value, color }))]);
}

/** The same, as a field override property. */
export function thresholdsOverride(base: string, ...steps: [number, string][]): DynamicConfigValue {
  return { id: 'thresholds', value: thresholds(base, ...steps).build() };
}

/** A fixed colour (text colour for numbers that are context, not health). */
export function fixedColor(color = 'text'): DynamicConfigValue {
  return { id: 'color', value: { mode: 'fixed', fixedColor: color } };
}

/** Unit as a field override property. */
export function unitOverride(unit: string): DynamicConfigValue {
  return { id: 'unit', value: unit };
}

/** Maps exact values (numbers or strings) to texts and colours. */
export function valueMappings(map: Record<string, { text?: string; color: string }>): ValueMapping[] {
  return [
    {
      type: MappingType.ValueToText,
      options: Object.fromEntries(Object.entries(map).map(([k, v], index) => [k, { ...v, index }])),
    },
  ];
}

/** A link from a panel to a URL, keeping the time range and variables when it stays in Grafana. */
export function link(title: string, url: string, internal = true): DashboardLinkBuilder {
  return new DashboardLinkBuilder(title)
    .type(DashboardLinkType.Link)
    .url(url)
    .tooltip(title)
    .icon('external link')
    .keepTime(internal)
    .includeVars(internal)
    .targetBlank(!internal);
}

/** Joins instant table queries on their common labels and renames/hides columns. */
export function mergeAndOrganize(
  rename: Record<string, string>,
  hide: string[],
  order: string[],
): DataTransformerConfig[] {
  return [
    { id: 'merge', options: {} },
    {
      id: 'organize',
      options: {
        excludeByName: Object.fromEntries(hide.map((h) => [h, true])),
        renameByName: rename,
        indexByName: Object.fromEntries(order.map((name, i) => [name, i])),
      },
    },
  ];
}

/** Reduce to the last non-null value, the right reduction for "now" stats. */
export function lastValue(): common.ReduceDataOptionsBuilder {
  return new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false);
}

/** Legend shown as a table on the right with last and max, for time series with many series. */
export function tableLegend(): common.VizLegendOptionsBuilder {
  return new common.VizLegendOptionsBuilder()
    .displayMode(common.LegendDisplayMode.Table)
    .placement(common.LegendPlacement.Right)
    .showLegend(true)
    .calcs(['lastNotNull', 'max']);
}

/** Threshold lines drawn on time series. */
export function dashedThresholds(): common.GraphThresholdsStyleConfigBuilder {
  return new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed);
}

/**
 * Removes the `placement: inControlsMenu` the SDK's link builder sets by
 * default: it would tuck dashboard links into the controls menu and means
 * nothing on panel links.
 */
export function withoutLinkPlacement(dashboard: Dashboard): Dashboard {
  const strip = (links: { placement?: unknown }[] | undefined): void => {
    for (const l of links ?? []) delete l.placement;
  };
  strip(dashboard.links);
  for (const p of dashboard.panels ?? []) {
    if (p.type !== 'row') strip((p as { links?: { placement?: unknown }[] }).links);
  }
  return dashboard;
}

/**
 * A dashboard of the bundle: its uid, tags, time settings, shared crosshair
 * and the datasource and platform variables every dashboard has.
 */
export function bundleDashboard(title: string, uid: keyof typeof DASHBOARD_UIDS, description: string): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(DASHBOARD_UIDS[uid])
    .description(description)
    .tags(['ops-overview'])
    .editable()
    .timezone('browser')
    .time({ from: 'now-6h', to: 'now' })
    .refresh(config.grafana.refresh)
    .tooltip(DashboardCursorSync.Crosshair)
    .withVariable(datasourceVariable())
    .withVariable(platformVariable());
}
