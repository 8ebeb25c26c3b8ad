// BoldSign's Node SDK (`boldsign` on npm) against Herald: a sender identity
// with an 80-character name (BoldSign's published limit) is created, 81 is
// refused. Driven by tests/api/clients.rs: HERALD_URL, ORG_TOKEN.
import assert from 'node:assert/strict';
import { CreateSenderIdentityRequest, SenderIdentitiesApi } from 'boldsign';

const { HERALD_URL, ORG_TOKEN } = process.env;
const api = new SenderIdentitiesApi(HERALD_URL.replace(/\/$/, ''));
api.setApiKey(ORG_TOKEN);

const request = (name, email) => Object.assign(new CreateSenderIdentityRequest(), { name, email });
const created = await api.createSenderIdentities(request('ü'.repeat(80), 'eighty@example.com'));
assert.match(created.senderIdentityId, /^[0-9a-f-]{36}$/);
console.log('ok 80 accepted');
try {
  await api.createSenderIdentities(request('n'.repeat(81), 'eighty-one@example.com'));
  assert.fail('81 characters were accepted');
} catch (err) {
  const status = err.response?.status ?? err.statusCode ?? err.status;
  assert.equal(status, 400, String(err));
  const body = err.body ?? err.response?.data;
  assert.ok(JSON.stringify(body).includes('Name'), JSON.stringify(body));
}
console.log('ok 81 refused');
