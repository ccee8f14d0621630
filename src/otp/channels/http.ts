// One POST to a messaging provider, through the webhooks' SSRF-guarded sender: a timeout, no
// redirects, public addresses only unless the deployment allows private ones.
import { sendWebhook } from '../../webhooks/sender.ts';
import { DeliveryError } from './channel.ts';

export interface ProviderRequestOptions {
  timeoutMs: number;
  allowPrivateNetwork: boolean;
}

export async function postToProvider(url: string, headers: Record<string, string>, body: string, options: ProviderRequestOptions): Promise<void> {
  const result = await sendWebhook(url, { 'user-agent': 'idp-one-time-codes/1', ...headers }, body, options);
  if (!result.ok) throw new DeliveryError(result.error ?? 'delivery failed');
}
