-- 0005_customer_locked_out_by: who locked a customer out. The app hears
-- customer.locked_out from the sync that saw the lockout happen; a flow's
-- end and a webhook's handling run that sync as a local activity in a
-- workflow task that may be retried, and two syncs may run at once. The
-- store decides which sync saw it, in the write that sets locked_out, and
-- records that sync here, so the same sync retried gets the same answer
-- and no other sync gets it.
--
-- The same change, in the same order, is schema/sqlite/0005.

-- +goose Up

-- The identity of the sync that moved locked_out from false to true
-- ("flow:<id>", "webhook:<id>"); '' when the customer is not locked out,
-- for a lockout made by an anonymous sync or the reconciler, and for
-- customers locked out before this migration. The CHECK keeps it from
-- outliving the lockout. A constant default adds the column without
-- rewriting the table; the CHECK reads every row once, under the ALTER's
-- lock.
ALTER TABLE customers ADD COLUMN locked_out_by TEXT NOT NULL DEFAULT '',
    ADD CONSTRAINT customers_locked_out_by CHECK (locked_out_by = '' OR locked_out);

-- The store never migrates down; this is for an operator who rolls a
-- database back with goose by hand.
-- +goose Down

ALTER TABLE customers DROP COLUMN locked_out_by;
