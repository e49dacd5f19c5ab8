import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { WorkerProcess, WorkerDiedError, type WorkerDeath } from '../../scripts/bench/worker-rpc.js'

// A harness that loses a death would leave a request pending forever: these bounds make that a failure.
const bounded = { timeout: 60_000 }
const fixture = fileURLToPath(new URL('./fixtures/rpc-worker.mjs', import.meta.url))

/** A fixture worker whose death reports are collected instead of printed. */
async function worker (): Promise<{ w: WorkerProcess, deaths: WorkerDeath[] }> {
  const deaths: WorkerDeath[] = []
  const w = new WorkerProcess(fixture, { label: 'fixture (nodes 0-4)', execArgv: [], echoStderr: false, onDeath: (d) => { deaths.push(d) } })
  await w.request(null, 'ready')
  return { w, deaths }
}

async function rejection (p: Promise<unknown>): Promise<WorkerDiedError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof WorkerDiedError, `expected a WorkerDiedError, got ${String(err)}`)
  return err
}

test('a worker that answers and stops cleanly is not reported as a death', bounded, async () => {
  const { w, deaths } = await worker()
  assert.deepEqual(await w.request({ t: 'echo', value: 42 }, 'echoed'), { t: 'echoed', value: 42 })
  const end = await w.stop({ t: 'stop' }, 'stopped')
  assert.equal(end.reason, 'stopped')
  assert.equal(end.code, 0)
  assert.deepEqual(deaths, [])
  assert.equal(w.alive, false)
})

test('a worker that exits mid-request: the request rejects with its exit code and last 20 stderr lines; later requests and sends do not throw', bounded, async () => {
  const { w, deaths } = await worker()
  const err = await rejection(w.request({ t: 'exit-mid-request' }, 'never-sent'))
  assert.match(err.message, /fixture \(nodes 0-4\)/)
  const death = await w.exited
  assert.equal(death.code, 3)
  assert.equal(death.signal, null)
  assert.equal(death.reason, 'exited')
  assert.equal(death.stderrTail.length, 20)
  assert.equal(death.stderrTail[0], 'stderr line 11')
  assert.equal(death.stderrTail.at(-1), 'stderr line 30')
  assert.equal(deaths.length, 1)
  assert.equal(deaths[0], death)
  assert.equal(w.send({ t: 'echo', value: 1 }), false)
  const later = await rejection(w.request({ t: 'echo', value: 1 }, 'echoed'))
  assert.equal(later.death.code, 3)
})

test('an uncaught throw in the worker is reported with its stack from stderr', bounded, async () => {
  const { w, deaths } = await worker()
  await rejection(w.request({ t: 'throw' }, 'never-sent'))
  const death = await w.exited
  assert.equal(death.code, 1)
  assert.ok(death.stderrTail.some((l) => l.includes('worker blew up')), death.stderrTail.join('\n'))
  assert.equal(deaths.length, 1)
})

test('a worker killed with SIGKILL while a request is pending: the request rejects, the signal is reported, sends right after never throw', bounded, async () => {
  const { w, deaths } = await worker()
  const pending = w.request({ t: 'hang' }, 'never-sent')
  // The request must be in the worker's hands before the kill, or this would test nothing more than a dead send.
  await w.request({ t: 'echo', value: 'after hang' }, 'echoed')
  w.kill('SIGKILL')
  // The channel may still look open for a moment: these sends hit a dying pipe (EPIPE) or a closed channel.
  for (let i = 0; i < 50; i++) w.send({ t: 'echo', value: i })
  const err = await rejection(pending)
  const death = await w.exited
  assert.equal(err.death.label, 'fixture (nodes 0-4)')
  assert.equal(death.signal, 'SIGKILL')
  assert.equal(death.code, null)
  assert.ok(death.stderrTail.includes('hanging'))
  assert.equal(deaths.length, 1)
})

test('a worker that closes its IPC channel but keeps running is reported, and killed rather than left behind', bounded, async () => {
  const { w, deaths } = await worker()
  const err = await rejection(w.request({ t: 'close-ipc' }, 'never-sent'))
  assert.equal(err.death.reason, 'IPC channel closed')
  const death = await w.exited
  assert.equal(death.reason, 'IPC channel closed')
  assert.equal(death.signal, 'SIGKILL')
  assert.equal(deaths.length, 1)
})

test('stop() on a worker that ignores it kills it and resolves', bounded, async () => {
  const { w, deaths } = await worker()
  await w.request({ t: 'deaf' }, 'deafened')
  const end = await w.stop({ t: 'stop' }, 'stopped', 100)
  assert.equal(end.signal, 'SIGKILL')
  assert.equal(deaths.length, 1)
})
