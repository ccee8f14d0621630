// Everything that protects password sign-in, built once per runtime from the configuration: the
// per-identifier lockouts, password-spraying detection, the CAPTCHA provider and the
// per-identifier rate limit of sign-ins (shared across instances through the hot store).
import type { Logger } from 'pino';
import type { SignInProtectionConfig } from '../config.ts';
import type { HotStore } from '../store/hot-store.ts';
import { createBruteForceProtection, type BruteForceDependencies, type BruteForceProtection } from './brute-force.ts';
import { createSprayingDetector, type SprayingDetector } from './spraying.ts';
import { createCaptchaVerifier, type CaptchaVerifier } from './captcha/index.ts';
import { createRateLimiter, type RateLimiter } from './rate-limiter.ts';

export interface SignInProtection {
  config: SignInProtectionConfig;
  hot: HotStore;
  bruteForce: BruteForceProtection;
  spraying: SprayingDetector;
  captcha: CaptchaVerifier;
  // Sign-in attempts per identifier (digest), whoever makes them.
  identifierLimit: RateLimiter;
}

export function createSignInProtection(config: SignInProtectionConfig, deps: BruteForceDependencies & { hot: HotStore; log?: Logger; captchaKey: string }): SignInProtection {
  return {
    config,
    hot: deps.hot,
    bruteForce: createBruteForceProtection(deps),
    spraying: createSprayingDetector(deps.hot, config.spraying),
    captcha: createCaptchaVerifier(config.captcha, { hot: deps.hot, key: deps.captchaKey, log: deps.log }),
    identifierLimit: createRateLimiter(deps.hot, { name: 'login-identifier', points: config.identifierLimits.login, durationSeconds: config.identifierLimits.windowSeconds, log: deps.log }),
  };
}
