// A backend node for test/outbox-faults.test.ts, run from the built package: it writes lifecycles
// whose events its onEvent never finishes taking (so none is acked), says what it wrote on stdout,
// then idles until the test kills it with SIGKILL.
import { Redis } from 'ioredis'
import pg from 'pg'
import { createReconnectService } from '../../dist/index.js'
import { createPostgresStore } from '../../dist/postgres/index.js'
import { createRedisStore } from '../../dist/redis/index.js'

const [kind, url, namespace, settingsJson, count, redeliverMs] = process.argv.slice(2)
const store =
  kind === 'redis'
    ? createRedisStore({ client: new Redis(url, { maxRetriesPerRequest: 1 }), prefix: namespace })
    : createPostgresStore({ pool: new pg.Pool({ connectionString: url, max: 2 }), table: namespace })
let told = 0
const service = createReconnectService({
  settings: JSON.parse(settingsJson),
  store,
  outboxRedeliverAfterMs: Number(redeliverMs),
  // The host takes each event and hangs: the node dies before any of them is acked.
  onEvent: () => {
    told += 1
    return new Promise(() => {})
  },
})
const ids = []
for (let i = 0; i < Number(count); i += 1) {
  const chat = await service.start({ agentId: `agent-${i % 2}` })
  ids.push(chat.id)
  if (i % 3 >= 1) await service.endByAgent(chat.id)
  if (i % 3 === 2) await service.closeByAgent(chat.id)
}
process.stdout.write(`${JSON.stringify({ ids, told })}\n`)
setInterval(() => {}, 60_000)
