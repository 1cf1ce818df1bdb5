// A booking in each of the six graphs, and every action each graph allows, through the SDK.
// The table below is written out from Timekit's graph reference and docs/graphs.md, not read
// from the server: each path of actions and the state it must end in.
'use strict';
const { assert, sdk, monday, refused, main } = require('./lib');

const PATHS = {
  instant: [
    [['cancel'], 'cancelled'], [['cancel_by_customer'], 'cancelled_by_customer'],
    [['cancel_by_owner'], 'cancelled_by_owner'], [['complete'], 'completed'],
  ],
  confirm_decline: [
    [['confirm'], 'confirmed'], [['decline'], 'declined'], [['cancel'], 'cancelled'],
    [['confirm', 'cancel'], 'cancelled'],
    [['confirm', 'cancel_by_customer'], 'cancelled_by_customer'],
    [['confirm', 'cancel_by_owner'], 'cancelled_by_owner'],
    [['confirm', 'complete'], 'completed'],
  ],
  instant_payment: [
    [['pay'], 'paid'], [['cancel'], 'cancelled'], [['pay', 'cancel'], 'cancelled'],
    [['pay', 'cancel_by_customer'], 'cancelled_by_customer'], [['pay', 'complete'], 'completed'],
  ],
  group_owner: [[['complete'], 'completed'], [['cancel'], 'cancelled']],
  group_customer: [
    [['cancel_by_customer'], 'cancelled_by_customer'],
    [['cancel_by_owner'], 'cancelled_by_owner'], [['cancel'], 'cancelled'],
    [['complete'], 'completed'],
  ],
  group_customer_payment: [
    [['pay'], 'paid'], [['cancel_by_customer'], 'cancelled_by_customer'],
    [['cancel_by_owner'], 'cancelled_by_owner'], [['cancel'], 'cancelled'],
    [['pay', 'complete'], 'completed'], [['pay', 'cancel_by_customer'], 'cancelled_by_customer'],
    [['pay', 'cancel_by_owner'], 'cancelled_by_owner'],
  ],
};
const INITIAL = {
  instant: 'confirmed', confirm_decline: 'tentative', instant_payment: 'tentative',
  group_owner: 'confirmed', group_customer: 'confirmed', group_customer_payment: 'tentative',
};

main(async () => {
  const tk = sdk();
  const day = monday(3);
  const resource = (await tk.createResource({ name: 'Studio', timezone: 'UTC' })).data.id;
  let hour = 0;
  const nextSlot = () => {
    const start = new Date(day.getTime() + hour * 3600e3);
    hour += 1;
    const iso = (d) => d.toISOString().replace('.000Z', '+00:00');
    return [iso(start), iso(new Date(start.getTime() + 3600e3))];
  };
  // One class takes every seat booking of the seat graphs.
  const [cs, ce] = nextSlot();
  const seats = PATHS.group_customer.length + PATHS.group_customer_payment.length;
  const klass = await tk.createBooking({
    resource_id: resource, graph: 'group_owner', action: 'create', start: cs, end: ce,
    what: 'Dance class', settings: { max_seats: seats },
    customer: { name: 'Teacher', email: 'teacher@example.com' },
  });
  const made = [];
  let n = 0;
  for (const [graph, paths] of Object.entries(PATHS)) {
    for (const [actions, final] of paths) {
      n += 1;
      const body = {
        graph, action: graph === 'instant' ? 'confirm' : 'create',
        customer: { name: 'Customer ' + n, email: `customer${n}@example.com`, timezone: 'UTC' },
        what: `${graph} ${actions.join(' ')}`, meta: { scenario: 'graphs', n: String(n) },
      };
      if (graph.startsWith('group_customer')) {
        body.related = { owner_booking_id: klass.data.id };
      } else {
        const [start, end] = nextSlot();
        Object.assign(body, { resource_id: resource, start, end });
        if (graph === 'group_owner') body.settings = { max_seats: 3 };
      }
      const created = await tk.include('attributes', 'available_actions').createBooking(body);
      assert.equal(created.status, 201);
      assert.equal(created.data.graph, graph);
      assert.equal(created.data.state, INITIAL[graph]);
      let state = created.data;
      for (const action of actions) {
        assert.ok(state.available_actions.includes(action), `${graph}: ${action} offered`);
        const payload = { id: created.data.id, action };
        payload[action] = action === 'pay' ? { payment_id: 'pay_' + n } : { message: 'by the SDK' };
        state = (await tk.updateBooking(payload)).data;
      }
      assert.equal(state.state, final, `${graph} ${actions} ends in ${final}`);
      assert.equal(state.completed, !['confirmed', 'paid', 'tentative'].includes(final));
      made.push({ id: created.data.id, graph, actions, state: final });
    }
  }
  // An action the graph does not allow now: 409, naming the allowed ones.
  const wrong = await refused(tk.updateBooking({ id: made[0].id, action: 'confirm' }));
  assert.equal(wrong.status, 409);
  assert.equal(wrong.data.code, 'invalid_action');
  return { class: klass.data.id, bookings: made };
});
