// Zitadel's official Node client, @zitadel/node 3.x (gRPC over HTTP/2 through
// nice-grpc and @grpc/grpc-js), against Herald. Driven by tests/api/clients.rs:
// HERALD_URL, ORG_ID, ORG_TOKEN, ADMIN_TOKEN, INSTANCE_ID come from the test.
import assert from 'node:assert/strict';
import { ClientError, Metadata, Status } from 'nice-grpc';
import { createAccessTokenInterceptor, createAdminClient, createManagementClient } from '@zitadel/node/dist/api/index.js';

const { HERALD_URL, ORG_ID, ORG_TOKEN, ADMIN_TOKEN, INSTANCE_ID } = process.env;

// A personal access token is sent as `authorization: Bearer …`.
const mgmt = createManagementClient(HERALD_URL, createAccessTokenInterceptor(ORG_TOKEN));
const asAdmin = createManagementClient(HERALD_URL, createAccessTokenInterceptor(ADMIN_TOKEN));
const admin = createAdminClient(HERALD_URL, createAccessTokenInterceptor(ADMIN_TOKEN));
const adminAsOrg = createAdminClient(HERALD_URL, createAccessTokenInterceptor(ORG_TOKEN));
const stranger = createManagementClient(HERALD_URL, createAccessTokenInterceptor('hrd_0000000000000000000000000000000'));

async function fails(call, code) {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof ClientError, String(err));
    assert.equal(err.code, code, `${Status[err.code]} (${err.details}), expected ${Status[code]}`);
    console.log(`ok ${Status[code]}: ${err.details}`);
    return;
  }
  assert.fail(`expected ${Status[code]}`);
}

function details(d, sequence, owner) {
  assert.equal(Number(d.sequence), sequence); // uint64: a Long here
  assert.equal(d.resourceOwner, owner);
  assert.ok(d.creationDate instanceof Date && d.changeDate instanceof Date);
}

// ManagementService: the org's policy, through its whole life.
let { policy } = await mgmt.getNotificationPolicy({});
assert.equal(policy.isDefault, true);
assert.equal(policy.passwordChange, true);
assert.equal(policy.details.resourceOwner, INSTANCE_ID);
await fails(() => mgmt.updateCustomNotificationPolicy({ passwordChange: false }), Status.NOT_FOUND);
details((await mgmt.addCustomNotificationPolicy({ passwordChange: false })).details, 3, ORG_ID);
await fails(() => mgmt.addCustomNotificationPolicy({ passwordChange: true }), Status.ALREADY_EXISTS);
await fails(() => mgmt.updateCustomNotificationPolicy({ passwordChange: false }), Status.FAILED_PRECONDITION);
details((await mgmt.updateCustomNotificationPolicy({ passwordChange: true })).details, 4, ORG_ID);
({ policy } = await mgmt.getNotificationPolicy({}));
assert.deepEqual([policy.isDefault, policy.passwordChange], [false, true]);
({ policy } = await mgmt.getDefaultNotificationPolicy({}));
assert.deepEqual([policy.isDefault, policy.passwordChange], [true, true]);
details((await mgmt.resetNotificationPolicyToDefault({})).details, 5, ORG_ID);
await fails(() => mgmt.resetNotificationPolicyToDefault({}), Status.NOT_FOUND);
console.log('ok management calls');

// Tokens and orgs: `x-zitadel-orgid` metadata names the org of an admin token.
await fails(() => stranger.getNotificationPolicy({}), Status.UNAUTHENTICATED);
const orgHeader = (id) => ({ metadata: Metadata({ 'x-zitadel-orgid': id }) });
({ policy } = await asAdmin.getNotificationPolicy({}, orgHeader(ORG_ID)));
assert.equal(policy.isDefault, true);
await fails(() => asAdmin.getNotificationPolicy({}, orgHeader('0193aaaa-0000-7000-8000-000000000000')), Status.PERMISSION_DENIED);
await fails(() => mgmt.getMyOrg({}), Status.UNIMPLEMENTED);

// AdminService: the instance default.
({ policy } = await admin.getNotificationPolicy({}));
assert.deepEqual([policy.isDefault, policy.passwordChange], [true, true]);
await fails(() => admin.addNotificationPolicy({ passwordChange: true }), Status.ALREADY_EXISTS);
details((await admin.updateNotificationPolicy({ passwordChange: false })).details, 1, INSTANCE_ID);
await fails(() => admin.updateNotificationPolicy({ passwordChange: false }), Status.FAILED_PRECONDITION);
await fails(() => adminAsOrg.getNotificationPolicy({}), Status.PERMISSION_DENIED);
await fails(() => admin.healthz({}), Status.UNIMPLEMENTED);
console.log('ok admin calls');
