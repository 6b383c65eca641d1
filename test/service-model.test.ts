import { afterAll, describe, it } from 'vitest'
import { runModel } from './support/service-model'
import { closeStores, storeKinds } from './support/stores'

// The service against a small model of it (test/support/service-model.ts), command by command.

afterAll(closeStores)

// The memory store gets the most runs; the shared stores run the same model on real servers.
describe.each(storeKinds())('service against a model, on the $name store', (kind) => {
  const runs = kind.name === 'memory' ? 150 : 40

  it('matches the model with reconnect on', async () => {
    await runModel({ enabled: true }, kind, runs)
  })

  it('matches the model with reconnect on for signed-in customers (prompt)', async () => {
    await runModel({ enabled: true, authenticated: true }, kind, runs)
  })

  it('matches the model with reconnect off', async () => {
    await runModel({ enabled: false }, kind, runs)
  })
})
