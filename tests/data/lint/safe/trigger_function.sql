CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  UPDATE counters SET n = n + 1;
  RETURN NEW;
END $$;
