// The kvstore and logging surface this package uses, in one place.
export { cmp, op, PrefixWatcher, type KvClient, type WatchEvent, type TxnOp } from '@weft/kvstore';
export type { Logger } from '@weft/common';
