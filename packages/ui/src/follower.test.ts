// FlowFollower against fake observers: following, retrying with backoff after a failure or an
// ended stream, resuming from the last flow without counting one twice, a server that stops answering.
import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { makeFlow, ObserverUnavailableError, type Flow, type GetFlowsRequestInput, type GetFlowsResponse, type ServerStatus } from '@weft/observer';
import { FlowFollower, type FlowSource } from './follower.js';
import type { FollowStatus } from './types.js';

type Step = (onResponse: (r: GetFlowsResponse) => void, signal: AbortSignal) => Promise<void>;

const response = (flow: Flow): GetFlowsResponse => ({ flow, lostEvents: null, nodeStatus: null, cluster: flow.cluster, node: flow.node, time: flow.time, response_types: 'flow' } as GetFlowsResponse);
const flowAt = (s: number, port = 8081): Flow => makeFlow({ time: { seconds: 1_700_000_000 + s, nanos: 0 }, destination: { port } });
/** Stays open until aborted, after sending these. */
const open = (...flows: Flow[]): Step => (onResponse, signal) => {
  flows.forEach((f) => onResponse(response(f)));
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
};
const fail = (message: string, ...flows: Flow[]): Step => async (onResponse) => {
  flows.forEach((f) => onResponse(response(f)));
  throw new ObserverUnavailableError('unix:///relay.sock', message);
};

class FakeSource implements FlowSource {
  readonly requests: GetFlowsRequestInput[] = [];
  statusFails = false;
  constructor(private readonly steps: Step[]) {}
  getFlows(request: GetFlowsRequestInput, onResponse: (r: GetFlowsResponse) => void, signal?: AbortSignal): Promise<void> {
    this.requests.push(request);
    return (this.steps.shift() ?? open())(onResponse, signal!);
  }
  async serverStatus(): Promise<ServerStatus> {
    if (this.statusFails) throw new ObserverUnavailableError('unix:///relay.sock', 'connect ENOENT');
    return { numConnectedNodes: 3, unavailableNodes: ['c2/c2-node2'], numUnavailableNodes: 1 } as ServerStatus;
  }
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('FlowFollower', () => {
  let follower: FlowFollower | undefined;
  afterEach(async () => follower?.stop());

  function follow(source: FakeSource, statusEveryMs = 1000): { flows: Flow[]; states: FollowStatus[][] } {
    const flows: Flow[] = [];
    const states: FollowStatus[][] = [];
    follower = new FlowFollower({
      sources: [{ name: 'c1/relay', client: source }],
      sinceMs: 1_700_000_000_000,
      onFlow: (f) => flows.push(f),
      onStatus: (s) => states.push(s),
      backoff: { initialMs: 10, maxMs: 40, random: () => 0.5 },
      statusEveryMs,
      log: silentLogger(),
    });
    follower.start();
    return { flows, states };
  }

  it('follows from --since, and is following once the server answers, with the relay\'s nodes', async () => {
    const source = new FakeSource([open(flowAt(1), flowAt(2))]);
    const { flows } = follow(source);
    await until(() => follower!.status()[0]!.state === 'following' && flows.length === 2, 'following');
    assert.deepEqual(source.requests, [{ follow: true, since: { seconds: 1_700_000_000, nanos: 0 } }]);
    const s = follower!.status()[0]!;
    assert.deepEqual([s.source, s.flows, s.connectedNodes, s.unavailableNodes, s.error, s.lastFlowMs], ['c1/relay', 2, 3, ['c2/c2-node2'], '', 1_700_000_002_000]);
    await follower!.stop();
    assert.equal(follower!.status()[0]!.state, 'stopped');
  });

  it('retries after a failure with the error shown, from the last flow on, counting none twice', async () => {
    const source = new FakeSource([fail('connect ENOENT /run/relay.sock', flowAt(1), flowAt(2)), fail('still down'), open(flowAt(2), flowAt(3))]);
    const { flows, states } = follow(source);
    await until(() => flows.length === 3, 'the third flow');
    assert.deepEqual(flows.map((f) => f.time!.seconds - 1_700_000_000), [1, 2, 3]);
    assert.deepEqual(source.requests.slice(1).map((r) => r.since), [{ seconds: 1_700_000_002, nanos: 0 }, { seconds: 1_700_000_002, nanos: 0 }]);
    const retrying = states.map((s) => s[0]!).filter((s) => s.state === 'retrying');
    assert.ok(retrying.length >= 2);
    assert.match(retrying[0]!.error, /connect ENOENT \/run\/relay\.sock/);
    assert.ok(retrying[0]!.retryAtMs > 0);
    await until(() => follower!.status()[0]!.state === 'following', 'following again');
    assert.equal(follower!.status()[0]!.error, '');
  });

  it('tries again when the server ends the stream', async () => {
    const source = new FakeSource([async () => undefined, open(flowAt(5))]);
    const { flows, states } = follow(source);
    await until(() => flows.length === 1, 'the flow after the ended stream');
    assert.ok(states.some((s) => s[0]!.state === 'retrying' && s[0]!.error === 'the server ended the stream'));
  });

  it('ends an attempt whose server stops answering ServerStatus (a stream may hang for ever)', async () => {
    const source = new FakeSource([open(flowAt(1)), open(flowAt(2))]);
    const { flows, states } = follow(source, 20);
    await until(() => follower!.status()[0]!.state === 'following', 'following');
    source.statusFails = true;
    await until(() => states.some((s) => s[0]!.state === 'retrying'), 'retrying');
    assert.match(states.find((s) => s[0]!.state === 'retrying')![0]!.error, /ServerStatus failed: .*ENOENT/);
    source.statusFails = false;
    await until(() => flows.length === 2 && follower!.status()[0]!.state === 'following', 'following again');
  });

  it('counts flows the observer reports lost', async () => {
    const lost = { flow: null, lostEvents: { source: 'STREAM_QUEUE', numEventsLost: 7, cluster: 'c1', node: 'relay' }, nodeStatus: null } as unknown as GetFlowsResponse;
    const source = new FakeSource([(onResponse, signal) => {
      onResponse(lost);
      return open()(onResponse, signal);
    }]);
    follow(source);
    await until(() => follower!.status()[0]!.lostFlows === 7, 'the lost count');
  });
});
