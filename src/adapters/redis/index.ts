export { createRedisStore } from './redis-store'
export type { RedisStoreOptions } from './redis-store'
export { DEFAULT_REDIS_PREFIX } from './keys'
