export { couldOfferResumable, decidePromptAnswer, decideReturn, isResumable, lostReason } from './decide-return'
export type { DecidePromptAnswerInput, DecideReturnInput } from './decide-return'
