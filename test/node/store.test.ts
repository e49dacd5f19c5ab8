import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NodeStore } from '../../src/node/store.js'
import { testIdentity } from '../helpers/cards.js'

const writer = fileURLToPath(new URL('../helpers/store-writer.ts', import.meta.url))

describe('node store', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))) })

  it('a crash (SIGKILL) mid-write loses nothing that was acknowledged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-store-'))
    dirs.push(dir)
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), writer, dir, '400'], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise((resolve) => child.on('exit', resolve))
    let out = ''
    let acked = -1
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d
        const m = [...out.matchAll(/ack (\d+)/g)].at(-1)
        if (m !== undefined) acked = Number(m[1])
        // Kill while writes are still streaming, at an arbitrary point past the first few.
        if (acked >= 50 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL')
          resolve()
        }
      })
      void exited.then(() => resolve())
    })
    await exited
    assert.ok(acked >= 50, `only ${acked} acknowledged before the child ended`)

    const store = new NodeStore(join(dir))
    await store.open()
    const { records, corrupt } = await store.loadRecords()
    await store.close()
    assert.equal(corrupt, 0)
    const held = new Set(records.map((r) => r.value.providerId))
    for (let i = 0; i <= acked; i++) assert.ok(held.has(testIdentity(1000 + i).did), `acknowledged card ${i} was lost`)
  })
})
