-- expect: update-without-where
SET lock_timeout = '5s';
UPDATE orders SET status = 'open';
