// Original file: proto/observer.proto

import type { Verdict as _weft_observer_v1_Verdict, Verdict__Output as _weft_observer_v1_Verdict__Output } from '../../../weft/observer/v1/Verdict';
import type { TCPFlags as _weft_observer_v1_TCPFlags, TCPFlags__Output as _weft_observer_v1_TCPFlags__Output } from '../../../weft/observer/v1/TCPFlags';
import type { TrafficDirection as _weft_observer_v1_TrafficDirection, TrafficDirection__Output as _weft_observer_v1_TrafficDirection__Output } from '../../../weft/observer/v1/TrafficDirection';

/**
 * A flow matches a filter when it matches every field the filter sets; a field with several values
 * matches when any does. A request's flow passes when it matches any allow filter (or there is
 * none) and no deny filter.
 */
export interface FlowFilter {
  /**
   * "namespace/" (every pod of it) or "namespace/pod"; a pod name without a namespace matches any.
   */
  'sourcePod'?: (string)[];
  'destinationPod'?: (string)[];
  'sourceNamespace'?: (string)[];
  'destinationNamespace'?: (string)[];
  /**
   * Label selectors: "key=value", "key" (exists), "!key", "key!=value", comma-separated all must hold;
   * a key without a source matches it in any source (app=web matches k8s:app=web).
   */
  'sourceLabel'?: (string)[];
  'destinationLabel'?: (string)[];
  'sourceIdentity'?: (number)[];
  'destinationIdentity'?: (number)[];
  /**
   * An address or a CIDR.
   */
  'sourceIp'?: (string)[];
  'destinationIp'?: (string)[];
  'sourcePort'?: (number)[];
  'destinationPort'?: (number)[];
  /**
   * "namespace/name" of the Service the packet was sent to.
   */
  'destinationService'?: (string)[];
  'sourceCluster'?: (string)[];
  'destinationCluster'?: (string)[];
  /**
   * TCP, UDP, ICMP, SCTP (case-insensitive).
   */
  'protocol'?: (string)[];
  'verdict'?: (_weft_observer_v1_Verdict)[];
  /**
   * Drop reason names.
   */
  'dropReason'?: (string)[];
  /**
   * The cluster and node that saw the flow; a node name may end in "*".
   */
  'cluster'?: (string)[];
  'node'?: (string)[];
  'encrypted'?: (boolean)[];
  /**
   * Matches when the flow's flags include every flag one of these sets.
   */
  'tcpFlags'?: (_weft_observer_v1_TCPFlags)[];
  'trafficDirection'?: (_weft_observer_v1_TrafficDirection)[];
  'reply'?: (boolean)[];
  /**
   * The deciding rule, as Flow.policy names it.
   */
  'policy'?: (string)[];
}

/**
 * A flow matches a filter when it matches every field the filter sets; a field with several values
 * matches when any does. A request's flow passes when it matches any allow filter (or there is
 * none) and no deny filter.
 */
export interface FlowFilter__Output {
  /**
   * "namespace/" (every pod of it) or "namespace/pod"; a pod name without a namespace matches any.
   */
  'sourcePod': (string)[];
  'destinationPod': (string)[];
  'sourceNamespace': (string)[];
  'destinationNamespace': (string)[];
  /**
   * Label selectors: "key=value", "key" (exists), "!key", "key!=value", comma-separated all must hold;
   * a key without a source matches it in any source (app=web matches k8s:app=web).
   */
  'sourceLabel': (string)[];
  'destinationLabel': (string)[];
  'sourceIdentity': (number)[];
  'destinationIdentity': (number)[];
  /**
   * An address or a CIDR.
   */
  'sourceIp': (string)[];
  'destinationIp': (string)[];
  'sourcePort': (number)[];
  'destinationPort': (number)[];
  /**
   * "namespace/name" of the Service the packet was sent to.
   */
  'destinationService': (string)[];
  'sourceCluster': (string)[];
  'destinationCluster': (string)[];
  /**
   * TCP, UDP, ICMP, SCTP (case-insensitive).
   */
  'protocol': (string)[];
  'verdict': (_weft_observer_v1_Verdict__Output)[];
  /**
   * Drop reason names.
   */
  'dropReason': (string)[];
  /**
   * The cluster and node that saw the flow; a node name may end in "*".
   */
  'cluster': (string)[];
  'node': (string)[];
  'encrypted': (boolean)[];
  /**
   * Matches when the flow's flags include every flag one of these sets.
   */
  'tcpFlags': (_weft_observer_v1_TCPFlags__Output)[];
  'trafficDirection': (_weft_observer_v1_TrafficDirection__Output)[];
  'reply': (boolean)[];
  /**
   * The deciding rule, as Flow.policy names it.
   */
  'policy': (string)[];
}
