// defineSettings with a long redirectAllowlist: the check must be linear in the number of origins
// (it was quadratic: 20 000 origins took 4.6 s). Same-run ratio of the time per origin for a list
// ten times longer; a linear check keeps it near 1×, a quadratic one near 10×.
import { compare, importDist, main, row } from './lib.mjs'

const lib = await importDist()

const origins = (n) => Array.from({ length: n }, (_, i) => `https://shop-${i}.example`)

async function run() {
  const small = 2_000
  const large = 20_000
  const lists = { [small]: origins(small), [large]: origins(large) }
  const input = (n) => ({ redirectAllowlist: lists[n], redirectUrl: `https://shop-${n - 1}.example/bye` })
  let sink = 0
  const results = await compare([
    { name: `${small} origins`, batch: small, fn: () => void (sink += lib.defineSettings(input(small)).redirectAllowlist.length) },
    { name: `${large} origins`, batch: large, fn: () => void (sink += lib.defineSettings(input(large)).redirectAllowlist.length) },
  ])
  if (sink === 0) throw new Error('unreachable')
  // ops/s here are origins checked per second; the ratio is how much slower each origin is in the long list.
  const ratio = results[`${small} origins`] / results[`${large} origins`]
  return [
    row({
      name: `defineSettings: ${large.toLocaleString('en-US')}-origin redirectAllowlist`,
      value: 1000 * (large / results[`${large} origins`]),
      unit: 'ms',
      baseline: `time per origin vs ${small.toLocaleString('en-US')} origins`,
      baselineValue: 1000 * (small / results[`${small} origins`]),
      ratio,
      target: '≤ 2× per origin (linear)',
      met: ratio <= 2,
      note: 'baseline is the whole call with the short list; the ratio compares time per origin, so a quadratic check would show about 10×',
    }),
  ]
}

await main(import.meta.url, run)
