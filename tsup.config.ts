import { defineConfig } from 'tsup'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    'redis/index': 'src/adapters/redis/index.ts',
    'postgres/index': 'src/adapters/postgres/index.ts',
    'metrics/index': 'src/metrics/index.ts',
    'http/index': 'src/http/index.ts',
    'browser/index': 'src/browser/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2022',
  platform: 'neutral',
  treeshake: true,
  splitting: true,
  external: ['xstate', 'nanoid', 'date-fns', 'fast-check', 'ioredis', 'pg'],
})
