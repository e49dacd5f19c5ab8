/**
 * A real `moto_server` (moto's EC2 API) on a loopback port for backend tests, and a fault proxy in
 * front of it. moto's launcher forks, so it runs in its own process group and is killed as a group.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer as createHttpServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import type { TestContext } from 'node:test'

export const SKIP_NO_MOTO = 'skipped: install moto[server]'

/** Fake but well-formed; moto accepts any signature. Passed explicitly so the SDK never looks further. */
export const FAKE_CREDENTIALS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }

export function motoAvailable (): boolean {
  return spawnSync('sh', ['-c', 'command -v moto_server']).status === 0
}

/** False (and the test skipped) without moto_server; under CI=true a missing moto fails instead. */
export function requireMoto (t: TestContext): boolean {
  if (motoAvailable()) return true
  if (process.env.CI === 'true') throw new Error('moto_server missing on CI (pip install "moto[server]")')
  t.skip(SKIP_NO_MOTO)
  return false
}

export interface Moto { endpoint: string, port: number, stop: () => Promise<void> }

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

function killGroup (child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try { process.kill(-child.pid, sig) } catch { /* already gone */ }
}

export async function startMoto (deadlineMs = 30_000): Promise<Moto> {
  const port = await freePort()
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.once('error', (err) => { stderr += `${err.message}\n` }) // e.g. ENOENT; the exit check below reports it
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000) })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    killGroup(child, 'SIGTERM')
    const timer = setTimeout(() => { killGroup(child, 'SIGKILL') }, 5000)
    await exited
    clearTimeout(timer)
    killGroup(child, 'SIGKILL') // forked workers that outlived the launcher
  }
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + deadlineMs
  for (;;) {
    if (child.exitCode !== null || child.pid === undefined) throw new Error(`moto_server exited early: ${stderr}`)
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2000) })
      await res.arrayBuffer()
      return { endpoint, port, stop }
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`moto_server not answering within ${deadlineMs} ms: ${stderr}`) }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * What the proxy does with one EC2 Action (`Action=` in the query-protocol body):
 * - 'stall': never forwarded, never answered;
 * - 'forward-then-stall': forwarded to moto (so it takes effect), the reply withheld — a lost reply;
 * - { status, code }: answered with an EC2 error document, not forwarded.
 */
export type ProxyFault = 'stall' | 'forward-then-stall' | { status: number, code: string }

export interface FaultProxy {
  endpoint: string
  faults: Map<string, ProxyFault>
  /** Actions seen, in order. */
  seen: string[]
  /** Resolves when every 'forward-then-stall' request forwarded so far has been answered by moto. */
  settled: () => Promise<void>
  close: () => Promise<void>
}

export async function startFaultProxy (target: string): Promise<FaultProxy> {
  const faults = new Map<string, ProxyFault>()
  const seen: string[] = []
  const pending = new Set<Promise<unknown>>()
  const sockets = new Set<Socket>()
  const held = new Set<ServerResponse>()
  const upstream = new URL(target)
  const forward = async (req: IncomingMessage, body: Buffer): Promise<{ status: number, headers: Record<string, string>, body: Buffer }> => {
    return await new Promise((resolve, reject) => {
      const headers = { ...req.headers }
      const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const h: Record<string, string> = {}
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v
          resolve({ status: res.statusCode ?? 502, headers: h, body: Buffer.concat(chunks) })
        })
        res.on('error', reject)
      })
      out.on('error', reject)
      out.end(body)
    })
  }
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const action = new URLSearchParams(body.toString('utf8')).get('Action') ?? new URL(req.url ?? '/', 'http://x').searchParams.get('Action') ?? ''
      seen.push(action)
      const fault = faults.get(action)
      if (fault === 'stall') { held.add(res); return }
      if (fault === 'forward-then-stall') {
        held.add(res)
        const p = forward(req, body).catch(() => {})
        pending.add(p)
        void p.finally(() => pending.delete(p))
        return
      }
      if (fault !== undefined) {
        res.writeHead(fault.status, { 'content-type': 'text/xml' })
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message></Error></Errors><RequestID>test</RequestID></Response>`)
        return
      }
      forward(req, body).then((r) => {
        res.writeHead(r.status, r.headers)
        res.end(r.body)
      }, (err: Error) => {
        res.writeHead(502)
        res.end(err.message)
      })
    })
  })
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    faults,
    seen,
    settled: async () => { await Promise.all([...pending]) },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
