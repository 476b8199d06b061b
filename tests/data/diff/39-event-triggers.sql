-- event triggers: create (ddl_command_start WHEN TAG IN, ddl_command_end, sql_drop), drop, disable, ENABLE REPLICA, change tag filter, comment
-- @common
CREATE FUNCTION public.et_note() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl: %', tg_tag; END $$;
CREATE FUNCTION public.et_drops() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP RAISE NOTICE 'dropped %', r.object_identity; END LOOP;
END $$;
CREATE TABLE public.t (id int);
-- @base
CREATE EVENT TRIGGER et_create_table ON ddl_command_start WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.et_note();
CREATE EVENT TRIGGER et_old ON ddl_command_end EXECUTE FUNCTION public.et_note();
CREATE EVENT TRIGGER et_keep ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION public.et_note();
-- @target
CREATE EVENT TRIGGER et_create_table ON ddl_command_start WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION public.et_note();
CREATE EVENT TRIGGER et_drops ON sql_drop EXECUTE FUNCTION public.et_drops();
CREATE EVENT TRIGGER et_keep ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION public.et_note();
ALTER EVENT TRIGGER et_keep DISABLE;
CREATE EVENT TRIGGER et_replica ON ddl_command_start EXECUTE FUNCTION public.et_note();
ALTER EVENT TRIGGER et_replica ENABLE REPLICA;
COMMENT ON EVENT TRIGGER et_drops IS 'logs dropped objects';
