import { CmeshError } from '../market/errors.js'

export interface ApiErrorMeta {
  /** The HTTP status the client sees (400–599; anything else is answered as 500). */
  status: number
}

/**
 * An answer a route handler chooses on purpose: the client sees `status` and
 * `{ "error": code, "message": message }`. The message reaches the client, so it names no secret.
 * Other typed errors (any CmeshError) become 400 with their own code; anything untyped is a 500.
 */
export class ApiError<Code extends string = string> extends CmeshError<Code, ApiErrorMeta> {
  // Same shape as CmeshError, but the status is not optional: every API error says what it is.
  constructor (code: Code, message: string, meta: ApiErrorMeta, options?: ErrorOptions) {
    super(code, message, meta, options)
  }
}
