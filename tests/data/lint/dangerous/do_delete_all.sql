-- expect: delete-without-where
SET lock_timeout = '5s';
DO $$
BEGIN
  IF true THEN
    DELETE FROM sessions;
  END IF;
END $$;
