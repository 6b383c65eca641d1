// A second backend node for test/cross-node-wake.test.ts, run from the built package: it writes one
// deadline (a customer drops with a short window), says so on stdout, then idles until killed.
import { Redis } from 'ioredis'
import pg from 'pg'
import { createReconnectService } from '../../dist/index.js'
import { createPostgresStore } from '../../dist/postgres/index.js'
import { createRedisStore } from '../../dist/redis/index.js'

const [kind, url, namespace, settingsJson] = process.argv.slice(2)
const store =
  kind === 'redis'
    ? createRedisStore({ client: new Redis(url, { maxRetriesPerRequest: 1 }), prefix: namespace, announceDeadlines: true })
    : createPostgresStore({ pool: new pg.Pool({ connectionString: url, max: 2 }), table: namespace, announceDeadlines: true })
const service = createReconnectService({ settings: JSON.parse(settingsJson), store })
const chat = await service.start({ agentId: 'agent-1', customerId: 'customer-1' })
const dropped = await service.disconnect(chat.id)
process.stdout.write(`${JSON.stringify({ id: chat.id, deadline: dropped.nextDueAt })}\n`)
setInterval(() => {}, 60_000)
