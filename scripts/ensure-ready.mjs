#!/usr/bin/env node
// Makes a fresh clone runnable: `npm ci` when node_modules is missing or older than the lockfile,
// then `tsc` when any source is newer than the last build. Node built-ins only, because this runs
// before any dependency exists.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : -1)

function run (cmd, args) {
  console.error(`[ensure-ready] ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
  if (r.status !== 0) {
    console.error(`[ensure-ready] ${cmd} failed with exit code ${r.status ?? r.signal}`)
    process.exit(r.status ?? 1)
  }
}

function newestIn (dir) {
  if (!existsSync(dir)) return -1
  let newest = -1
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    newest = Math.max(newest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs)
  }
  return newest
}

// npm writes node_modules/.package-lock.json at the end of every successful install; the
// postinstall step then applies patches/ (patch-package), so a changed patch reinstalls too.
const installed = join(root, 'node_modules', '.package-lock.json')
if (mtime(installed) < Math.max(mtime(join(root, 'package-lock.json')), newestIn(join(root, 'patches')))) {
  run('npm', ['ci', '--no-audit', '--no-fund'])
}

const stamp = join(root, 'dist', '.build-stamp')
const sourcesChanged = Math.max(newestIn(join(root, 'src')), mtime(join(root, 'tsconfig.json')), mtime(installed))
if (mtime(stamp) < sourcesChanged) {
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'])
  mkdirSync(dirname(stamp), { recursive: true })
  writeFileSync(stamp, new Date().toISOString() + '\n')
}
