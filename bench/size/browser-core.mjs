// What a chat widget in the browser needs: the return policy and the reconnect links, without the
// service, the stores or the XState machine. `size-limit` bundles this file from the built package
// to hold that part of the library to its budget (see .size-limit.json and the README).
export {
  buildReconnectUrl,
  consumeReconnectId,
  createReconnectId,
  decideReturn,
  expandQuickReply,
  readReconnectId,
} from '../../dist/index.js'
