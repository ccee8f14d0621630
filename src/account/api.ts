// The account self-service as JSON under /api/v1/me, for the person the bearer token belongs to.
// Errors are problem+json (RFC 9457). Removing the second factor and new backup codes need the
// current password in the body: a token alone is not a recent sign-in. Wrong current passwords are
// limited per user (429 with Retry-After), so a stolen token cannot guess the password.
import { ifMatchVersion } from '../api/if-match.ts';
import Router from '@koa/router';
import { parsedBody } from '../http/body.ts';
import type { Context } from 'koa';
import type { User, UserProfileInput } from '../users/service.ts';
import { ConflictError, ValidationError } from '../errors.ts';
import { jsonApiErrors, problem } from '../http/errors.ts';
import type { AccountService } from './service.ts';
import { sessionView } from '../sessions/view.ts';
import type { AccountPrincipal } from './bearer.ts';
import { requestContext } from '../audit/origin.ts';
import { requestLocale } from '../http/views.ts';
import type { PhoneStatus } from './phone.ts';

export interface AccountApiDependencies {
  account: AccountService;
  // The person's own GDPR export (src/privacy), recorded as user.export done by the person.
  exportData(tenantId: string, userId: string, context: ReturnType<typeof requestContext>): Promise<unknown>;
  resolvePrincipal(ctx: Context): Promise<AccountPrincipal>;
}

function profileJson(user: User) {
  return {
    id: user.id,
    tenantId: user.tenantId,
    email: user.email,
    emailVerified: user.emailVerified,
    username: user.username,
    phoneNumber: user.phoneNumber,
    phoneNumberVerified: user.phoneNumberVerified,
    name: user.name,
    givenName: user.givenName,
    familyName: user.familyName,
    middleName: user.middleName,
    nickname: user.nickname,
    picture: user.picture,
    website: user.website,
    gender: user.gender,
    birthdate: user.birthdate,
    zoneinfo: user.zoneinfo,
    locale: user.locale,
    customAttributes: user.customAttributes,
    version: user.version,
    createdAt: user.createdAt.toISOString(),
    updatedAt: user.updatedAt.toISOString(),
  };
}

// The person's phone number as the account API shows it (the number in full: it is their own).
function phoneJson(phone: PhoneStatus) {
  return {
    phoneNumber: phone.phoneNumber,
    phoneNumberVerified: phone.verified,
    channels: phone.channels,
    removable: phone.removable,
    pending: phone.pending ? { masked: phone.pending.masked, channel: phone.pending.channel, resendAfterSeconds: phone.pending.resendAfterSeconds } : null,
  };
}

// The JSON object sent; none (a DELETE, say) reads as empty, anything else is refused.
function body(ctx: Context): Record<string, unknown> {
  const value = (ctx.request as { body?: unknown }).body;
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('invalid body', { body: 'must be a JSON object' });
  return value as Record<string, unknown>;
}


export function accountApiRoutes(deps: AccountApiDependencies): Router {
  const { account } = deps;
  const router = new Router({ prefix: '/api/v1/me' });

  router.use(jsonApiErrors());
  router.use(parsedBody({ enableTypes: ['json'], jsonLimit: '16kb', jsonStrict: true, encoding: 'utf-8', parsedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'] }));
  router.use(async (ctx, next) => {
    ctx.state.me = await deps.resolvePrincipal(ctx);
    await next();
  });

  const me = (ctx: Context) => ctx.state.me as AccountPrincipal;

  router.get('/', async (ctx) => {
    const user = await account.profile(me(ctx).tenantId, me(ctx).userId);
    ctx.set('ETag', `"${user.version}"`);
    ctx.body = profileJson(user);
  });

  router.patch('/', async (ctx) => {
    if (!ctx.is('application/json')) return problem(ctx, 415, 'unsupported-media-type', 'send the body as application/json');
    const { tenantId, userId } = me(ctx);
    const version = ifMatchVersion(ctx) ?? (await account.profile(tenantId, userId)).version;
    const user = await account.updateProfile(tenantId, userId, version, body(ctx) as UserProfileInput);
    ctx.set('ETag', `"${user.version}"`);
    ctx.body = profileJson(user);
  });

  router.post('/password', async (ctx) => {
    const { currentPassword, newPassword } = body(ctx);
    await account.changePassword(me(ctx).tenantId, me(ctx).userId, currentPassword, newPassword, { currentSid: me(ctx).sessionUid, context: requestContext(ctx) });
    ctx.status = 204;
  });

  router.get('/mfa', async (ctx) => {
    const status = await account.mfaStatus(me(ctx).tenantId, me(ctx).userId);
    ctx.body = { totp: status.totp, confirmedAt: status.confirmedAt?.toISOString() ?? null, backupCodesRemaining: status.backupCodesRemaining };
  });

  router.delete('/mfa', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    await account.verifyPassword(tenantId, userId, body(ctx).currentPassword, requestContext(ctx));
    await account.removeMfa(tenantId, userId, requestContext(ctx));
    ctx.status = 204;
  });

  // Starts (or restarts) enrolling an authenticator app; active only once confirmed with a code.
  router.post('/mfa/totp', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    await account.verifyPassword(tenantId, userId, body(ctx).currentPassword, requestContext(ctx));
    const enrolment = await account.beginTotpEnrolment(tenantId, userId);
    ctx.status = 201;
    ctx.body = { secret: enrolment.secret, otpauthUri: enrolment.otpauthUri, qrSvg: enrolment.qrSvg };
  });

  router.post('/mfa/totp/confirm', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    const { code } = body(ctx);
    if (typeof code !== 'string' || !code.trim()) throw new ValidationError('send the code the authenticator app shows', { code: 'required' });
    const confirmed = await account.confirmTotpEnrolment(tenantId, userId, code, requestContext(ctx));
    if (!confirmed) throw new ValidationError('the code is not correct, or no enrolment is pending', { code: 'not correct' });
    ctx.body = { backupCodes: confirmed.backupCodes };
  });

  router.post('/mfa/backup-codes', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    await account.verifyPassword(tenantId, userId, body(ctx).currentPassword, requestContext(ctx));
    ctx.status = 201;
    ctx.body = { backupCodes: await account.regenerateBackupCodes(tenantId, userId, requestContext(ctx)) };
  });

  router.get('/sessions', async (ctx) => {
    const sessions = await account.sessions(me(ctx).tenantId, me(ctx).userId, me(ctx).sessionUid);
    ctx.body = {
      items: sessions.map((session) => ({ ...sessionView(session), current: session.current })),
    };
  });

  // Like the page's "sign out all other sessions": the session of this token stays, when known.
  router.post('/sessions/end-others', async (ctx) => {
    if (!me(ctx).sessionUid) throw new ConflictError('this token does not name the session it was issued in, so the others cannot be told apart; end them one by one');
    const ended = await account.endOtherSessions(me(ctx).tenantId, me(ctx).userId, me(ctx).sessionUid, requestContext(ctx));
    ctx.body = { ended };
  });

  // Every session, the one of this token included: its refresh token and this access token's
  // grant end too.
  router.post('/sessions/end-all', async (ctx) => {
    ctx.body = { ended: await account.endAllSessions(me(ctx).tenantId, me(ctx).userId, me(ctx).sessionUid, requestContext(ctx)) };
  });

  router.delete('/sessions/:id', async (ctx) => {
    await account.endSession(me(ctx).tenantId, me(ctx).userId, ctx.params.id, requestContext(ctx));
    ctx.status = 204;
  });

  // Everything held about the signed-in person, as one JSON document (GDPR art. 15 / 20).
  router.get('/export', async (ctx) => {
    const document = await deps.exportData(me(ctx).tenantId, me(ctx).userId, requestContext(ctx));
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', 'attachment; filename="my-data.json"');
    ctx.body = document;
  });

  router.get('/identities', async (ctx) => {
    const identities = await account.identities(me(ctx).tenantId, me(ctx).userId);
    ctx.body = {
      items: identities.map((identity) => ({ id: identity.id, connector: identity.connector, connectorName: identity.connectorName, subject: identity.subject, email: identity.email, linkedAt: identity.linkedAt.toISOString() })),
    };
  });

  router.delete('/identities/:id', async (ctx) => {
    await account.removeIdentity(me(ctx).tenantId, me(ctx).userId, ctx.params.id);
    ctx.status = 204;
  });

  // The phone number, verified by a code sent to it (docs/one-time-codes.md, "Your own phone
  // number"): ask for a code for the new number, then confirm it with the code.
  router.get('/phone', async (ctx) => {
    ctx.body = phoneJson(await account.phoneStatus(me(ctx).tenantId, me(ctx).userId));
  });

  // A verified number can be a second factor: the current password, as for an authenticator app.
  router.post('/phone/verification', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    const { phoneNumber, channel, currentPassword } = body(ctx);
    await account.verifyPassword(tenantId, userId, currentPassword, requestContext(ctx));
    const sent = await account.requestPhoneCode(tenantId, userId, { phoneNumber, channel }, { ip: ctx.ip, locale: requestLocale(ctx) });
    ctx.status = 202;
    ctx.body = { channel: sent.channel, resendAfterSeconds: sent.resendAfterSeconds };
  });

  router.post('/phone', async (ctx) => {
    const { tenantId, userId } = me(ctx);
    const { phoneNumber, channel, code } = body(ctx);
    await account.confirmPhone(tenantId, userId, { phoneNumber, channel, code }, requestContext(ctx));
    ctx.body = phoneJson(await account.phoneStatus(tenantId, userId));
  });

  router.delete('/phone', async (ctx) => {
    await account.removePhone(me(ctx).tenantId, me(ctx).userId, requestContext(ctx));
    ctx.status = 204;
  });

  return router;
}
