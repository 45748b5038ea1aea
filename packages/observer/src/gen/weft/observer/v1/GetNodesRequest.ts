// Original file: proto/observer.proto


export interface GetNodesRequest {
}

export interface GetNodesRequest__Output {
}
