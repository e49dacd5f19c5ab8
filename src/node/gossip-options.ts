/**
 * gossipsub's options for cmesh: strict signing, content-addressed message ids, our scoring, and
 * the mesh/heartbeat settings, each with its reason. One place, so they can be tuned and measured
 * (scripts/bench/propagation.ts) without touching the rest of the libp2p assembly.
 */
import { createHash } from 'node:crypto'
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
    // A repeat copy is recognised by a hash of its bytes before its envelope signature is checked;
    // a first copy still goes the whole way. Only signature-valid messages enter this cache, and
    // equal fast ids mean byte-equal author, seqno and data, so a forger cannot squat an id here.
    fastMsgIdFn: fastMessageId,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    emitSelf: false,
    heartbeatInterval: init.heartbeatMs ?? 1000,
    // Mesh degree, measured with scripts/bench/propagation.ts (docs/BENCHMARKS.md): a message
    // reaches a node about once per mesh neighbour, so duplicates grow with D, while the hops to
    // reach N nodes shrink only as log(N)/log(D − 1). At N = 100, D = 6 gave ≈ 6 duplicates per
    // delivery; 4 keeps the hops at ≈ 4 and halves the copies each node must decode and check.
    D: 4,
    // Graft up to D when below 3: one lost neighbour does not trigger grafting at once.
    Dlo: 3,
    // Prune back to D above 6 (the default 12 lets inbound grafts double the copies a node gets).
    Dhi: 6,
    // Of the peers kept after a prune, 2 by score and the rest at random: a high score alone can
    // be farmed by an attacker to fill a mesh.
    Dscore: 2,
    // At least 2 mesh peers we dialled ourselves (must stay below Dlo and at most D / 2): inbound
    // sybils cannot take the whole mesh.
    Dout: 2,
    // IHAVE gossip to 3 non-mesh peers a heartbeat (or gossipFactor of them if more): the repair
    // path for a copy the mesh lost, kept small because every IHAVE costs its receiver a lookup.
    Dlazy: 3,
    gossipFactor: 0.15,
    // The author sends to its mesh only, not to every connected peer: flood-publish made the
    // origin the source of ≈ one copy per connection (dozens with the DHT on), most of them duplicates.
    floodPublish: false,
    // A limit on whole RPC frames, which batch many messages (IWANT answers); each message is
    // capped by its topic's validator (16 KiB cards, 4 KiB RFPs).
    maxInboundDataLength: 1024 * 1024,
    scoreParams: scoreParams(init.topics, init.ipColocationWhitelist ?? ['127.0.0.1', '::1']),
    allowedTopics: init.topics
  }
}

/** sha256 over the author, seqno and data of a gossip message, each length-prefixed. */
function fastMessageId (msg: { from?: Uint8Array, seqno?: Uint8Array, data?: Uint8Array }): string {
  const hash = createHash('sha256')
  for (const part of [msg.from, msg.seqno, msg.data]) {
    const bytes = part ?? new Uint8Array(0)
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    hash.update(length).update(bytes)
  }
  return hash.digest('base64')
}
