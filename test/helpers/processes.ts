/** Real `cmesh start` processes (from source through tsx) for multi-process mesh tests. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../src/node/bin.ts', import.meta.url))
const tsx = import.meta.resolve('tsx')

export interface NodeProcess {
  child: ChildProcess
  dataDir: string
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

export async function startNodeProcess (args: string[], config: Record<string, unknown>): Promise<NodeProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-proc-'))
  await writeFile(join(dataDir, 'config.json'), JSON.stringify({ dataDir, ...config }))
  const child = spawn(process.execPath, ['--import', tsx, bin, 'start', '--config', join(dataDir, 'config.json'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CMESH_LOG: 'warn' }
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d) => { out += d })
  child.stderr?.setEncoding('utf8').on('data', (d) => { err += d })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, dataDir, stdout: () => out, stderr: () => err, exited }
}

/** The first listen address the node printed, once it has printed one. */
export async function listenAddress (p: NodeProcess, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const m = /listen:\s+(\S+)/.exec(p.stdout())
    if (m?.[1] !== undefined) return m[1]
    if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`node did not start: ${p.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function apiStatus (p: NodeProcess): Promise<any | undefined> {
  try {
    const { url, token } = JSON.parse(await readFile(join(p.dataDir, 'api.json'), 'utf8'))
    const res = await fetch(url + '/v1/status', { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
    return res.ok ? await res.json() : undefined
  } catch {
    return undefined
  }
}

/** SIGTERM, wait for a clean exit (SIGKILL after the grace period), remove the data dir. */
export async function stopNodeProcess (p: NodeProcess, graceMs = 15_000): Promise<number | null> {
  if (p.child.exitCode === null) p.child.kill('SIGTERM')
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs)
  const code = await p.exited
  clearTimeout(timer)
  await rm(p.dataDir, { recursive: true, force: true })
  return code
}

/**
 * Bob (a provider) and Alice (a requester bootstrapped to him) as `cmesh start` processes on a
 * fresh network, pushed onto `procs` for the caller's clean-up as each starts.
 */
export async function startBobAndAlice (procs: NodeProcess[], network: string): Promise<{ bob: NodeProcess, bobAddr: string, alice: NodeProcess, aliceAddr: string }> {
  const base = { network, dht: false, gossipHeartbeatMs: 200, syncIntervalSecs: 2 }
  const bob = await startNodeProcess([], { ...base, roles: ['provider'] })
  procs.push(bob)
  const bobAddr = await listenAddress(bob)
  const alice = await startNodeProcess(['--bootstrap', bobAddr], { ...base, roles: ['requester'] })
  procs.push(alice)
  return { bob, bobAddr, alice, aliceAddr: await listenAddress(alice) }
}
