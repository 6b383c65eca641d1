export { createPostgresStore } from './postgres-store'
export type {
  PostgresListenClient,
  PostgresPool,
  PostgresPoolClient,
  PostgresQueryConfig,
  PostgresQueryResult,
  PostgresStore,
  PostgresStoreOptions,
} from './postgres-store'
export type { RetentionBackfill, RetentionBackfillResult } from '../../store/retention-backfill'
export { POSTGRES_DEFAULT_TABLE, postgresSchema } from './schema'
