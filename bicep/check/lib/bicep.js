'use strict';
// Parsing and tree helpers for the Bicep checks. Everything here works on the
// tree-sitter-bicep parse tree: declarations, object properties and values are read
// from nodes, never matched with regular expressions over the raw text. The one
// exception is documented at prepareSource: .bicepparam assignments.

const fs = require('node:fs');
const path = require('node:path');
const Parser = require('tree-sitter');
const Bicep = require('tree-sitter-bicep');

const parser = new Parser();
parser.setLanguage(Bicep);

// tree-sitter-bicep 1.1.0 knows `using` but not the parameter assignment of a
// .bicepparam file (`param name = value`): it expects a type after the name and
// yields ERROR/MISSING nodes. The assignment has the grammar of a variable
// declaration, so `param` is rewritten to `var  ` (same length: every line and column
// in reports stays true) before parsing; the offsets of the rewritten keywords are
// kept so that declarations() tells these assignments from real `var`s.
function prepareSource(src, kind) {
  const assignStarts = new Set();
  if (kind !== 'bicepparam') return { text: src, assignStarts };
  // Keyed by row:column (only indentation precedes the keyword, so columns agree
  // whatever unit the parser counts in).
  const text = src.replace(/^([ \t]*)param(?=[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*=)/gm, (m, indent, offset) => {
    const row = src.slice(0, offset).split('\n').length - 1;
    assignStarts.add(`${row}:${indent.length}`);
    return `${indent}var  `;
  });
  return { text, assignStarts };
}

function kindOf(file) {
  return file.endsWith('.bicepparam') ? 'bicepparam' : 'bicep';
}

// A parsed file: { path (relative, '/'-separated), kind, src, tree, root }.
function parseFile(relPath, src) {
  const kind = kindOf(relPath);
  const { text, assignStarts } = prepareSource(src, kind);
  const tree = parser.parse(text);
  return { path: relPath, kind, src, tree, root: tree.rootNode, assignStarts };
}

// A project: every .bicep and .bicepparam file under a root, keyed by relative path.
function loadProject(root) {
  const files = new Map();
  const walk = (dir) => {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
      if (ent.name === 'node_modules' || ent.name.startsWith('.')) continue;
      const full = path.join(dir, ent.name);
      if (ent.isDirectory()) walk(full);
      else if (/\.bicep(param)?$/.test(ent.name)) {
        const rel = path.relative(root, full).split(path.sep).join('/');
        files.set(rel, parseFile(rel, fs.readFileSync(full, 'utf8')));
      }
    }
  };
  walk(root);
  return makeProject(files);
}

// A project from in-memory sources, { 'main.bicep': '...', 'modules/x.bicep': '...' }.
function projectFromSources(sources) {
  const files = new Map();
  for (const [rel, src] of Object.entries(sources)) files.set(rel, parseFile(rel, src));
  return makeProject(files);
}

function makeProject(files) {
  return { files, list: () => [...files.values()] };
}

// ---------------------------------------------------------------------------------
// Nodes

function line(node) {
  return node.startPosition.row + 1;
}

function where(file, node) {
  return `${file.path}:${line(node)}`;
}

function* walk(node) {
  yield node;
  for (const c of node.children) yield* walk(c);
}

// Syntax problems: ERROR and MISSING nodes, as "file:line:col: what".
function syntaxProblems(file) {
  const out = [];
  for (const n of walk(file.root)) {
    if (n.type === 'ERROR') {
      out.push(`${file.path}:${line(n)}:${n.startPosition.column + 1}: syntax error near ${JSON.stringify(n.text.slice(0, 40))}`);
    } else if (n.isMissing) {
      out.push(`${file.path}:${line(n)}:${n.startPosition.column + 1}: missing ${n.type}`);
    }
  }
  return out;
}

const ESCAPES = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", $: '$' };

// The value of a string node without interpolation, else null.
function literalString(node) {
  if (!node || node.type !== 'string') return null;
  let s = '';
  for (const c of node.namedChildren) {
    if (c.type === 'string_content' || c.type === 'multiline_string_content') s += c.text;
    else if (c.type === 'escape_sequence') s += decodeEscape(c.text);
    else return null;
  }
  return s;
}

function decodeEscape(t) {
  if (t.startsWith('\\u{')) return String.fromCodePoint(parseInt(t.slice(3, -1), 16));
  return ESCAPES[t.slice(1)] ?? t;
}

// Key of an object_property (identifier or quoted string).
function propKey(prop) {
  const k = prop.namedChildren[0];
  if (!k) return null;
  return k.type === 'string' ? literalString(k) : k.text;
}

// Value of an object_property: its last named child (decorators and key come first).
function propValue(prop) {
  const nc = prop.namedChildren;
  return nc.length >= 2 ? nc[nc.length - 1] : null;
}

function objectProps(obj) {
  return obj && obj.type === 'object' ? obj.namedChildren.filter((c) => c.type === 'object_property') : [];
}

function getProp(obj, key) {
  const p = objectProps(obj).find((c) => propKey(c) === key);
  return p ? propValue(p) : null;
}

// ---------------------------------------------------------------------------------
// Declarations

// The decorators node just before a declaration (comments may sit between).
function decoratorsOf(decl) {
  let prev = decl.previousNamedSibling;
  while (prev && (prev.type === 'comment' || prev.type === 'diagnostic_comment')) prev = prev.previousNamedSibling;
  if (!prev || prev.type !== 'decorators') return [];
  return prev.namedChildren
    .filter((d) => d.type === 'decorator')
    .map((d) => d.namedChildren[0])
    .filter(Boolean);
}

function decoratorName(expr) {
  // @secure(), @sys.secure(), @description('...')
  const fn = expr.type === 'call_expression' ? expr.childForFieldName('function') : expr;
  if (!fn) return null;
  if (fn.type === 'member_expression') return fn.childForFieldName('property')?.text ?? null;
  return fn.text;
}

function hasDecorator(decl, name) {
  return decoratorsOf(decl).some((d) => decoratorName(d) === name);
}

// The body of a resource or module: the object after `=`, unwrapping `if (...)` and
// `[for ...: ...]`.
function bodyOf(valueNode) {
  let n = valueNode;
  for (let i = 0; n && i < 4; i++) {
    if (n.type === 'object') return n;
    if (n.type === 'if_statement') n = n.namedChildren[n.namedChildren.length - 1];
    else if (n.type === 'for_statement') n = n.childForFieldName('body') ?? n.namedChildren[n.namedChildren.length - 1];
    else return null;
  }
  return n && n.type === 'object' ? n : null;
}

// Every top-level declaration of a file:
// { kind: param|var|resource|module|output|type|func|using|..., name, node, value,
//   type (declared type node), path (resource type or module path string), body }
function declarations(file) {
  const out = [];
  for (const n of file.root.namedChildren) {
    const nc = n.namedChildren;
    switch (n.type) {
      case 'parameter_declaration': {
        const typeNode = nc.find((c) => c.type === 'type') ?? null;
        const idx = typeNode ? nc.indexOf(typeNode) : 0;
        out.push({ kind: 'param', name: nc[0].text, node: n, type: typeNode, value: nc[idx + 1] ?? null });
        break;
      }
      case 'variable_declaration': {
        // In a .bicepparam file, the rewritten `param x = v` assignments.
        const isAssign = file.assignStarts.has(`${n.startPosition.row}:${n.startPosition.column}`);
        out.push({ kind: isAssign ? 'assign' : 'var', name: nc[0].text, node: n, value: nc[nc.length - 1] });
        break;
      }
      case 'resource_declaration': {
        const value = nc[nc.length - 1];
        const existing = n.children.some((c) => !c.isNamed && c.type === 'existing');
        out.push({ kind: 'resource', name: nc[0].text, node: n, typeString: nc[1], path: literalString(nc[1]), existing, value, body: bodyOf(value) });
        break;
      }
      case 'module_declaration': {
        const value = nc[nc.length - 1];
        out.push({ kind: 'module', name: nc[0].text, node: n, pathNode: nc[1], path: literalString(nc[1]), value, body: bodyOf(value) });
        break;
      }
      case 'output_declaration':
        out.push({ kind: 'output', name: nc[0].text, node: n, value: nc[nc.length - 1] });
        break;
      case 'using_statement':
        out.push({ kind: 'using', node: n, pathNode: nc[0], path: literalString(nc[0]) });
        break;
      case 'type_declaration':
      case 'user_defined_function':
      case 'metadata_declaration':
        out.push({ kind: n.type, name: nc[0]?.text, node: n });
        break;
      default:
        break;
    }
  }
  return out;
}

// Resources of one type (the part before '@'), across the project.
function resourcesOfType(project, type) {
  const out = [];
  for (const file of project.list()) {
    for (const d of declarations(file)) {
      if (d.kind === 'resource' && d.path && d.path.split('@')[0].toLowerCase() === type.toLowerCase()) {
        out.push({ file, decl: d });
      }
    }
  }
  return out;
}

// Follow a dotted path of properties from an object node; each step resolves
// identifiers and conditionals, so the result is every node the path can reach.
function getPath(project, file, obj, dotted) {
  let cur = [{ file, node: obj }];
  for (const key of dotted.split('.')) {
    const next = [];
    for (const c of cur) {
      for (const r of resolve(project, c.file, c.node)) {
        const v = getProp(r.node, key);
        if (v) next.push({ file: r.file, node: v });
      }
    }
    cur = next;
  }
  return cur;
}

// ---------------------------------------------------------------------------------
// Value resolution (within a file and across module boundaries)

// Module declarations in other files whose path points at `file`.
function callersOf(project, file) {
  const out = [];
  for (const f of project.list()) {
    for (const d of declarations(f)) {
      if (d.kind !== 'module' || !d.path) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(f.path), d.path));
      if (target !== file.path) continue;
      const oc = project.onlyCaller;
      if (oc && oc.target === file.path && (oc.file !== f.path || oc.start !== d.node.startIndex)) continue;
      out.push({ file: f, decl: d });
    }
  }
  return out;
}

// Resolve an expression to the nodes it may evaluate to: identifiers are followed to
// their var value, param default or (for a module's params) the values its callers
// pass; parentheses, conditionals (both branches) and `??` (both sides) are opened.
// Anything else is returned as is. `seen` stops cycles.
function resolve(project, file, node, seen = new Set()) {
  if (!node) return [];
  // `seen` holds the nodes on the current path only (each branch gets its own copy).
  const key = `${file.path}:${node.startIndex}:${node.endIndex}`;
  if (seen.has(key)) return [];
  seen = new Set(seen).add(key);
  switch (node.type) {
    case 'parenthesized_expression':
      return resolve(project, file, node.namedChildren[0], seen);
    case 'ternary_expression':
      return [
        ...resolve(project, file, node.childForFieldName('consequence'), seen),
        ...resolve(project, file, node.childForFieldName('alternative'), seen),
      ];
    case 'binary_expression': {
      const op = node.children.find((c) => !c.isNamed);
      if (op && op.type === '??') {
        return [
          ...resolve(project, file, node.childForFieldName('left'), seen),
          ...resolve(project, file, node.childForFieldName('right'), seen),
        ];
      }
      return [{ file, node }];
    }
    case 'identifier': {
      const d = declarations(file).find((x) => x.name === node.text && (x.kind === 'var' || x.kind === 'param'));
      if (!d) return [{ file, node }];
      if (d.kind === 'var') return resolve(project, file, d.value, seen);
      const callers = callersOf(project, file);
      const out = [];
      let defaulted = callers.length === 0;
      for (const c of callers) {
        const paramsObjs = c.decl.body ? resolve(project, c.file, getProp(c.decl.body, 'params'), seen) : [];
        const passed = paramsObjs.map((p) => ({ file: p.file, node: getProp(p.node, d.name) })).filter((p) => p.node);
        if (passed.length === 0) defaulted = true;
        for (const p of passed) out.push(...resolve(project, p.file, p.node, seen));
      }
      if (defaulted) {
        if (d.value) out.push(...resolve(project, file, d.value, seen));
        else out.push({ file, node: d.node }); // a required param with no known value
      }
      return out;
    }
    default:
      return [{ file, node }];
  }
}

// A plain value for a resolved node: string, number, boolean, null, or undefined when
// it is not a literal.
function literal(node) {
  switch (node.type) {
    case 'string':
      return literalString(node) ?? undefined;
    case 'number':
      return Number(node.text);
    case 'boolean':
      return node.text === 'true';
    case 'null':
      return null;
    case 'unary_expression': {
      const arg = node.childForFieldName('argument') ?? node.namedChildren[0];
      const op = node.children.find((c) => !c.isNamed)?.type;
      const v = arg ? literal(arg) : undefined;
      if (op === '-' && typeof v === 'number') return -v;
      if (op === '!' && typeof v === 'boolean') return !v;
      return undefined;
    }
    default:
      return undefined;
  }
}

// Every literal value an expression may take; `undefined` marks a non-literal branch.
function values(project, file, node) {
  return resolve(project, file, node).map((r) => literal(r.node));
}

// Elements of an array expression: array literals, concat()/union() of arrays,
// `[for ...: body]` (the body), through identifiers and conditionals. Each element is
// itself resolved. Returns { file, node }[] plus `opaque` for parts it cannot see.
function arrayElements(project, file, node) {
  const out = [];
  let opaque = [];
  const visit = (f, n, seen) => {
    for (const r of resolve(project, f, n, seen)) {
      const x = r.node;
      if (x.type === 'array') {
        for (const el of x.namedChildren) {
          if (el.type === 'comment') continue;
          for (const e of resolve(project, r.file, el)) out.push(e);
        }
      } else if (x.type === 'for_statement') {
        const body = x.childForFieldName('body') ?? x.namedChildren[x.namedChildren.length - 1];
        const inner = body && body.type === 'if_statement' ? body.namedChildren[body.namedChildren.length - 1] : body;
        for (const e of resolve(project, r.file, inner)) out.push(e);
      } else if (x.type === 'call_expression' && ['concat', 'union'].includes(x.childForFieldName('function')?.text)) {
        const args = x.childForFieldName('arguments') ?? x.namedChildren.find((c) => c.type === 'arguments');
        for (const a of args ? args.namedChildren : []) visit(r.file, a, new Set());
      } else {
        opaque.push(r);
      }
    }
  };
  visit(file, node, new Set());
  return { elements: out, opaque };
}

// A string with its interpolations resolved where they are literal strings
// ('${x}' stays for the rest): lets a check read '${account.id}/sqlRoleDefinitions/${id}'.
function templateString(project, file, node) {
  if (!node || node.type !== 'string') return null;
  let s = '';
  for (const c of node.namedChildren) {
    if (c.type === 'string_content' || c.type === 'multiline_string_content') s += c.text;
    else if (c.type === 'escape_sequence') s += decodeEscape(c.text);
    else if (c.type === 'interpolation') {
      const vals = values(project, file, c.namedChildren[0]);
      s += vals.length === 1 && typeof vals[0] === 'string' ? vals[0] : '${' + c.namedChildren[0]?.text + '}';
    }
  }
  return s;
}

// Identifiers that refer to something (not declaration names, not object keys, not
// function names of calls, not member names).
function referenceIdentifiers(root) {
  const out = [];
  for (const n of walk(root)) {
    if (n.type !== 'identifier') continue;
    const p = n.parent;
    if (!p) continue;
    if (p.type === 'object_property' && p.namedChildren[0]?.id === n.id) continue;
    if (p.type === 'call_expression' && p.childForFieldName('function')?.id === n.id) continue;
    if (
      ['parameter_declaration', 'variable_declaration', 'resource_declaration', 'module_declaration', 'output_declaration', 'type_declaration', 'user_defined_function'].includes(p.type) &&
      p.namedChildren[0]?.id === n.id
    ) {
      continue;
    }
    out.push(n);
  }
  return out;
}

module.exports = {
  parser,
  prepareSource,
  parseFile,
  loadProject,
  projectFromSources,
  line,
  where,
  walk,
  syntaxProblems,
  literalString,
  propKey,
  propValue,
  objectProps,
  getProp,
  getPath,
  decoratorsOf,
  decoratorName,
  hasDecorator,
  bodyOf,
  declarations,
  resourcesOfType,
  callersOf,
  resolve,
  literal,
  values,
  arrayElements,
  templateString,
  referenceIdentifiers,
};
