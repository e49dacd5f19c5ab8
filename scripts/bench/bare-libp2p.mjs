// The memory floor of the fixed stack: a libp2p 3 node with the same transport, encrypter, muxer and
// services as a cmesh node (tcp, noise, yamux, identify, ping, gossipsub, kad-dht), none of cmesh's
// own code, on 127.0.0.1. Plain .mjs so no TypeScript loader sits in its heap. Prints "ready", then
// idles until SIGINT/SIGTERM. Run by scripts/bench/startup.ts beside `cmesh start`.
import '../../dist/src/node/polyfills.js'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { gossipsub } from '@libp2p/gossipsub'
import { kadDHT } from '@libp2p/kad-dht'

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping(), pubsub: gossipsub(), dht: kadDHT({ protocol: '/bare/kad/1.0.0', clientMode: false }) }
})
node.services.pubsub.subscribe('bare')
console.log(`ready ${node.getMultiaddrs()[0]?.toString()}`)
const stop = () => { void node.stop().then(() => process.exit(0)) }
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
