-- expect: update-without-where
SET lock_timeout = '5s';
DO $$
BEGIN
  UPDATE orders SET status = 'open';
END $$;
