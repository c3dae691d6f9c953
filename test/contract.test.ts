/**
 * The one contract definition (src/contract.ts, TypeBox) against the
 * reference, ../shared/overview-api.md (carried as docs/contract/overview-api.md): every field the reference names is in
 * the schema with its type and optionality, every field the schema adds is
 * optional, and the only departures are the documented ones.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OpsOverviewSummarySchema } from '../src/contract.js';

/** A field type of the reference's TypeScript subset. */
type RefType = { kind: 'string' | 'number' | 'boolean' } | { kind: 'object'; fields: RefField[] } | { kind: 'array'; items: RefType };
interface RefField {
  name: string;
  optional: boolean;
  type: RefType;
}

/** The reference as the project carries it, and where the platform keeps it (beside a checkout). */
const REFERENCE = path.join(import.meta.dirname, '..', 'docs', 'contract', 'overview-api.md');
const SHARED = path.join(import.meta.dirname, '..', '..', 'shared', 'overview-api.md');

/** Parses the interfaces of the reference's ```ts block (fields, inline objects, `X[]`, `Array<…>`). */
function parseReference(markdown: string): Map<string, RefField[]> {
  const code = /```ts\n([\s\S]*?)```/.exec(markdown)?.[1];
  if (!code) throw new Error('no ts block in overview-api.md');
  const src = code.replace(/\/\/[^\n]*/g, '');
  const interfaces = new Map<string, string>();
  for (const m of src.matchAll(/export interface (\w+) \{/g)) {
    const open = m.index! + m[0].length - 1;
    interfaces.set(m[1]!, src.slice(open + 1, matching(src, open)));
  }
  const resolved = new Map<string, RefField[]>();
  const typeOf = (text: string): RefType => {
    const t = text.trim();
    if (t === 'string' || t === 'number' || t === 'boolean') return { kind: t };
    if (t.endsWith('[]')) return { kind: 'array', items: typeOf(t.slice(0, -2)) };
    if (t.startsWith('Array<') && t.endsWith('>')) return { kind: 'array', items: typeOf(t.slice(6, -1)) };
    if (t.startsWith('{')) return { kind: 'object', fields: fieldsOf(t.slice(1, matching(t, 0))) };
    const body = interfaces.get(t);
    if (body === undefined) throw new Error(`unknown type ${t}`);
    return { kind: 'object', fields: fieldsOf(body) };
  };
  const fieldsOf = (body: string): RefField[] => {
    const fields: RefField[] = [];
    let i = 0;
    while (i < body.length) {
      const m = /^\s*(\w+)(\??):\s*/.exec(body.slice(i));
      if (!m) break;
      i += m[0].length;
      // The type runs to the next ';' outside braces and angle brackets.
      let depth = 0;
      let j = i;
      for (; j < body.length; j++) {
        const c = body[j];
        if (c === '{' || c === '<') depth++;
        else if (c === '}' || c === '>') depth--;
        else if ((c === ';' || c === '\n') && depth === 0) break;
      }
      fields.push({ name: m[1]!, optional: m[2] === '?', type: typeOf(body.slice(i, j)) });
      i = j + 1;
    }
    return fields;
  };
  for (const [name, body] of interfaces) resolved.set(name, fieldsOf(body));
  return resolved;
}

function matching(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  throw new Error('unbalanced braces');
}

interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: boolean;
}

/** The departures src/contract.ts documents, by field path. */
const DEPARTURES: Record<string, 'optional' | 'nullable'> = {
  coreNodes: 'optional',
  queues: 'optional',
  provisioning: 'optional',
  security: 'optional',
  backups: 'optional',
  'security.shieldEventsLast24h': 'optional',
  'coreNodes[].cpuPercent': 'nullable',
  'coreNodes[].ramPercent': 'nullable',
  'coreNodes[].diskPercent': 'nullable',
};

/** Differences between a reference type and a schema, as readable lines. */
function compare(ref: RefType, schema: JsonSchema, at: string, out: string[]): void {
  let s = schema;
  if (DEPARTURES[at] === 'nullable') {
    const types = (schema.anyOf ?? []).map((a) => a.type);
    if (!types.includes('null')) out.push(`${at}: documented as nullable but is not`);
    s = schema.anyOf?.find((a) => a.type !== 'null') ?? schema;
  }
  if (ref.kind === 'string' || ref.kind === 'boolean') {
    if (s.type !== ref.kind) out.push(`${at}: ${ref.kind} in the reference, ${JSON.stringify(s.type ?? s.anyOf)} in the schema`);
  } else if (ref.kind === 'number') {
    // Counts are integers: a subset of the reference's number.
    if (s.type !== 'number' && s.type !== 'integer') out.push(`${at}: number in the reference, ${JSON.stringify(s.type ?? s.anyOf)} in the schema`);
  } else if (ref.kind === 'array') {
    if (s.type !== 'array' || !s.items) out.push(`${at}: array in the reference, not in the schema`);
    else compare(ref.items, s.items, `${at}[]`, out);
  } else if (ref.kind === 'object') {
    if (s.type !== 'object' || !s.properties) {
      out.push(`${at}: object in the reference, not in the schema`);
      return;
    }
    if (s.additionalProperties !== false) out.push(`${at}: the schema lets undeclared fields through`);
    const required = new Set(s.required ?? []);
    const prefix = at === '' ? '' : `${at}.`;
    for (const f of ref.fields) {
      const fieldAt = `${prefix}${f.name}`;
      const sub = s.properties[f.name];
      if (!sub) {
        out.push(`${fieldAt}: missing from the schema`);
        continue;
      }
      const optional = !required.has(f.name);
      if (optional !== f.optional && !(DEPARTURES[fieldAt] === 'optional' && optional)) {
        out.push(`${fieldAt}: ${f.optional ? 'optional' : 'required'} in the reference, ${optional ? 'optional' : 'required'} in the schema`);
      }
      compare(f.type, sub, fieldAt, out);
    }
    for (const name of Object.keys(s.properties)) {
      if (!ref.fields.some((f) => f.name === name) && required.has(name)) out.push(`${prefix}${name}: an addition, yet required`);
    }
  }
}

describe('the overview contract', () => {
  const reference = parseReference(readFileSync(REFERENCE, 'utf8'));

  it.skipIf(!existsSync(SHARED))('the project\'s copy is the platform\'s reference, word for word', () => {
    expect(readFileSync(REFERENCE, 'utf8')).toBe(readFileSync(SHARED, 'utf8'));
  });

  it('reads every interface of the reference', () => {
    expect([...reference.keys()]).toEqual([
      'OpsOverviewSummary',
      'CoreNodeOverview',
      'QueueOverview',
      'ProvisioningOverview',
      'SecurityOverview',
      'BackupOverview',
    ]);
    expect(reference.get('ProvisioningOverview')!.map((f) => f.name)).toEqual(['failedLast24h', 'stuckLast24h', 'recentFailures']);
  });

  it('src/contract.ts agrees with overview-api.md field by field, apart from the documented departures', () => {
    const out: string[] = [];
    compare({ kind: 'object', fields: reference.get('OpsOverviewSummary')! }, OpsOverviewSummarySchema as unknown as JsonSchema, '', out);
    expect(out).toEqual([]);
  });

  it('the comparison catches a changed reference (a field made required, a type changed, a field removed)', () => {
    const md = readFileSync(REFERENCE, 'utf8');
    const broken = md
      .replace('lastMetricsAt?: string;', 'lastMetricsAt: string;')
      .replace('failedLast24h: number;', 'failedLast24h: string;')
      .replace('  delayed: number;\n', '  delayed: number;\n  retries: number;\n');
    const out: string[] = [];
    compare({ kind: 'object', fields: parseReference(broken).get('OpsOverviewSummary')! }, OpsOverviewSummarySchema as unknown as JsonSchema, '', out);
    expect(out).toEqual([
      'coreNodes[].lastMetricsAt: required in the reference, optional in the schema',
      'queues[].retries: missing from the schema',
      'provisioning.failedLast24h: string in the reference, "integer" in the schema',
    ]);
  });
});
