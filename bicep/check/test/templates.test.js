'use strict';
// The real templates under bicep/: every file parses, every rule passes.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const B = require('../lib/bicep');
const { rules } = require('../lib/rules');

const ROOT = path.resolve(__dirname, '..', '..');
const project = B.loadProject(ROOT);

test('bicep/ holds main.bicep, main.bicepparam and modules', () => {
  const names = [...project.files.keys()];
  assert.ok(names.includes('main.bicep'), names.join(', '));
  assert.ok(names.includes('main.bicepparam'), names.join(', '));
  assert.ok(names.some((n) => n.startsWith('modules/')), names.join(', '));
});

test('parse', async (t) => {
  for (const file of project.list()) {
    await t.test(file.path, () => {
      const problems = B.syntaxProblems(file);
      assert.deepEqual(problems, [], problems.join('\n'));
    });
  }
});

test('rules on bicep/', async (t) => {
  for (const [name, rule] of Object.entries(rules)) {
    await t.test(name, () => {
      const problems = rule(project);
      assert.deepEqual(problems, [], problems.join('\n'));
    });
  }
});
