// The kvstore, retry and logging surface this package uses, in one place.
export { cmp, op, PrefixWatcher, type KvClient, type WatchEvent, type TxnOp, type Compare, type KeyValue } from '@weft/kvstore';
export { Backoff, sleep, type Logger } from '@weft/common';
