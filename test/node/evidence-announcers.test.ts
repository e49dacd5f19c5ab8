import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sha256 } from '@noble/hashes/sha2.js'
import { announcesEvidence, EVIDENCE_ANNOUNCERS } from '../../src/node/evidence-announcers.js'

// Stand-ins for peer ids and CIDs: only their bytes matter to the draw.
const bytesOf = (label: string): Uint8Array => sha256(new TextEncoder().encode(label))

describe('which auditors announce verified evidence on the DHT', () => {
  it('in a network no larger than the announcer count, every node announces', () => {
    const cid = bytesOf('cid')
    for (let i = 0; i < 50; i++) assert.equal(announcesEvidence(bytesOf(`peer${i}`), cid, EVIDENCE_ANNOUNCERS), true)
  })

  it('in larger networks about EVIDENCE_ANNOUNCERS nodes announce each CID, whatever the size', () => {
    for (const size of [100, 1000, 10_000]) {
      let total = 0
      const cids = 50
      for (let c = 0; c < cids; c++) {
        const cid = bytesOf(`cid${c}`)
        for (let i = 0; i < size; i++) if (announcesEvidence(bytesOf(`peer${i}`), cid, size)) total++
      }
      const mean = total / cids
      // 50 CIDs: the mean of 50 binomial draws with mean 8 lies within ±2 of it unless the draw is biased.
      assert.ok(mean > EVIDENCE_ANNOUNCERS - 2 && mean < EVIDENCE_ANNOUNCERS + 2, `size ${size}: ${mean} announcers per CID`)
    }
  })

  it('the choice is stable for a node and a CID, and differs between CIDs', () => {
    const peer = bytesOf('peer')
    const picks = Array.from({ length: 200 }, (_, c) => announcesEvidence(peer, bytesOf(`cid${c}`), 100))
    assert.deepEqual(picks, Array.from({ length: 200 }, (_, c) => announcesEvidence(peer, bytesOf(`cid${c}`), 100)))
    assert.ok(picks.some((x) => x) && picks.some((x) => !x))
  })
})
