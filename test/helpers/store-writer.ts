/**
 * Child process for the crash test: stores cards one by one and prints `ack <n>` after each
 * put resolves. The parent SIGKILLs it mid-stream and checks every acknowledged card survived.
 */
import { NodeStore } from '../../src/node/store.js'
import { cardAt, testIdentity, T0 } from './cards.js'

const [dir, countText] = process.argv.slice(2)
const store = new NodeStore(dir as string)
await store.open()
const count = Number(countText)
const cards = Array.from({ length: count }, (_, i) => cardAt(testIdentity(1000 + i), T0))
process.stdout.write('ready\n')
for (let i = 0; i < count; i++) {
  await store.putRecord(cards[i]!)
  process.stdout.write(`ack ${i}\n`)
}
await new Promise(() => {}) // wait to be killed
