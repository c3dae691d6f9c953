/**
 * The Grafana schema types (from the foundation SDK, generated from Grafana's
 * own schemas) that the dashboard tests validate the generated JSON against.
 * Only read by the TypeScript compiler in test/helpers/monitoring-schema.ts.
 */
import type * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import type * as heatmap from '@grafana/grafana-foundation-sdk/heatmap';
import type * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import type * as stat from '@grafana/grafana-foundation-sdk/stat';
import type * as table from '@grafana/grafana-foundation-sdk/table';
import type * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

/** Each schema the tests look up by name. */
export interface MonitoringSchemaTypes {
  dashboard: dashboard.Dashboard;
  prometheusQuery: prometheus.Dataquery;
  statOptions: stat.Options;
  tableOptions: table.Options;
  tableFieldConfig: table.FieldConfig;
  timeseriesOptions: timeseries.Options;
  timeseriesFieldConfig: timeseries.FieldConfig;
  bargaugeOptions: bargauge.Options;
  heatmapOptions: heatmap.Options;
  heatmapFieldConfig: heatmap.FieldConfig;
  thresholds: dashboard.ThresholdsConfig;
  mappings: dashboard.ValueMapping[];
  color: dashboard.FieldColor;
  unit: string;
  decimals: number;
}
