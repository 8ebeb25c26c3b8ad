// Zitadel's official @zitadel/client (Connect-ES) against Herald, through its
// Connect (JSON and binary) and gRPC-web transports from @connectrpc/connect-node.
// Driven by tests/api/clients.rs: HERALD_URL, ORG_ID, ORG_TOKEN.
import assert from 'node:assert/strict';
import { Code, ConnectError } from '@connectrpc/connect';
import { NewAuthorizationBearerInterceptor, toDate } from '@zitadel/client';
import { createAdminServiceClient, createManagementServiceClient } from '@zitadel/client/v1';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';

const { HERALD_URL, ORG_ID, ORG_TOKEN } = process.env;
const interceptors = [NewAuthorizationBearerInterceptor(ORG_TOKEN)];
const transports = {
  'connect+json': createConnectTransport({ baseUrl: HERALD_URL, httpVersion: '1.1', interceptors }),
  'connect+proto': createConnectTransport({ baseUrl: HERALD_URL, httpVersion: '1.1', useBinaryFormat: true, interceptors }),
  'grpc-web': createGrpcWebTransport({ baseUrl: HERALD_URL, httpVersion: '1.1', interceptors }),
};

async function fails(call, code) {
  try {
    await call();
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(e.code, code, `${Code[e.code]} (${e.rawMessage}), expected ${Code[code]}`);
    return;
  }
  assert.fail(`expected ${Code[code]}`);
}

for (const [name, transport] of Object.entries(transports)) {
  const mgmt = createManagementServiceClient(transport);
  // A read, a write, and the errors a second write gets.
  const { policy } = await mgmt.getNotificationPolicy({});
  assert.equal(typeof policy.isDefault, 'boolean');
  const { details } = await mgmt.addCustomNotificationPolicy({ passwordChange: false });
  assert.equal(details.resourceOwner, ORG_ID);
  assert.ok(details.sequence > 2n);
  assert.ok(toDate(details.changeDate) instanceof Date);
  await fails(() => mgmt.addCustomNotificationPolicy({ passwordChange: false }), Code.AlreadyExists);
  await fails(() => mgmt.updateCustomNotificationPolicy({ passwordChange: false }), Code.FailedPrecondition);
  const back = await mgmt.getNotificationPolicy({});
  assert.deepEqual([back.policy.isDefault, back.policy.passwordChange], [false, false]);
  await mgmt.resetNotificationPolicyToDefault({});
  await fails(() => mgmt.resetNotificationPolicyToDefault({}), Code.NotFound);
  await fails(() => createAdminServiceClient(transport).getNotificationPolicy({}), Code.PermissionDenied);
  await fails(() => mgmt.getMyOrg({}), Code.Unimplemented);
  console.log(`ok ${name}`);
}
