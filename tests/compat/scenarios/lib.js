// Shared by the scenarios: the real timekit-sdk pointed at a live slotgraph, plus small helpers.
// Environment (set by tests/compat/test_sdk.py): TK_BASE_URL, TK_SECRET_KEY, TK_PUBLIC_KEY.
'use strict';

const assert = require('node:assert/strict');
const timekit = require('timekit-sdk');

function sdk(key) {
  const tk = timekit.newInstance();
  tk.configure({ apiBaseUrl: process.env.TK_BASE_URL + '/', app: 'compat' });
  tk.setAppKey(key || process.env.TK_SECRET_KEY);
  return tk;
}

// A Monday some weeks ahead, so no booking is in the past and no request expires meanwhile.
function monday(weeksAhead) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() + ((8 - d.getUTCDay()) % 7 || 7) + 7 * weeksAhead);
  return d;
}

function at(day, hourUtc, minutes) {
  const d = new Date(day.getTime());
  d.setUTCHours(hourUtc, minutes || 0, 0, 0);
  return d.toISOString().replace('.000Z', '+00:00');
}

// An SDK call that must fail: resolves to the error response (status + Timekit-shaped body).
async function refused(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error.status, 'expected an HTTP error, got ' + error);
    return error;
  }
  assert.fail('the request was expected to fail');
}

function done(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

function main(fn) {
  fn().then(done).catch((error) => {
    const detail = error && error.data ? JSON.stringify(error.data) : '';
    console.error(error && error.stack ? error.stack : error, detail);
    process.exit(1);
  });
}

module.exports = { assert, sdk, monday, at, refused, main };
