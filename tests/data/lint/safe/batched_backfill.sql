-- lakelet:no-transaction
SET lock_timeout = '5s';
DO $$
DECLARE n bigint;
BEGIN
  LOOP
    UPDATE orders SET status = 'open' WHERE id IN (SELECT id FROM orders WHERE status IS NULL LIMIT 5000);
    GET DIAGNOSTICS n = ROW_COUNT;
    EXIT WHEN n = 0;
    COMMIT;
  END LOOP;
END $$;
