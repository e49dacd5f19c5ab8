/**
 * libp2p 3 assembled for cmesh: tcp + noise + yamux, identify, ping, gossipsub (strict signing,
 * content-addressed message ids, our scoring), kad-dht under our own protocol id in server mode,
 * bootstrap. Everything a loopback or NAT deployment trips on is set here, with the reason.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { bootstrap } from '@libp2p/bootstrap'
import type { PrivateKey } from '@libp2p/interface'
import { protocolId, topicName } from '../protocols/names.js'
import { gossipOptions } from './gossip-options.js'
import { DialBackoff, withDialBackoff } from './dial-backoff.js'

export interface MeshServices {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht?: KadDHT
}

export type MeshLibp2p = Libp2p<MeshServices & Record<string, unknown>>

export interface MeshLibp2pInit {
  privateKey: PrivateKey
  network: string
  listen: string[]
  announce?: string[]
  bootstrap?: string[]
  heartbeatMs?: number
  ipColocationWhitelist?: string[]
  dht?: boolean
  /**
   * Sees every byte this node receives, decrypted, on every connection (all protocols, gossip
   * included). For tests and wire debugging: it is how a test proves what a node never saw.
   */
  wireTap?: (chunk: Uint8Array) => void
  /** Remembers failed addresses (dial-backoff.ts); one per node unless a test shares or inspects it. */
  dialBackoff?: DialBackoff
}

/** Liveness ping per connection (libp2p's default 10 s was, with the DHT, the largest idle cost). */
export const CONNECTION_PING_INTERVAL_MS = 30_000

/** Noise, with every decrypted inbound chunk also handed to `tap`. */
function tappedEncrypter (factory: ReturnType<typeof noise>, tap: (chunk: Uint8Array) => void): ReturnType<typeof noise> {
  return (components) => {
    const inner = factory(components)
    const watch = <T extends { connection: { addEventListener: (type: 'message', fn: (evt: { data: Uint8Array | { subarray: () => Uint8Array } }) => void) => void } }>(secured: T): T => {
      secured.connection.addEventListener('message', (evt) => { tap(evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()) })
      return secured
    }
    return {
      ...inner,
      protocol: inner.protocol,
      secureInbound: async (conn, options) => watch(await inner.secureInbound(conn, options)),
      secureOutbound: async (conn, options) => watch(await inner.secureOutbound(conn, options))
    }
  }
}

export async function createMeshLibp2p (init: MeshLibp2pInit): Promise<MeshLibp2p> {
  const topics = [topicName(init.network, 'cards'), topicName(init.network, 'rfps'), topicName(init.network, 'trust')]
  const services: Record<string, any> = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub(gossipOptions({ topics, ...(init.heartbeatMs !== undefined ? { heartbeatMs: init.heartbeatMs } : {}), ...(init.ipColocationWhitelist !== undefined ? { ipColocationWhitelist: init.ipColocationWhitelist } : {}) }))
  }
  if (init.dht !== false) {
    services.dht = kadDHT({
      // Never the public IPFS DHT: our own protocol id per network.
      protocol: protocolId(init.network, 'kad'),
      // Left unset, a node on a private address stays a client forever and answers nobody.
      clientMode: false,
      // The default mapper drops private addresses, which leaves a loopback/LAN routing table empty.
      peerInfoMapper: passthroughMapper
    })
  }
  // Entries are checked (each names its peer id) where config is read.
  const bootstrapList = init.bootstrap ?? []
  return await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen, ...(init.announce !== undefined && init.announce.length > 0 ? { announce: init.announce } : {}) },
    transports: [withDialBackoff(tcp(), init.dialBackoff ?? new DialBackoff())],
    connectionEncrypters: [init.wireTap !== undefined ? tappedEncrypter(noise(), init.wireTap) : noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Inbound connections are rate-limited per IP (5/s by default); every local node shares 127.0.0.1.
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128'],
      maxConnections: 300
    },
    connectionMonitor: { pingInterval: CONNECTION_PING_INTERVAL_MS },
    // Dialled as soon as libp2p is up (the module's default waits a second, this once waited 100 ms):
    // services registering after that still see the connection (sync-scheduler catches up on start).
    peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList, timeout: 0 })] : [],
    services
  }) as unknown as MeshLibp2p
}
