/**
 * Node 20 lacks `Promise.withResolvers`, which libp2p 3's streams, yamux, ping and the peer-store
 * locks call: without it every dial fails. Every entry point (bin, tests, benchmarks) imports this
 * module first. Nothing else libp2p 3 uses is missing on Node 20 (checked by running the stack).
 */
if (typeof (Promise as any).withResolvers !== 'function') {
  (Promise as any).withResolvers = function withResolvers<T> () {
    let resolve!: (value: T | PromiseLike<T>) => void
    let reject!: (reason?: unknown) => void
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

export {}
