export { BpfObject, type BpfObjectOptions } from './bpf-object.js';
export { BpfMap, BpfMapType, BPF_ANY, BPF_NOEXIST, BPF_EXIST, type BatchMode } from './bpf-map.js';
export { attachTc, detachTc, queryTc, destroyTcHook, type TcTarget, type TcAttachOptions, type TcDirection } from './tc.js';
export { RingBufferReader, type RecordHandler, type RingBufferStartOptions } from './ringbuf.js';
export { BpfLoadError, BpfSyscallError, BpfAttachError, errnoName, errorCodes } from './errors.js';
export * from './maps/layout.js';
export * from './maps/codec.js';
export { DropReason, DropReasonText, Verdict, ObservationPoint, FlowFlag, dropReasonName } from './reasons.js';
export { ensureBpffs, bpffsMounted, BPFFS } from './bpffs.js';
