-- expect: enum-add-value-in-transaction
ALTER TYPE order_status ADD VALUE 'refunded';
UPDATE orders SET status = 'open' WHERE id = 1;
