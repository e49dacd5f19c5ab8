export * from './backend.js'
export * from './ssh-keys.js'
export * from './local-dev.js'
