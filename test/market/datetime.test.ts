import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parseDatetimeMs, isDatetime, datetimeFromUnixSecs } from '../../src/market/datetime.js'

describe('RFC 3339 datetimes', () => {
  it('reads years 0-99 as such (Date.UTC would make them 1900-1999)', () => {
    assert.equal(parseDatetimeMs('0070-01-01T00:00:00.000Z'), new Date('0070-01-01T00:00:00.000Z').getTime())
    assert.notEqual(parseDatetimeMs('0070-01-01T00:00:00.000Z'), 0)
  })

  it('round-trips what we write, honours offsets, refuses -00:00 and impossible dates', () => {
    assert.equal(parseDatetimeMs(datetimeFromUnixSecs(1_800_000_000)), 1_800_000_000_000)
    assert.equal(parseDatetimeMs('2027-01-15T10:00:00+02:00'), Date.UTC(2027, 0, 15, 8))
    assert.equal(isDatetime('2027-01-15T10:00:00-00:00'), false)
    assert.equal(isDatetime('2027-02-29T00:00:00Z'), false)
  })
})
