/** Small hooks the pages share. */
import { useEffect, useState } from '/ui/vendor/htm-preact.mjs'
import { getConnection, onConnection } from './connection.js'

/** `value`, once it has stopped changing for `ms`: typing in a filter costs one request, not one per key. */
export function useDebounced (value, ms = 400) {
  const [settled, setSettled] = useState(value)
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms)
    return () => clearTimeout(t)
  }, [value, ms])
  return settled
}

/** The connection state ({ reach, live }), re-rendering when it changes. */
export function useConnection () {
  const [state, setState] = useState(getConnection)
  useEffect(() => onConnection(() => setState(getConnection())), [])
  return state
}

/** The location hash, re-rendering when it changes. */
export function useHash () {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const onChange = () => setHash(location.hash)
    addEventListener('hashchange', onChange)
    return () => removeEventListener('hashchange', onChange)
  }, [])
  return hash
}
