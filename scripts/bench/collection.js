#!/usr/bin/env node
// `node scripts/bench/collection.js [sizes…]`: runs collection.ts through tsx, with --expose-gc so
// the memory column is measured after a collection rather than guessed.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('./collection.ts', import.meta.url))
const r = spawnSync(process.execPath, ['--expose-gc', '--import', import.meta.resolve('tsx'), script, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(r.status ?? 1)
