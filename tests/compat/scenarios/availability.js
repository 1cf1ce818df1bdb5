// fetchAvailability in Timekit's three modes, with constraints, against a booked slot.
'use strict';
const { assert, sdk, monday, at, refused, main } = require('./lib');

main(async () => {
  const tk = sdk();
  const widget = sdk(process.env.TK_PUBLIC_KEY);
  const day = monday(2);
  const ids = [];
  for (const name of ['Room A', 'Room B']) {
    ids.push((await tk.createResource({ name, timezone: 'UTC' })).data.id);
  }
  // Room B is taken 09:00-10:00.
  await tk.createBooking({
    resource_id: ids[1], graph: 'instant', action: 'confirm',
    start: at(day, 9), end: at(day, 10), what: 'Taken',
    customer: { name: 'Biff', email: 'biff@example.com' },
  });
  const query = {
    resources: ids, from: at(day, 9), to: at(day, 11), length: '1 hour',
    timeslot_increments: '1 hour', output_timezone: 'UTC',
  };
  const show = (slots) => slots.map((s) => [s.start, s.resources.map((r) => r.name)]);

  const mutual = await tk.fetchAvailability({ ...query, mode: 'mutual' });
  assert.deepEqual(show(mutual.data), [[at(day, 10), ['Room A', 'Room B']]]);

  const prioritized = await widget.fetchAvailability({ ...query, mode: 'roundrobin_prioritized' });
  assert.deepEqual(show(prioritized.data), [[at(day, 9), ['Room A']], [at(day, 10), ['Room A']]]);

  const random = await widget.fetchAvailability({ ...query, mode: 'roundrobin_random' });
  assert.deepEqual(random.data.map((s) => s.start), [at(day, 9), at(day, 10)]);
  assert.deepEqual(random.data[0].resources.map((r) => r.name), ['Room A']); // B is taken
  assert.ok(['Room A', 'Room B'].includes(random.data[1].resources[0].name));

  // Constraints: Timekit's catalogue narrows the query (10:00-11:00 only, Mondays only).
  const narrowed = await tk.fetchAvailability({
    ...query, mode: 'roundrobin_prioritized',
    constraints: [{ allow_day: { day: 'Monday' } }, { block_hours: { start: 9, end: 10 } }],
  });
  assert.deepEqual(show(narrowed.data), [[at(day, 10), ['Room A']]]);
  const tuesday = await tk.fetchAvailability({
    ...query, mode: 'roundrobin_prioritized', constraints: [{ allow_day: { day: 'Tuesday' } }],
  });
  assert.deepEqual(tuesday.data, []);
  const period = await tk.fetchAvailability({
    ...query, mode: 'mutual',
    availability_constraints: [{ block_period: { start: at(day, 10, 30), end: at(day, 10, 45) } }],
  });
  assert.deepEqual(period.data, []);

  const bad = await refused(tk.fetchAvailability({ ...query, length: 'a while' }));
  assert.equal(bad.status, 422);
  assert.ok(bad.data.errors.length);
  return { resources: ids };
});
