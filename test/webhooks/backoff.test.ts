// The webhook retry schedule: exponential, capped, with jitter that only ever shortens a wait.
import { expect } from 'chai';
import { retryDelaySeconds } from '../../src/webhooks/dispatcher.ts';

describe('webhook retry back-off', () => {
  it('grows fourfold from 15 seconds to a cap of 6 hours, jittered down to half', () => {
    const longest = (failures: number) => retryDelaySeconds(failures, () => 1);
    const shortest = (failures: number) => retryDelaySeconds(failures, () => 0);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(longest)).to.deep.equal([15, 60, 240, 960, 3840, 15360, 21600, 21600]);
    expect([1, 2, 7].map(shortest)).to.deep.equal([7.5, 30, 10800]);
    for (let sample = 0; sample < 100; sample++) expect(retryDelaySeconds(2)).to.be.within(30, 60);
  });
});
