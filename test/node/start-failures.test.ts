/**
 * A `cmesh start` that fails at any step exits 1 by itself, prints exactly one `cmesh: CODE: message`
 * line on stderr (no stack), and leaves no process, no listening port and no database lock behind.
 *
 * Each case runs the real CLI from source. The requirement's "within 5 s" is measured from the
 * failure, not from spawn (a tsx start alone costs seconds on a busy CI core), so a run only fails
 * on time when it has not exited 20 s after spawn; the time to exit is reported as a diagnostic.
 */
import '../../src/node/polyfills.js'
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { DEFAULT_CARD_DRAFT } from '../../src/node/config.js'
import {
  Scratch, freshNetwork, waitForExit, waitForStdout, terminates, killRun, leftoverProcesses, leftoverListeners,
  type StartRun
} from '../helpers/start-failure.js'

/** From spawn: generous, CI shares two busy cores and a tsx start takes seconds before the node does anything. */
const EXIT_DEADLINE_MS = 20_000
const SIGTERM_GRACE_MS = 3_000
const BANNER_DEADLINE_MS = 30_000
const TEST_TIMEOUT_MS = 120_000

/** Loopback only, no DHT, a network of its own: nothing outside this test can reach the node or be reached by it. */
function baseConfig (dataDir: string): Record<string, unknown> {
  return { dataDir, network: freshNetwork(), listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }
}

async function scratch (t: TestContext): Promise<Scratch> {
  const s = await Scratch.create()
  t.after(async () => { await s.cleanup() })
  return s
}

function indent (text: string): string {
  return text.split('\n').map((l) => `    | ${l}`).join('\n')
}

/**
 * The run must exit by itself with code 1, print one well-formed `cmesh:` line that names what
 * failed (`mentions`), no stack, and leave no process and no listening socket behind. A run still
 * alive at the deadline is tried with SIGTERM (to report whether it honours it), then SIGKILLed.
 */
async function expectCleanFailure (t: TestContext, run: StartRun, mentions: RegExp): Promise<void> {
  const exit = await waitForExit(run, EXIT_DEADLINE_MS)
  if (exit === undefined) {
    const obeysTerm = await terminates(run, SIGTERM_GRACE_MS)
    const stderr = run.stderr()
    await killRun(run)
    assert.fail(`cmesh start did not exit by itself within ${EXIT_DEADLINE_MS / 1000} s of spawn; ` +
      (obeysTerm ? 'SIGTERM then stopped it' : `it then ignored SIGTERM for ${SIGTERM_GRACE_MS / 1000} s and was SIGKILLed`) +
      `\n  stderr:\n${indent(stderr)}`)
  }
  const ports = [...new Set(run.listening.values())]
  t.diagnostic(`exited with ${exit.code ?? exit.signal} ${exit.ms} ms after spawn; seen listening on ${ports.length > 0 ? `TCP ${ports.join(', ')}` : 'no TCP port'}`)
  const stderr = run.stderr()
  const context = `\n  stderr:\n${indent(stderr)}`
  assert.equal(exit.signal, null, `killed by ${exit.signal ?? ''}` + context)
  assert.equal(exit.code, 1, `exit code` + context)
  const lines = stderr.split('\n').filter((l) => l.startsWith('cmesh:'))
  assert.equal(lines.length, 1, `exactly one "cmesh:" line on stderr, got ${lines.length}` + context)
  const line = lines[0] ?? ''
  assert.match(line, /^cmesh: [A-Z_]+: \S/, 'the line reads `cmesh: CODE: message`' + context)
  assert.match(line, mentions, 'the line names what failed' + context)
  assert.doesNotMatch(stderr, /^\s+at \S/m, 'no stack trace on stderr' + context)
  assert.deepEqual(await leftoverProcesses(run), [], 'no process of the run is left (node, tsx/esbuild, anything it started)')
  assert.deepEqual(leftoverListeners(run), [], 'no TCP port the run listened on is still listening')
}

/** If the failed start created `<dataDir>/db`, its LevelDB lock must be free: another process opens it. */
async function expectDatabaseUnlocked (t: TestContext, dataDir: string): Promise<boolean> {
  const path = join(dataDir, 'db')
  if (!existsSync(path)) {
    t.diagnostic(`${path} was never created`)
    return false
  }
  const db = new ClassicLevel(path, { createIfMissing: false })
  try {
    await db.open()
  } catch (err: any) {
    assert.fail(`the store ${path} cannot be opened after the failed start: ${err.code ?? ''} ${err.message} ${err.cause?.code ?? ''} ${err.cause?.message ?? ''}`)
  }
  await db.close()
  return true
}

async function listeningServer (): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return server
}

describe('cmesh start failures: exit 1, one cmesh: line, nothing left behind', () => {
  it('an invalid card draft in the config', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    const dataDir = join(s.dir, 'data')
    const run = await s.start({ ...baseConfig(dataDir), card: { ...DEFAULT_CARD_DRAFT, schemesSupported: [] } })
    await expectCleanFailure(t, run, /card|schemesSupported/i)
    await expectDatabaseUnlocked(t, dataDir)
  })

  it('production mode with the simulated quote provider', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    const dataDir = join(s.dir, 'data')
    const run = await s.start({ ...baseConfig(dataDir), attest: { production: true, provider: 'simulated' } })
    await expectCleanFailure(t, run, /production|simulat/i)
    await expectDatabaseUnlocked(t, dataDir)
  })

  it('configfs-tsm with a collateral file that does not exist', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    const dataDir = join(s.dir, 'data')
    const missing = join(s.dir, 'missing-collateral.json')
    const run = await s.start({ ...baseConfig(dataDir), attest: { provider: 'configfs-tsm', collateralFile: missing } })
    await expectCleanFailure(t, run, /collateral/i)
    await expectDatabaseUnlocked(t, dataDir)
  })

  it('a root PEM file that does not exist', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    const dataDir = join(s.dir, 'data')
    const missing = join(s.dir, 'missing-root.pem')
    const run = await s.start({ ...baseConfig(dataDir), attest: { rootPem: missing } })
    await expectCleanFailure(t, run, /root/i)
    await expectDatabaseUnlocked(t, dataDir)
  })

  it('an API port already in use: everything opened before it is rolled back', { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
    const s = await scratch(t)
    const blocker = await listeningServer()
    t.after(async () => { await new Promise((resolve) => blocker.close(resolve)) })
    const apiPort = (blocker.address() as AddressInfo).port
    const dataDir = join(s.dir, 'data')
    const config = baseConfig(dataDir)
    // Key, store, libp2p and attestation all come up before the API binds: the failure comes last.
    const run = await s.start({ ...config, apiPort })
    await expectCleanFailure(t, run, /api|port|in use|EADDRINUSE/i)
    await expectDatabaseUnlocked(t, dataDir)

    // Nothing of the failed run stands in the way of the same node starting on a free port.
    const again = await s.start({ ...config, apiPort: 0 }, 'config-free-port.json')
    const up = await waitForStdout(again, /cmesh node running/, BANNER_DEADLINE_MS)
    if (!up) {
      const stderr = again.stderr()
      await killRun(again)
      assert.fail(`the restart on a free API port did not reach its banner within ${BANNER_DEADLINE_MS / 1000} s` +
        `${again.exitInfo !== undefined ? ` (exited ${again.exitInfo.code ?? again.exitInfo.signal})` : ''}\n  stderr:\n${indent(stderr)}`)
    }
    assert.ok(await terminates(again, EXIT_DEADLINE_MS), `the restarted node did not stop within ${EXIT_DEADLINE_MS / 1000} s of SIGTERM`)
    assert.equal(again.exitInfo?.code, 0, `the restarted node exits 0 on SIGTERM\n  stderr:\n${indent(again.stderr())}`)
    assert.deepEqual(await leftoverProcesses(again), [], 'no process of the restarted node is left')
  })

  it('a data dir that cannot be created', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    // CI runs as root, and root ignores permission bits (CAP_DAC_OVERRIDE): a chmod 0500 parent
    // would not stop it. Nobody, root included, can create a directory under a regular file:
    // mkdir (recursive or not) fails with ENOTDIR.
    const notADir = join(s.dir, 'not-a-dir')
    await writeFile(notADir, 'a regular file\n')
    const dataDir = join(notADir, 'data')
    const run = await s.start(baseConfig(dataDir))
    await expectCleanFailure(t, run, /data|not-a-dir|ENOTDIR|not a directory/i)
  })

  it('a libp2p listen port already in use', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const s = await scratch(t)
    const blocker = await listeningServer()
    t.after(async () => { await new Promise((resolve) => blocker.close(resolve)) })
    const port = (blocker.address() as AddressInfo).port
    const dataDir = join(s.dir, 'data')
    const run = await s.start({ ...baseConfig(dataDir), listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    await expectCleanFailure(t, run, /LISTEN_FAILED|in use|EADDRINUSE/i)
    await expectDatabaseUnlocked(t, dataDir)
  })

  it('a second node on the data dir of a running one', { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
    const s = await scratch(t)
    const dataDir = join(s.dir, 'data')
    const first = await s.start(baseConfig(dataDir), 'config-first.json')
    t.after(async () => { await killRun(first) })
    assert.ok(await waitForStdout(first, /cmesh node running/, BANNER_DEADLINE_MS), `the first node did not start\n${indent(first.stderr())}`)
    const second = await s.start(baseConfig(dataDir), 'config-second.json')
    await expectCleanFailure(t, second, /STORE_LOCKED/)
    assert.equal(first.exitInfo, undefined, 'the first node runs on')
  })
})
