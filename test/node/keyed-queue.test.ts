import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { KeyedQueue } from '../../src/node/keyed-queue.js'

function gate (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

describe('keyed work queue', () => {
  it('runs at most `concurrency` jobs, never two for one key, newest job per key', async () => {
    const shutdown = new AbortController()
    const gates = new Map<string, ReturnType<typeof gate>>()
    const ran: string[] = []
    let running = 0
    let peak = 0
    const queue = new KeyedQueue<number>({
      concurrency: 2,
      maxPending: 100,
      timeoutMs: 60_000,
      signal: shutdown.signal,
      run: async (key, item) => {
        running++
        peak = Math.max(peak, running)
        ran.push(`${key}=${item}`)
        const g = gate()
        gates.set(key, g)
        await g.promise
        running--
      }
    })
    queue.add('a', 1)
    queue.add('b', 1)
    queue.add('c', 1)
    queue.add('a', 2)
    queue.add('c', 2) // replaces c=1, which never started, and goes to the back of the line
    assert.deepEqual(ran, ['a=1', 'b=1'])
    gates.get('a')?.open()
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(ran, ['a=1', 'b=1', 'a=2'])
    gates.get('b')?.open()
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(ran, ['a=1', 'b=1', 'a=2', 'c=2'])
    gates.get('c')?.open()
    gates.get('a')?.open()
    await queue.settled()
    assert.equal(peak, 2)
  })

  it('drops the oldest waiting job when full, and aborts running jobs at their deadline or shutdown', async () => {
    const shutdown = new AbortController()
    const dropped: string[] = []
    const aborted: string[] = []
    const queue = new KeyedQueue<void>({
      concurrency: 1,
      maxPending: 2,
      timeoutMs: 60_000,
      signal: shutdown.signal,
      run: async (key, _item, signal) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
        aborted.push(key)
      },
      onDrop: (key) => dropped.push(key)
    })
    for (const key of ['a', 'b', 'c', 'd']) queue.add(key)
    assert.deepEqual(dropped, ['b'])
    assert.equal(queue.pendingCount, 2)
    shutdown.abort()
    await queue.settled()
    assert.deepEqual(aborted, ['a'], 'the running job saw the shutdown; waiting ones never ran')

    const short = new KeyedQueue<void>({ concurrency: 1, maxPending: 1, timeoutMs: 20, signal: new AbortController().signal, run: async (_k, _i, signal) => { await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })) } })
    // AbortSignal.timeout keeps no process alive by itself (a node has its sockets); the test holds one timer.
    const keepAlive = setTimeout(() => {}, 10_000)
    short.add('x')
    await short.settled()
    clearTimeout(keepAlive)
  })
})
