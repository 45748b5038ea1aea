// Original file: proto/observer.proto


export interface ServerStatusRequest {
}

export interface ServerStatusRequest__Output {
}
