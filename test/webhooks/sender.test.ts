// The webhook sender's own guards: no private or loopback addresses unless allowed (also when a
// name resolves to one), no redirects followed, and a timeout.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendWebhook } from '../../src/webhooks/sender.ts';
import { endpointUrlProblem, isPublicAddress } from '../../src/webhooks/destination.ts';
import { startReceiver, type Receiver } from './receiver.ts';

describe('webhook sender', () => {
  let receiver: Receiver;
  beforeEach(async () => {
    receiver = await startReceiver();
  });
  afterEach(() => receiver.close());

  const options = { timeoutMs: 2000, allowPrivateNetwork: false };

  it('refuses loopback addresses, by number and by name, unless private networks are allowed', async () => {
    expect(await sendWebhook(receiver.url, {}, '{}', options)).to.deep.equal({ ok: false, error: 'the address is not public (blocked)' });
    const byName = receiver.url.replace('127.0.0.1', 'localhost');
    expect(await sendWebhook(byName, {}, '{}', options)).to.include({ ok: false, error: 'the address is not public (blocked)' });
    expect(receiver.requests).to.have.length(0);
    expect(await sendWebhook(receiver.url, {}, '{"a":1}', { ...options, allowPrivateNetwork: true })).to.deep.equal({ ok: true, statusCode: 204 });
    expect(receiver.requests.map((request) => request.body)).to.deep.equal(['{"a":1}']);
  });

  it('does not follow a redirect', async () => {
    const target = await startReceiver();
    const redirecting = await startReceiver({ headers: { location: target.url } });
    redirecting.answer(307);
    try {
      expect(await sendWebhook(redirecting.url, {}, '{}', { ...options, allowPrivateNetwork: true })).to.deep.equal({ ok: false, statusCode: 307, error: 'HTTP 307' });
      expect(target.requests).to.have.length(0);
    } finally {
      await target.close();
      await redirecting.close();
    }
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const result = await sendWebhook(`http://127.0.0.1:${port}/`, {}, '{}', { timeoutMs: 200, allowPrivateNetwork: true });
      expect(result).to.deep.equal({ ok: false, error: 'timed out' });
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('tells public from special-purpose addresses', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1']) {
      expect(isPublicAddress(address), address).to.equal(false);
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isPublicAddress(address), address).to.equal(true);
  });

  it('accepts https endpoints, and plain http only to localhost', () => {
    expect(endpointUrlProblem('https://hooks.example.com/idp')).to.equal(undefined);
    expect(endpointUrlProblem('http://localhost:8080/hooks')).to.equal(undefined);
    expect(endpointUrlProblem('http://127.0.0.1:8080/hooks')).to.equal(undefined);
    expect(endpointUrlProblem('http://[::1]:8080/hooks')).to.equal(undefined);
    expect(endpointUrlProblem('http://hooks.example.com/idp')).to.match(/https/);
    expect(endpointUrlProblem('https://user:pass@hooks.example.com/')).to.match(/credentials/);
    expect(endpointUrlProblem('ftp://hooks.example.com/')).to.match(/https/);
    expect(endpointUrlProblem('not a url')).to.match(/absolute URL/);
  });
});
