-- expect: concurrently-in-transaction
SET lock_timeout = '5s';
ALTER TABLE orders ADD COLUMN note text;
CREATE INDEX CONCURRENTLY orders_note ON orders (note);
