// What the Kubernetes API server does with a CustomResourceDefinition and with the objects created
// under it, as far as Weft's CRDs use it, for test/crds.test.js:
//
// - structuralErrors(crd): the rules a CRD must pass to be accepted (apiextensions-apiserver's
//   ValidateStructural and ValidateCustomResourceDefinitionOpenAPISchema: every node typed, no
//   $ref / additionalProperties beside properties / metadata beyond name, the int-or-string
//   forms, junctors without types, status subresource root fields, printer columns), plus Weft's
//   own: a CEL rule only below bounded lists and maps, so the cost estimate stays low.
// - new Admission(crd).admit(obj, old): create or update. Unknown fields are refused (kubectl's
//   default --validate=strict), nulls the schema does not allow are pruned (the API server's
//   PruneNonNullableNullsWithoutDefaults), the OpenAPI schema is checked by ajv after a faithful
//   conversion to JSON Schema (nullable, int-or-string), and then every x-kubernetes-validations
//   rule is evaluated by a CEL interpreter (RE2 for matches, the strings extension, integers as
//   CEL ints), with oldSelf only on update. Returns what would be stored.
'use strict';
const Ajv = require('ajv');
const { celEnv, isCelError, parse, plan } = require('@bufbuild/cel');
const { strings } = require('@bufbuild/cel/ext');
const { RE2JS } = require('@bufbuild/re2');

const KEYWORDS = new Set([
  '$schema', '$ref', 'id', 'description', 'type', 'format', 'title', 'default', 'maximum', 'exclusiveMaximum', 'minimum',
  'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf', 'enum',
  'maxProperties', 'minProperties', 'required', 'items', 'allOf', 'oneOf', 'anyOf', 'not', 'properties', 'additionalProperties',
  'patternProperties', 'dependencies', 'additionalItems', 'definitions', 'externalDocs', 'example', 'nullable',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);
const NOT_SUPPORTED = ['$ref', 'id', 'definitions', 'dependencies', 'patternProperties', 'additionalItems'];
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);
// Allowed at the root when the status subresource is on (allowedFieldsAtRootSchema).
const ROOT_WITH_STATUS = new Set(['description', 'type', 'format', 'title', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf', 'required', 'items', 'properties', 'externalDocs', 'example', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations']);
const RULE_KEYS = new Set(['rule', 'message', 'messageExpression', 'reason', 'fieldPath', 'optionalOldSelf']);
const REASONS = new Set(['FieldValueRequired', 'FieldValueForbidden', 'FieldValueInvalid', 'FieldValueDuplicate']);
const COLUMN_TYPES = new Set(['integer', 'number', 'string', 'boolean', 'date']);
const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIntOrStringAnyOf = (anyOf) => JSON.stringify(anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]);

function structuralErrors(crd) {
  const errs = [];
  const err = (path, msg) => errs.push(`${path}: ${msg}`);
  const { spec } = crd;
  if (crd.apiVersion !== 'apiextensions.k8s.io/v1' || crd.kind !== 'CustomResourceDefinition') err('', 'not an apiextensions.k8s.io/v1 CustomResourceDefinition');
  if (crd.metadata?.name !== `${spec.names.plural}.${spec.group}`) err('metadata.name', 'must be spec.names.plural+"."+spec.group');
  for (const n of ['plural', 'singular']) if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(spec.names[n] ?? '')) err(`spec.names.${n}`, 'must be a lowercase DNS label');
  if (!/^[A-Z][A-Za-z0-9]*$/.test(spec.names.kind) || spec.names.listKind !== `${spec.names.kind}List`) err('spec.names', 'kind/listKind');
  for (const s of spec.names.shortNames ?? []) if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)) err('spec.names.shortNames', s);
  if (!['Namespaced', 'Cluster'].includes(spec.scope)) err('spec.scope', spec.scope);
  if (spec.versions.filter((v) => v.storage).length !== 1) err('spec.versions', 'exactly one storage version');
  spec.versions.forEach((v, i) => {
    const at = `spec.versions[${i}]`;
    const schema = v.schema?.openAPIV3Schema;
    if (!isObj(schema)) return err(`${at}.schema.openAPIV3Schema`, 'required');
    const status = isObj(v.subresources?.status);
    for (const k of Object.keys(v.subresources ?? {})) if (k !== 'status' && k !== 'scale') err(`${at}.subresources`, `unknown ${k}`);
    if (status) for (const k of Object.keys(schema)) if (!ROOT_WITH_STATUS.has(k)) err(`${at}.schema.openAPIV3Schema`, `${k} is not allowed at the root with the status subresource`);
    walk(schema, `${at}.schema.openAPIV3Schema`, 'root', [], err);
    (v.additionalPrinterColumns ?? []).forEach((c, j) => {
      const cp = `${at}.additionalPrinterColumns[${j}]`;
      if (!c.name || !COLUMN_TYPES.has(c.type) || typeof c.jsonPath !== 'string' || !c.jsonPath.startsWith('.')) err(cp, 'needs a name, a type of integer|number|string|boolean|date and a .jsonPath');
      if (c.priority !== undefined && !(Number.isInteger(c.priority) && c.priority >= 0)) err(cp, 'priority');
      // Not an API server rule: a column must show a field the schema has (metadata is the API server's).
      if (!c.jsonPath.startsWith('.metadata.') && schemaAt(schema, c.jsonPath.slice(1).split('.')) === undefined) err(cp, `${c.jsonPath} is not in the schema`);
    });
  });
  return errs;
}

function schemaAt(s, parts) {
  for (const p of parts) s = s?.properties?.[p];
  return s;
}

// level: root | item | field. bounds: the lists/maps above, each {path, bounded}.
function walk(s, path, level, bounds, err) {
  if (!isObj(s)) return err(path, 'must be a schema object');
  for (const k of Object.keys(s)) if (!KEYWORDS.has(k)) err(`${path}.${k}`, 'unknown field of JSONSchemaProps');
  for (const k of NOT_SUPPORTED) if (k in s) err(`${path}.${k}`, `${k} is not supported`);
  if (s.uniqueItems === true) err(`${path}.uniqueItems`, 'cannot be true');
  if ('default' in s) err(`${path}.default`, 'Weft CRDs use no defaults (they are pruned and validated apart)');
  if (s['x-kubernetes-preserve-unknown-fields'] === false) err(path, 'x-kubernetes-preserve-unknown-fields must be true or undefined');
  if (s.type !== undefined && !TYPES.has(s.type)) err(`${path}.type`, `${s.type} is not supported`);
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  if (intOrString) {
    if (s.type !== undefined) err(`${path}.type`, 'must be empty if x-kubernetes-int-or-string is true');
    if (s.anyOf !== undefined && !isIntOrStringAnyOf(s.anyOf)) err(`${path}.anyOf`, 'must be [{type: integer}, {type: string}] with x-kubernetes-int-or-string');
    if (s['x-kubernetes-preserve-unknown-fields'] || s['x-kubernetes-embedded-resource']) err(path, 'int-or-string excludes preserve-unknown-fields and embedded-resource');
  }
  if (s.type === undefined && !intOrString && !s['x-kubernetes-preserve-unknown-fields']) err(`${path}.type`, `must not be empty for ${{ root: 'the root', item: 'specified array items', field: 'specified object fields' }[level]}`);
  if (level === 'root') {
    if (s.type !== 'object') err(`${path}.type`, 'must be object at the root');
    if ('additionalProperties' in s) err(`${path}.additionalProperties`, 'must not be used at the root');
    if (s.nullable) err(`${path}.nullable`, 'cannot be true at the root');
    for (const k of ['kind', 'apiVersion']) if (s.properties?.[k] && s.properties[k].type !== 'string') err(`${path}.properties[${k}].type`, 'must be string');
    const md = s.properties?.metadata;
    if (md) {
      if (md.type !== 'object' || Object.keys(md).some((k) => k !== 'type' && k !== 'properties')) err(`${path}.properties[metadata]`, 'must be {type: object} restricting only name and generateName');
      for (const k of Object.keys(md.properties ?? {})) if (k !== 'name' && k !== 'generateName') err(`${path}.properties[metadata]`, `must not specify anything other than name and generateName (${k})`);
      for (const k of Object.keys(md.properties ?? {})) if (md.properties[k].type !== 'string') err(`${path}.properties[metadata].properties[${k}]`, 'must be a string');
    }
  }
  if (s.type === 'array' && !isObj(s.items)) err(`${path}.items`, 'must be specified (one schema, not a list)');
  if (s.properties && Object.keys(s.properties).length > 0 && (s.additionalProperties === false || isObj(s.additionalProperties))) err(`${path}.additionalProperties`, 'additionalProperties and properties are mutual exclusive');
  if (s['x-kubernetes-list-type'] !== undefined && (s.type !== 'array' || !['atomic', 'set', 'map'].includes(s['x-kubernetes-list-type']))) err(path, 'x-kubernetes-list-type');
  if (s['x-kubernetes-map-type'] !== undefined && (s.type !== 'object' || !['atomic', 'granular'].includes(s['x-kubernetes-map-type']))) err(path, 'x-kubernetes-map-type');
  if (s.pattern !== undefined) {
    try {
      RE2JS.compile(s.pattern);
      new RegExp(s.pattern, 'u');
    } catch (e) {
      err(`${path}.pattern`, `must be a valid regular expression for Go (RE2) and ajv: ${e.message}`);
    }
    if (!s.pattern.startsWith('^') || !s.pattern.endsWith('$')) err(`${path}.pattern`, 'Weft anchors every pattern (the API server searches, it does not match whole strings)');
  }
  (s['x-kubernetes-validations'] ?? []).forEach((r, i) => {
    const rp = `${path}.x-kubernetes-validations[${i}]`;
    for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) err(rp, `unknown field ${k}`);
    if (typeof r.rule !== 'string' || r.rule.trim() === '') return err(`${rp}.rule`, 'rule is not specified');
    if (r.message !== undefined && (typeof r.message !== 'string' || r.message.trim() === '' || /[\n\r]/.test(r.message))) err(`${rp}.message`, 'must be non-empty and on one line');
    if (/[\n\r]/.test(r.rule) && !r.message) err(`${rp}.message`, 'must be specified if rule contains line breaks');
    if (r.reason !== undefined && !REASONS.has(r.reason)) err(`${rp}.reason`, r.reason);
    try {
      parse(r.rule);
    } catch (e) {
      err(`${rp}.rule`, `does not compile: ${e.message}`);
    }
    if (/\boldSelf\b/.test(r.rule) && bounds.length > 0) err(`${rp}.rule`, `oldSelf cannot be used on the uncorrelatable portion of the schema within ${bounds[0].path}`);
    const unbounded = bounds.filter((b) => !b.bounded).map((b) => b.path);
    if (unbounded.length > 0) err(`${rp}.rule`, `runs under ${unbounded.join(', ')} without maxItems/maxProperties: its estimated cost would be refused`);
    if ((s.type === 'array' && s.maxItems === undefined) || (s.type === 'object' && isObj(s.additionalProperties) && s.maxProperties === undefined)) err(`${rp}.rule`, 'on a list or map without maxItems/maxProperties');
    if (s.type === 'string' && s.maxLength === undefined && !s.enum) err(`${rp}.rule`, 'on a string without maxLength');
  });
  for (const [k, p] of Object.entries(s.properties ?? {})) walk(p, `${path}.properties[${k}]`, 'field', bounds, err);
  if (isObj(s.items)) walk(s.items, `${path}.items`, 'item', [...bounds, { path, bounded: s.maxItems !== undefined }], err);
  if (isObj(s.additionalProperties)) walk(s.additionalProperties, `${path}.additionalProperties`, 'field', [...bounds, { path, bounded: s.maxProperties !== undefined }], err);
  for (const j of ['allOf', 'anyOf', 'oneOf']) {
    if (s[j] === undefined) continue;
    if (j === 'anyOf' && intOrString && isIntOrStringAnyOf(s.anyOf)) continue;
    s[j].forEach((n, i) => nested(n, `${path}.${j}[${i}]`, s, err));
  }
  if (s.not !== undefined) nested(s.not, `${path}.not`, s, err);
}

// Inside allOf/anyOf/oneOf/not only value validations, and only of fields specified outside too.
function nested(n, path, outer, err) {
  for (const k of ['type', 'additionalProperties', 'default', 'title', 'description', 'nullable']) if (k in n) err(`${path}.${k}`, 'must be empty to be structural');
  for (const k of Object.keys(n)) if (k.startsWith('x-kubernetes-')) err(`${path}.${k}`, 'must be false to be structural');
  if (n.properties?.metadata) err(`${path}.properties[metadata]`, 'must not be specified in a nested context');
  for (const [k, p] of Object.entries(n.properties ?? {})) {
    if (!outer.properties?.[k]) err(`${path}.properties[${k}]`, 'must be specified outside of the junctor as well');
    nested(p, `${path}.properties[${k}]`, outer.properties?.[k] ?? {}, err);
  }
  if (n.items) {
    if (!outer.items) err(`${path}.items`, 'must be specified outside of the junctor as well');
    nested(n.items, `${path}.items`, outer.items ?? {}, err);
  }
}

/** OpenAPI v3 (as apiextensions reads it) to JSON Schema draft-07 for ajv, with strict field validation. */
function toJsonSchema(s, isRoot = false) {
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'description' || k === 'nullable' || k === 'example' || k === 'externalDocs' || k === 'title' || k.startsWith('x-kubernetes-')) continue;
    if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v).map(([p, ps]) => [p, isRoot && p === 'metadata' ? { type: 'object', properties: toJsonSchema(ps).properties ?? {} } : toJsonSchema(ps)]));
    else if (k === 'items' || k === 'not') out[k] = toJsonSchema(v);
    else if (k === 'additionalProperties') out[k] = isObj(v) ? toJsonSchema(v) : v;
    else if (k === 'anyOf' || k === 'allOf' || k === 'oneOf') out[k] = v.map((x) => toJsonSchema(x));
    // OpenAPI 3.0's boolean exclusive bounds are draft-07's numeric ones.
    else if (k === 'exclusiveMaximum' || k === 'exclusiveMinimum') {
      if (v === true) out[k] = s[k === 'exclusiveMaximum' ? 'maximum' : 'minimum'];
    } else out[k] = v;
  }
  if (out.exclusiveMaximum !== undefined) delete out.maximum;
  if (out.exclusiveMinimum !== undefined) delete out.minimum;
  if (s.properties && !('additionalProperties' in s) && !s['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  if (s['x-kubernetes-int-or-string'] && !out.anyOf) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  if (s.nullable) {
    if (out.type) out.type = [out.type, 'null'];
    if (out.enum) out.enum = [...out.enum, null];
    if (out.anyOf) out.anyOf = [...out.anyOf, { type: 'null' }];
  }
  return out;
}

function fieldSchema(s, k) {
  return s?.properties?.[k] ?? (isObj(s?.additionalProperties) ? s.additionalProperties : undefined);
}

/** The API server's PruneNonNullableNullsWithoutDefaults. */
function pruneNulls(x, s) {
  if (Array.isArray(x)) for (const v of x) pruneNulls(v, s?.items);
  else if (isObj(x)) {
    for (const k of Object.keys(x)) {
      const sub = fieldSchema(s, k);
      if (x[k] === null && sub && !sub.nullable && sub.default === undefined) delete x[k];
      else pruneNulls(x[k], sub);
    }
  }
}

/** A JSON value as CEL sees it under schema `s`: integers as CEL ints, objects as maps. */
function toCel(v, s, isRoot = false) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return (s?.type === 'integer' || s?.['x-kubernetes-int-or-string']) && Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map((x) => toCel(x, s?.items));
  if (isObj(v)) {
    // At the root, CEL sees only metadata.name and metadata.generateName.
    const entries = Object.entries(v).map(([k, x]) => [k, isRoot && k === 'metadata' ? new Map(['name', 'generateName'].filter((n) => x?.[n] !== undefined).map((n) => [n, x[n]])) : toCel(x, fieldSchema(s, k))]);
    return new Map(entries);
  }
  return v;
}

class Admission {
  constructor(crd) {
    this.crd = crd;
    this.schema = crd.spec.versions.find((v) => v.storage).schema.openAPIV3Schema;
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false, allowUnionTypes: true });
    this.validate = ajv.compile(toJsonSchema(this.schema, true));
    this.env = celEnv({ funcs: strings });
    this.programs = new Map();
  }

  /** Create (old undefined) or update; {ok, errors, stored}. */
  admit(obj, old) {
    const stored = JSON.parse(JSON.stringify(obj));
    pruneNulls(stored, this.schema);
    if (!this.validate(stored)) return { ok: false, errors: this.validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`) };
    const errors = [];
    let prev;
    if (old !== undefined) {
      prev = JSON.parse(JSON.stringify(old));
      pruneNulls(prev, this.schema);
    }
    this._rules(stored, prev, this.schema, '', true, errors);
    return { ok: errors.length === 0, errors, stored };
  }

  _rules(v, old, s, path, isRoot, errors) {
    if (v === null || v === undefined || !s) return;
    for (const r of s['x-kubernetes-validations'] ?? []) {
      const usesOld = /\boldSelf\b/.test(r.rule);
      if (usesOld && old === undefined) continue; // a transition rule; nothing to compare on create
      let program = this.programs.get(r.rule);
      if (!program) this.programs.set(r.rule, (program = plan(this.env, parse(r.rule))));
      const result = program({ self: toCel(v, s, isRoot), ...(usesOld ? { oldSelf: toCel(old, s, isRoot) } : {}) });
      if (result !== true) errors.push(`${path || '/'}: ${isCelError(result) ? `rule failed to evaluate: ${result.message}` : r.message} (${r.rule.length > 80 ? r.rule.slice(0, 77) + '...' : r.rule})`);
    }
    // Lists are atomic: their items have no old value to compare with.
    if (Array.isArray(v)) v.forEach((x, i) => this._rules(x, undefined, s.items, `${path}[${i}]`, false, errors));
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) if (!(isRoot && k === 'metadata')) this._rules(x, isObj(old) ? old[k] : undefined, fieldSchema(s, k), `${path}/${k}`, false, errors);
  }
}

module.exports = { structuralErrors, Admission, toJsonSchema };
