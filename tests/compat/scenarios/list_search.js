// Listing bookings with Timekit's search, pagination and includes, through the SDK.
'use strict';
const { assert, sdk, monday, at, refused, main } = require('./lib');

main(async () => {
  const tk = sdk();
  const day = monday(4);
  const resource = (await tk.createResource({ name: 'Desk', timezone: 'UTC' })).data.id;
  const ids = [];
  for (let h = 0; h < 5; h++) {
    const r = await tk.createBooking({
      resource_id: resource, graph: h < 3 ? 'confirm_decline' : 'instant', action: 'create',
      start: at(day, 8 + h), end: at(day, 9 + h), what: 'Meeting ' + h, where: 'Desk',
      customer: { name: h === 4 ? 'Marty McFly' : 'Guest ' + h, email: `guest${h}@example.com` },
      meta: { batch: 'list', parity: h % 2 ? 'odd' : 'even' },
    });
    ids.push(r.data.id);
  }
  const page2 = await tk.carry({ params: { search: 'meta.batch:list', limit: 2, page: 2 } })
    .getBookings();
  assert.deepEqual(page2.data.map((b) => b.id), ids.slice(2, 4));
  assert.equal(page2.metaData.total, 5);
  assert.equal(page2.metaData.current_page, 2);
  assert.equal(page2.metaData.last_page, 3);
  assert.ok(page2.metaData.next_page_url.includes('page=3'));
  assert.ok(page2.metaData.prev_page_url.includes('page=1'));

  const tentative = await tk.carry({ params: { search: 'graph:confirm_decline;state:tentative' } })
    .getBookings();
  assert.deepEqual(tentative.data.map((b) => b.id), ids.slice(0, 3));
  const byResource = await tk.carry({
    params: { search: `resource.id:${resource};meta.parity:odd` },
  }).getBookings();
  assert.deepEqual(byResource.data.map((b) => b.id), [ids[1], ids[3]]);
  const byEmail = await tk.carry({ params: { search: 'customer.email:guest2@example.com' } })
    .getBookings();
  assert.deepEqual(byEmail.data.map((b) => b.id), [ids[2]]);
  const byName = await tk.carry({ params: { search: 'customer.name:marty*' } }).getBookings();
  assert.deepEqual(byName.data.map((b) => b.id), [ids[4]]);

  const full = await tk.include('attributes', 'event', 'customers', 'available_actions', 'user')
    .getBooking({ id: ids[0] });
  const b = full.data;
  assert.equal(b.state, 'tentative');
  assert.deepEqual(b.available_actions, ['confirm', 'decline', 'cancel']);
  assert.deepEqual(b.possible_actions, b.available_actions);
  assert.equal(b.attributes.event_info.what, 'Meeting 0');
  assert.equal(b.event.where, 'Desk');
  assert.equal(b.customers[0].email, 'guest0@example.com');
  assert.equal(b.user.name, 'Desk');

  const listed = await tk.include('customers').carry({ params: { search: 'meta.batch:list' } })
    .getBookings();
  assert.equal(listed.data[4].customers[0].name, 'Marty McFly');

  const bad = await refused(tk.carry({ params: { search: 'colour:red' } }).getBookings());
  assert.equal(bad.status, 422);
  assert.ok(bad.data.errors.search);
  const widget = sdk(process.env.TK_PUBLIC_KEY);
  const forbidden = await refused(widget.getBookings());
  assert.equal(forbidden.status, 403);
  return { bookings: ids };
});
