#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's own test runner (through tsx). Node 20's --test does not
// expand globs itself, so the files are listed here with built-ins. Arguments filter by substring:
// `npm test -- collection` runs only files whose path contains "collection".
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, dirname, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const filters = process.argv.slice(2)
const files = readdirSync(join(root, 'test'), { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
  .map((e) => relative(root, join(e.parentPath ?? e.path, e.name)))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()

if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}

const r = spawnSync(process.execPath, [
  '--import', 'tsx',
  '--test', '--test-reporter=spec', '--test-concurrency=2',
  ...files
], { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
