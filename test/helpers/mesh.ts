/** In-process cmesh nodes on 127.0.0.1 with random ports and temporary data dirs. */
import '../../src/node/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig, type NodeConfigInput } from '../../src/node/config.js'
import { createLogger } from '../../src/node/logger.js'

export const quietLog = createLogger('test', (process.env.CMESH_LOG as any) ?? 'silent')

/** A network name of its own per test, so parallel test files never hear each other. */
export function testNetwork (): string {
  return `t${randomBytes(4).toString('hex')}`
}

export async function waitFor (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

export class TestMesh {
  readonly nodes: CmeshNode[] = []
  private readonly dirs: string[] = []
  readonly network = testNetwork()

  async node (config: NodeConfigInput = {}, options: { dataDir?: string, api?: boolean, wireTap?: (chunk: Uint8Array) => void, now?: () => number } = {}): Promise<CmeshNode> {
    const dataDir = options.dataDir ?? await mkdtemp(join(tmpdir(), 'cmesh-node-'))
    if (options.dataDir === undefined) this.dirs.push(dataDir)
    const node = new CmeshNode({
      config: resolveConfig({ network: this.network, dataDir, gossipHeartbeatMs: 100, dht: false, ...config }),
      log: quietLog,
      api: options.api ?? false,
      ...(options.now !== undefined ? { now: options.now } : {}),
      ...(options.wireTap !== undefined ? { wireTap: options.wireTap } : {})
    })
    await node.start()
    this.nodes.push(node)
    return node
  }

  async stopNode (node: CmeshNode): Promise<void> {
    const i = this.nodes.indexOf(node)
    if (i >= 0) this.nodes.splice(i, 1)
    await node.stop()
  }

  addrOf (node: CmeshNode): string {
    const addr = node.libp2p.getMultiaddrs()[0]
    if (addr === undefined) throw new Error('node has no address')
    return addr.toString()
  }

  async connect (a: CmeshNode, b: CmeshNode): Promise<void> {
    await a.libp2p.dial(b.libp2p.getMultiaddrs())
  }

  async cleanup (): Promise<void> {
    await Promise.allSettled(this.nodes.splice(0).map((n) => n.stop()))
    await Promise.allSettled(this.dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
  }
}

/** Waits until `node` has `count` peers in its gossip mesh for `topic`. */
export async function waitForMesh (node: CmeshNode, topic: string, count: number): Promise<void> {
  const pubsub = node.libp2p.services.pubsub as unknown as { getMeshPeers: (t: string) => string[] }
  await waitFor(`${count} mesh peers on ${topic}`, () => pubsub.getMeshPeers(topic).length >= count)
}
