/**
 * gossipsub's options for cmesh: strict signing, content-addressed message ids, our scoring, and
 * the mesh/heartbeat settings, each with its reason. One place, so they can be tuned and measured
 * (scripts/bench/propagation.ts) without touching the rest of the libp2p assembly.
 */
import type { GossipsubOpts } from '@libp2p/gossipsub'
import { sha256 } from '@noble/hashes/sha2.js'
import { cidForBytes } from '../market/cbor.js'
import { concatBytes } from '../market/bytes.js'
import { scoreParams } from '../protocols/gossip-scoring.js'

export interface GossipOptionsInit {
  topics: string[]
  heartbeatMs?: number
  ipColocationWhitelist?: string[]
}

export function gossipOptions (init: GossipOptionsInit): Partial<GossipsubOpts> {
  return {
    globalSignaturePolicy: 'StrictSign',
    // Message id = sha256(publisher ‖ record CID): the same record from its author is one message
    // however often it is sent, and a copy re-signed by someone else cannot squat the id (gossipsub
    // marks ids seen before our validator runs, which would let a fast forger censor the original).
    msgIdFn: (msg) => msg.type === 'signed'
      ? sha256(concatBytes(msg.from.toMultihash().bytes, cidForBytes(msg.data).bytes))
      : cidForBytes(msg.data).bytes,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    emitSelf: false,
    heartbeatInterval: init.heartbeatMs ?? 1000,
    // A limit on whole RPC frames, which batch many messages (IWANT answers); each message is
    // capped by its topic's validator (16 KiB cards, 4 KiB RFPs).
    maxInboundDataLength: 1024 * 1024,
    scoreParams: scoreParams(init.topics, init.ipColocationWhitelist ?? ['127.0.0.1', '::1']),
    allowedTopics: init.topics
  }
}
