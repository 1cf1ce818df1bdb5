// Resources through the SDK: create (with Timekit availability constraints), list, get,
// update, delete (slotgraph archives).
'use strict';
const { assert, sdk, refused, main } = require('./lib');

main(async () => {
  const tk = sdk();
  const created = [];
  for (const name of ['Doc Brown', 'Marty McFly', 'Biff Tannen']) {
    const r = await tk.createResource({
      name,
      timezone: 'Europe/Oslo',
      email: name.split(' ')[0].toLowerCase() + '@hill-valley.example',
      password: 'not-kept',
      availabilityConstraints: [{ allow_weekdays: {} }, { allow_hours: { start: 8, end: 18 } }],
    });
    assert.equal(r.status, 201);
    assert.equal(r.data.name, name);
    assert.deepEqual(r.data.availability_constraints[0], {
      allow_day_and_time: { day: 'Monday', start: '08:00', end: '18:00' },
    });
    created.push(r.data);
  }
  const list = await tk.carry({ params: { limit: 2 } }).getResources();
  assert.equal(list.data.length, 2);
  assert.equal(list.metaData.total, 3);
  assert.equal(list.metaData.last_page, 2);
  const one = await tk.getResource({ id: created[1].id });
  assert.equal(one.data.email, 'marty@hill-valley.example');
  const updated = await tk.updateResource({ id: created[1].id, name: 'Marty' });
  assert.equal(updated.data.name, 'Marty');
  const gone = await tk.deleteResource({ id: created[2].id });
  assert.equal(gone.status, 200);
  const after = await tk.getResources();
  assert.equal(after.data.length, 2);
  const bad = await refused(tk.createResource({ name: 'No zone' }));
  assert.equal(bad.status, 422);
  assert.deepEqual(Object.keys(bad.data.errors), ['timezone']);
  const unknown = await refused(tk.getResource({ id: '00000000-0000-0000-0000-000000000000' }));
  assert.equal(unknown.status, 404);
  assert.ok(unknown.data.error);
  return { resources: created.map((r) => r.id), archived: created[2].id, renamed: created[1].id };
});
