import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { parseSize, tryParseSize, isSize, sizeToMiB, sizeToGiB, formatBytes, formatMiB, formatGiB } from '../../src/market/index.js'

describe('lexicon sizes', () => {
  it('parses the lexicon examples with binary units', () => {
    assert.deepEqual(parseSize('512M'), { value: 512, unit: 'M', bytes: 512n << 20n })
    assert.equal(parseSize('4G').bytes, 4n << 30n)
    assert.equal(parseSize('500G').bytes, 500n << 30n)
    assert.equal(parseSize('1T').bytes, 1n << 40n)
    assert.equal(parseSize('8K').bytes, 8192n)
  })

  it('refuses everything but a positive integer and one of K/M/G/T', () => {
    for (const bad of ['', 'G', '4', '0G', '00G', '04G', '1.5G', '4 G', ' 4G', '4G ', '4g', '4GB', '4Gi', '4GiB', '-4G', '+4G', '4P', '4E', '4B', '１G', '4\nG', '1e3G', '0x10G', '16777216T', '9999999999999999K']) {
      assert.equal(isSize(bad), false, JSON.stringify(bad))
      assert.equal(tryParseSize(bad), undefined)
      assert.throws(() => parseSize(bad), TypeError)
    }
    for (const bad of [4, null, undefined, {}, ['4G']]) assert.equal(isSize(bad), false)
  })

  it('converts to whole MiB / GiB, rounding up', () => {
    assert.equal(sizeToMiB('512M'), 512)
    assert.equal(sizeToMiB('4G'), 4096)
    assert.equal(sizeToMiB('512K'), 1)
    assert.equal(sizeToMiB('1025K'), 2)
    assert.equal(sizeToGiB('500M'), 1)
    assert.equal(sizeToGiB('1T'), 1024)
    assert.equal(sizeToGiB('10G'), 10)
  })

  it('formats with the largest exact unit', () => {
    assert.equal(formatMiB(512), '512M')
    assert.equal(formatMiB(4096), '4G')
    assert.equal(formatGiB(1024), '1T')
    assert.equal(formatGiB(1536), '1536G')
    assert.equal(formatBytes(1024), '1K')
    assert.throws(() => formatBytes(0), TypeError)
    assert.throws(() => formatBytes(1000), TypeError)
  })

  it('format ∘ parse is the identity on canonical spellings (fast-check)', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: (1n << 43n) - 1n }), (kib) => {
      const text = formatBytes(kib * 1024n)
      assert.equal(parseSize(text).bytes, kib * 1024n)
      assert.equal(formatBytes(parseSize(text).bytes), text)
    }))
  })
})
