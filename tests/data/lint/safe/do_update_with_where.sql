SET lock_timeout = '5s';
DO $$
BEGIN
  UPDATE orders SET status = 'open' WHERE status IS NULL AND id < 1000;
END $$;
