export { MANUAL_CLOCK_EPOCH, createManualClock } from './manual-clock'
export type { ManualClock } from './manual-clock'
export { sampleRecord, storeContract } from './store-contract'
export type { StoreContractCase, StoreContractOptions } from './store-contract'
export {
  durationInputArbitrary,
  lifecycleCommandsArbitrary,
  replayLifecycleCommands,
  returnRequestArbitrary,
  settingsInputArbitrary,
} from './arbitraries'
export type {
  DurationInputArbitraryOptions,
  LifecycleCommand,
  LifecycleCommandsArbitraryOptions,
  LifecycleOutcome,
  LifecycleReplay,
  ReplayLifecycleOptions,
  ReturnRequestArbitraryOptions,
  SettingsInputArbitraryOptions,
} from './arbitraries'
