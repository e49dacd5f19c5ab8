/**
 * The validator pipeline every gossip topic runs, in this order, cheapest first:
 *   size cap → per-origin rate limit → decode (CBOR, canonical, $type, schema, signature)
 *   → author is the gossip publisher → clock window → semantic (topic's own `admit`).
 * The verdict maps to gossipsub ACCEPT / IGNORE / REJECT, so peers relaying bad records lose score.
 */
import { TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { decodeRecord, checkClockWindow, type AnyRecordType, type ClockWindow, type SignedOf } from '../market/record.js'
import { peerIdFromDid } from '../market/identity.js'
import { RecordError } from '../market/errors.js'
import { RateLimiter, type RateLimit } from './rate-limit.js'
import { verdictForError, type GossipVerdict } from './verdict.js'

export interface GossipTopicInit<T extends AnyRecordType> {
  topic: string
  types: readonly T[]
  maxBytes: number
  window: ClockWindow
  rate: RateLimit
  /** Wall clock in ms; injected so tests can move time. */
  now: () => number
  /** Semantic step: the topic's own rules and state change. */
  admit: (record: SignedOf<T>, nowSecs: number) => { verdict: GossipVerdict, reason: string }
  log?: (line: string) => void
  /** Observes every verdict (metrics). */
  onVerdict?: (verdict: GossipVerdict, reason: string) => void
}

export interface TopicStats {
  accept: number
  ignore: number
  reject: number
  /** Counts by reason code (RECORD_*, RATE_LIMITED, AUTHOR_NOT_PUBLISHER, OVERSIZE, or admit's reason). */
  reasons: Record<string, number>
}

const RESULT: Record<GossipVerdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject
}

export class GossipTopic<T extends AnyRecordType> {
  readonly stats: TopicStats = { accept: 0, ignore: 0, reject: 0, reasons: {} }
  private readonly limiter: RateLimiter

  constructor (private readonly pubsub: GossipSub, private readonly init: GossipTopicInit<T>) {
    this.limiter = new RateLimiter(init.rate)
  }

  get topic (): string {
    return this.init.topic
  }

  start (): void {
    this.pubsub.topicValidators.set(this.init.topic, (source, msg) => RESULT[this.validate(source, msg)])
    this.pubsub.subscribe(this.init.topic)
  }

  stop (): void {
    this.pubsub.unsubscribe(this.init.topic)
    this.pubsub.topicValidators.delete(this.init.topic)
  }

  async publish (bytes: Uint8Array): Promise<number> {
    // The node sets allowPublishToZeroTopicPeers and ignoreDuplicatePublishError on gossipsub itself.
    const { recipients } = await this.pubsub.publish(this.init.topic, bytes)
    return recipients.length
  }

  /** Exposed for tests: the verdict for one message as `source` relayed it. */
  validate (source: PeerId, msg: Message): GossipVerdict {
    const { verdict, reason } = this.judge(source, msg)
    this.stats[verdict]++
    this.stats.reasons[reason] = (this.stats.reasons[reason] ?? 0) + 1
    this.init.onVerdict?.(verdict, reason)
    if (verdict !== 'accept') this.init.log?.(`${verdict} ${reason} from ${source.toString()} on ${this.init.topic}`)
    return verdict
  }

  private judge (source: PeerId, msg: Message): { verdict: GossipVerdict, reason: string } {
    if (msg.type !== 'signed') return { verdict: 'reject', reason: 'UNSIGNED' }
    if (msg.data.length > this.init.maxBytes) return { verdict: 'reject', reason: 'OVERSIZE' }
    const nowMs = this.init.now()
    const origin = msg.from.toString()
    const rate = this.limiter.take(origin, nowMs)
    if (rate !== 'ok') {
      // Only the origin itself is punished: an honest relay may have accepted under its own limiter.
      return { verdict: rate === 'reject' && source.equals(msg.from) ? 'reject' : 'ignore', reason: 'RATE_LIMITED' }
    }
    let record: SignedOf<T>
    try {
      record = decodeRecord(msg.data, this.init.types)
    } catch (err) {
      return { verdict: verdictForError(err), reason: err instanceof RecordError ? err.code : 'INTERNAL' }
    }
    // Records on gossip are published by their authors; anyone else's copy travels by sync.
    if (peerIdFromDid(record.author) !== origin) return { verdict: 'reject', reason: 'AUTHOR_NOT_PUBLISHER' }
    const nowSecs = Math.floor(nowMs / 1000)
    try {
      checkClockWindow(record, nowSecs, this.init.window)
    } catch (err) {
      return { verdict: verdictForError(err), reason: err instanceof RecordError ? err.code : 'INTERNAL' }
    }
    try {
      return this.init.admit(record, nowSecs)
    } catch (err) {
      this.init.log?.(`admit failed on ${this.init.topic}: ${(err as Error).message}`)
      return { verdict: 'ignore', reason: 'INTERNAL' }
    }
  }
}
