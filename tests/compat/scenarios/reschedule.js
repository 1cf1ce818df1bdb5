// rescheduleBooking through the SDK: the booking moves, and its old slot is free again.
'use strict';
const { assert, sdk, monday, at, refused, main } = require('./lib');

main(async () => {
  const tk = sdk();
  const day = monday(5);
  const chair = (await tk.createResource({ name: 'Chair 1', timezone: 'UTC' })).data.id;
  const other = (await tk.createResource({ name: 'Chair 2', timezone: 'UTC' })).data.id;
  const booked = await tk.createBooking({
    resource_id: chair, graph: 'instant', action: 'confirm', start: at(day, 10), end: at(day, 11),
    what: 'Haircut', customer: { name: 'Lorraine', email: 'lorraine@example.com' },
  });
  const moved = await tk.include('attributes').rescheduleBooking({
    id: booked.data.id, start: at(day, 14), end: at(day, 15), resource_id: other,
    message: 'Moved to the afternoon',
  });
  assert.equal(moved.data.id, booked.data.id); // slotgraph keeps the id (Timekit makes a new one)
  assert.equal(moved.data.attributes.event_info.start, at(day, 14));
  assert.equal(moved.data.resource.id, other);
  // The old slot is free again: someone else books it.
  const next = await tk.createBooking({
    resource_id: chair, graph: 'instant', start: at(day, 10), end: at(day, 11),
    customer: { name: 'George', email: 'george@example.com' },
  });
  assert.equal(next.status, 201);
  // Rescheduling onto a taken time is refused; nothing changes.
  const clash = await refused(tk.rescheduleBooking({
    id: booked.data.id, start: at(day, 10), end: at(day, 11), resource_id: chair,
  }));
  assert.equal(clash.status, 409);
  assert.equal(clash.data.code, 'slot_unavailable');
  return { booking: booked.data.id, moved_to: other, other_booking: next.data.id };
});
