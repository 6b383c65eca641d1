export { createPostgresStore } from './postgres-store'
export type {
  PostgresListenClient,
  PostgresPool,
  PostgresPoolClient,
  PostgresQueryResult,
  PostgresStore,
  PostgresStoreOptions,
} from './postgres-store'
export { POSTGRES_DEFAULT_TABLE, postgresSchema } from './schema'
