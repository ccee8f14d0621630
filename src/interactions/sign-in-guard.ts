// The password step's protection, around the check of the password: refusals before it (an
// address caught spraying, too many attempts at the identifier, a CAPTCHA not solved, a locked
// identifier), and after a wrong password the delay, the lockout, spraying detection and the
// audit entries. Known and unknown identifiers take exactly the same path here: nothing below
// looks an account up before the answer.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from 'koa';
import { formField } from '../http/csrf.ts';
import type { User } from '../users/service.ts';
import type { SignInProtection } from '../security/brute-force-guard.ts';
import { identifierDigest, OPEN_SCOPE, type LockState, type SignInSubject } from '../security/brute-force.ts';
import { isSuspiciousAddress } from '../security/spraying.ts';
import type { CaptchaChallenge } from '../security/captcha/index.ts';
import { requestContext } from '../audit/origin.ts';
import { countSecurityEvent } from '../ops/metrics.ts';
import type { SignInAudit } from './sign-in-audit.ts';
import type { Step } from './step.ts';

export type Refusal =
  | { reason: 'locked' | 'spraying' | 'rate_limited'; retryAfterSeconds?: number }
  | { reason: 'captcha' };

export type GuardVerdict = { refused: Refusal } | { subject: SignInSubject; attempt: number };

// The client address as the request context resolves it.
function addressOf(ctx: Context): string {
  return ctx.ip || 'unknown';
}

export function createSignInGuard(protection: SignInProtection, signIns: SignInAudit) {
  const { bruteForce, spraying, captcha, identifierLimit, config } = protection;

  function subjectOf(step: Step, identifier: string): SignInSubject {
    const scope = step.requested.kind === 'fixed' ? step.requested.tenantId : (step.state.tenantId ?? OPEN_SCOPE);
    return { scope, identifier, ip: addressOf(step.ctx) };
  }

  async function captchaRequired(step: Step, identifier: string | undefined): Promise<boolean> {
    const { afterFailures, afterIpFailures } = config.captcha;
    const ip = addressOf(step.ctx);
    const subject = subjectOf(step, identifier ?? '');
    const [suspicious, counts] = await Promise.all([isSuspiciousAddress(protection.hot, ip), bruteForce.failureCounts(ip, subject.scope, identifier || undefined)]);
    return suspicious || (afterFailures > 0 && counts.addressIdentifier >= afterFailures) || (afterIpFailures > 0 && counts.address >= afterIpFailures);
  }

  function digestNote(subject: SignInSubject): string {
    return identifierDigest(subject.scope, subject.identifier).slice(0, 16);
  }

  return {
    subjectOf,

    // The challenge the password page must show now, if any.
    async challengeFor(step: Step, identifier: string | undefined): Promise<CaptchaChallenge | undefined> {
      return (await captchaRequired(step, identifier)) ? captcha.challenge(step.interaction.uid) : undefined;
    },

    // Before the password is checked: a refusal, or the attempt (counted) to go on with.
    async before(step: Step, identifier: string): Promise<GuardVerdict> {
      const subject = subjectOf(step, identifier);
      // Both only read; nothing is counted before the spraying block is ruled out.
      const [block, challenged] = await Promise.all([spraying.blocked(subject.ip), captchaRequired(step, identifier)]);
      if (block) return { refused: { reason: 'spraying', retryAfterSeconds: block.retryAfterSeconds } };
      const limit = await identifierLimit.consume(identifierDigest(subject.scope, identifier));
      if (!limit.allowed) {
        countSecurityEvent('identifier_rate_limited');
        if (limit.firstRefusal) await signIns.security(step, 'security.rate_limited', { limiter: identifierLimit.name, identifierDigest: digestNote(subject) });
        return { refused: { reason: 'rate_limited', retryAfterSeconds: limit.retryAfterSeconds } };
      }
      if (challenged) {
        const solved = await captcha.verify((name) => formField(step.ctx, name), subject.ip, step.interaction.uid);
        if (!solved) {
          countSecurityEvent('captcha_failed');
          return { refused: { reason: 'captcha' } };
        }
      }
      const verdict = await bruteForce.begin(subject);
      if (verdict.kind === 'locked') return { refused: { reason: 'locked', retryAfterSeconds: verdict.lock.retryAfterSeconds } };
      return { subject, attempt: verdict.attempt };
    },

    // After a wrong password (or an unknown identifier): waits the delay; the lockout this
    // failure caused, if any.
    async failed(step: Step, subject: SignInSubject, attempt: number): Promise<LockState | undefined> {
      const outcome = await bruteForce.failed(subject, attempt, requestContext(step.ctx));
      const { afterFailures, afterIpFailures } = config.captcha;
      const note = { identifierDigest: digestNote(subject) };
      if (await spraying.failed(subject.ip, identifierDigest(subject.scope, subject.identifier))) {
        await signIns.security(step, 'security.spraying_detected', { maxIdentifiers: config.spraying.maxIdentifiers, windowSeconds: config.spraying.windowSeconds, blockSeconds: config.spraying.blockSeconds });
      }
      if ((afterFailures > 0 && outcome.addressIdentifierFailures === afterFailures) || (afterIpFailures > 0 && outcome.addressFailures === afterIpFailures)) {
        countSecurityEvent('captcha_required');
        await signIns.security(step, 'security.captcha_required', { ...note, addressIdentifierFailures: outcome.addressIdentifierFailures, addressFailures: outcome.addressFailures });
      }
      if (outcome.lockout) {
        const { number, seconds, permanent } = outcome.lockout;
        await signIns.security(step, 'security.lockout', { ...note, lockoutNumber: number, lockoutSeconds: seconds ?? null, permanent });
      }
      // Timers, not work: the event loop serves others meanwhile.
      if (outcome.delayMs > 0) await sleep(outcome.delayMs);
      return outcome.lockout ? { permanent: outcome.lockout.permanent, retryAfterSeconds: outcome.lockout.seconds } : undefined;
    },

    // After a right password: the accounts not permanently locked (an administrator must lift
    // that first). The counts are forgotten once someone gets through.
    async succeeded(subject: SignInSubject, users: User[]): Promise<User[]> {
      const locked = await Promise.all(users.map((user) => bruteForce.isPermanentlyLocked(user.tenantId, user.id)));
      const usable = users.filter((_user, index) => !locked[index]);
      if (usable.length) await bruteForce.succeeded(subject);
      return usable;
    },
  };
}

export type SignInGuard = ReturnType<typeof createSignInGuard>;
