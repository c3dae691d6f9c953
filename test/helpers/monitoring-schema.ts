/**
 * Validates JSON values against TypeScript types of the Grafana foundation
 * SDK at run time: the compiler resolves the types, and a small walker checks
 * a value against them (required and unknown keys, literal and enum values,
 * unions, arrays, records). Strict like a JSON schema with
 * additionalProperties: false.
 */
import { join } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../../monitoring/generate.js';

const TYPES_FILE = join(REPO_ROOT, 'test/helpers/monitoring-schema-types.ts');

/** Validator for the types named in MonitoringSchemaTypes. */
export interface SchemaValidator {
  /** Problems found, each with its JSON path; empty when the value is valid. */
  validate(typeName: string, value: unknown, path?: string): string[];
}

/** Compiles the schema types once (a second or two) and returns a validator. */
export function createSchemaValidator(): SchemaValidator {
  const program = ts.createProgram([TYPES_FILE], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(TYPES_FILE);
  if (!source) throw new Error(`cannot load ${TYPES_FILE}`);
  const diagnostics = ts.getPreEmitDiagnostics(program, source);
  if (diagnostics.length > 0) throw new Error(ts.formatDiagnostics(diagnostics, ts.createCompilerHost({})));
  let root: ts.InterfaceDeclaration | undefined;
  source.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === 'MonitoringSchemaTypes') root = n;
  });
  if (!root) throw new Error('MonitoringSchemaTypes not found');
  const rootType = checker.getTypeAtLocation(root);

  const typeOfProp = (prop: ts.Symbol, at: ts.Node): ts.Type => checker.getTypeOfSymbolAtLocation(prop, prop.valueDeclaration ?? at);

  function check(value: unknown, type: ts.Type, path: string, out: string[]): void {
    const f = type.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    if (type.isUnion()) {
      let best: string[] | undefined;
      // Report the errors of the members that could be meant, not "is not undefined".
      const candidates = type.types.filter(
        (m) => !(m.flags & ts.TypeFlags.Undefined && value !== undefined) && !(m.flags & ts.TypeFlags.Null && value !== null),
      );
      for (const member of candidates) {
        const errs: string[] = [];
        check(value, member, path, errs);
        if (errs.length === 0) return;
        if (!best || errs.length < best.length) best = errs;
      }
      out.push(...(best ?? [`${path}: matches no member of ${checker.typeToString(type)}`]));
      return;
    }
    if (type.isStringLiteral() || type.isNumberLiteral()) {
      if (value !== type.value) out.push(`${path}: ${JSON.stringify(value)} is not ${JSON.stringify(type.value)}`);
      return;
    }
    if (f & ts.TypeFlags.BooleanLiteral) {
      const expected = (type as unknown as { intrinsicName: string }).intrinsicName === 'true';
      if (value !== expected) out.push(`${path}: ${JSON.stringify(value)} is not ${String(expected)}`);
      return;
    }
    if (f & ts.TypeFlags.String) {
      if (typeof value !== 'string') out.push(`${path}: ${JSON.stringify(value)} is not a string`);
      return;
    }
    if (f & ts.TypeFlags.Number) {
      if (typeof value !== 'number') out.push(`${path}: ${JSON.stringify(value)} is not a number`);
      return;
    }
    if (f & ts.TypeFlags.Boolean) {
      if (typeof value !== 'boolean') out.push(`${path}: ${JSON.stringify(value)} is not a boolean`);
      return;
    }
    if (f & ts.TypeFlags.Null) {
      if (value !== null) out.push(`${path}: ${JSON.stringify(value)} is not null`);
      return;
    }
    if (f & ts.TypeFlags.Undefined) {
      if (value !== undefined) out.push(`${path}: unexpected value`);
      return;
    }
    if (checker.isArrayType(type)) {
      if (!Array.isArray(value)) {
        out.push(`${path}: not an array`);
        return;
      }
      const element = checker.getTypeArguments(type as ts.TypeReference)[0]!;
      value.forEach((v, i) => check(v, element, `${path}[${i}]`, out));
      return;
    }
    if (f & (ts.TypeFlags.Object | ts.TypeFlags.Intersection)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        out.push(`${path}: ${JSON.stringify(value)} is not an object`);
        return;
      }
      const obj = value as Record<string, unknown>;
      const all = checker.getPropertiesOfType(type);
      // cog's variant markers (an interface with only `_implements...Variant()`), e.g. a panel's
      // `targets: cog.Dataquery[]`, stand for "any plugin's query": the tests check those with the
      // plugin's own type (prometheus.Dataquery).
      if (all.length > 0 && all.every((p) => p.flags & ts.SymbolFlags.Method && p.name.startsWith('_implements'))) return;
      const props = all.filter((p) => !(p.flags & ts.SymbolFlags.Method));
      const known = new Set(props.map((p) => p.name));
      for (const prop of props) {
        const v = obj[prop.name];
        if (v === undefined) {
          if (!(prop.flags & ts.SymbolFlags.Optional)) out.push(`${path}.${prop.name}: required`);
          continue;
        }
        check(v, typeOfProp(prop, root!), `${path}.${prop.name}`, out);
      }
      const index = checker.getIndexInfosOfType(type).find((i) => i.keyType.flags & ts.TypeFlags.String);
      for (const key of Object.keys(obj)) {
        if (known.has(key)) continue;
        if (index) check(obj[key], index.type, `${path}.${key}`, out);
        else out.push(`${path}.${key}: not in ${checker.typeToString(type)}`);
      }
      return;
    }
    out.push(`${path}: unsupported type ${checker.typeToString(type)}`);
  }

  return {
    validate(typeName, value, path = '$') {
      const prop = rootType.getProperty(typeName);
      if (!prop) throw new Error(`unknown schema type ${typeName}`);
      const out: string[] = [];
      check(value, typeOfProp(prop, root!), path, out);
      return out;
    },
  };
}
