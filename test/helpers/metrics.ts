/**
 * Assertions on parsed /metrics samples, for tests that scrape once and look
 * up many series: prom-text.ts's parser and lookups under these names.
 */
export { parseSamples as parseMetrics, series, valueOf as value, type ParsedSample } from './prom-text.js';
