export { createRedisStore } from './redis-store'
export type { RedisStore, RedisStoreOptions } from './redis-store'
export type { RetentionBackfill, RetentionBackfillResult } from '../../store/retention-backfill'
export { DEFAULT_REDIS_PREFIX } from './keys'
