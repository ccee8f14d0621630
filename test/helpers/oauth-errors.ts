import { expect } from 'chai';

// openid-client rejects with an error whose `error` property is the OAuth error code.
export async function expectOAuthError(promise: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected the OAuth error ${code}`).to.be.instanceOf(Error);
  const { error, cause } = caught as { error?: string; cause?: { error?: string } };
  expect(error ?? cause?.error, (caught as Error).message).to.equal(code);
}
