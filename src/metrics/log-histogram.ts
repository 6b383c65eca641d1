// A fixed-size histogram with logarithmic buckets (the idea behind DDSketch and HdrHistogram):
// every bucket covers (γ^(i-1), γ^i], and a value read back from its bucket is within
// RELATIVE_ACCURACY of any value that fell into it. Memory is one Float64Array, whatever the count.

/** Relative accuracy of a percentile read from the histogram (1 %; the metrics promise 2 %). */
export const RELATIVE_ACCURACY = 0.01

const GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
const LOG_GAMMA = Math.log(GAMMA)

/** Largest value (ms) kept at full accuracy: about 116 days, far beyond the 7-day longest window. */
export const HISTOGRAM_MAX_VALUE = 1e10

// Bucket 0 holds 0 (values are whole milliseconds); bucket i ≥ 1 holds (γ^(i-2), γ^(i-1)].
const BUCKETS = Math.ceil(Math.log(HISTOGRAM_MAX_VALUE) / LOG_GAMMA) + 2

/** Percentiles of a histogram; `null` while it is empty. */
export interface HistogramSummary {
  count: number
  p50: number | null
  p90: number | null
  p99: number | null
  max: number | null
}

/** A log-bucket histogram of non-negative millisecond values. */
export interface LogHistogram {
  add(ms: number): void
  summary(): HistogramSummary
  clear(): void
}

/** Creates an empty histogram (about 9 KB, fixed). */
export function createLogHistogram(): LogHistogram {
  // Float64 counts stay exact to 2^53 values: "whatever the traffic" in practice.
  const counts = new Float64Array(BUCKETS)
  let count = 0
  let min = Infinity
  let max = -Infinity

  function bucketOf(value: number): number {
    if (!(value > 0)) return 0
    const index = Math.ceil(Math.log(value) / LOG_GAMMA) + 1
    return index < 1 ? 1 : index >= BUCKETS ? BUCKETS - 1 : index
  }

  /** The value of rank `rank` (1-based), within the relative accuracy, clamped to what was seen. */
  function valueAtRank(rank: number): number {
    let seen = 0
    let index = 0
    for (; index < BUCKETS; index += 1) {
      seen += counts[index]!
      if (seen >= rank) break
    }
    const estimate = index === 0 ? 0 : (2 * GAMMA ** (index - 1)) / (GAMMA + 1)
    return Math.min(max, Math.max(min, estimate))
  }

  function percentile(q: number): number | null {
    return count === 0 ? null : valueAtRank(Math.max(1, Math.ceil(q * count)))
  }

  return {
    add(ms) {
      const value = ms > 0 ? Math.round(ms) : 0
      counts[bucketOf(value)]! += 1
      count += 1
      if (value < min) min = value
      if (value > max) max = value
    },
    summary() {
      return { count, p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), max: count === 0 ? null : max }
    },
    clear() {
      counts.fill(0)
      count = 0
      min = Infinity
      max = -Infinity
    },
  }
}
