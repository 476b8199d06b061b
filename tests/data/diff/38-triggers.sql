-- triggers: create/drop, change WHEN condition, BEFORE->AFTER, row->statement, UPDATE OF, transition table, DISABLE TRIGGER, ENABLE ALWAYS, constraint trigger, comment, trigger fn body change
-- @common
CREATE TABLE public.accounts (id int PRIMARY KEY, balance numeric NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'open', updated_at timestamptz);
CREATE TABLE public.account_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id int, note text);
INSERT INTO public.accounts (id, balance) VALUES (1, 100), (2, 50);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE FUNCTION public.log_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.account_log (account_id, note) VALUES (NEW.id, TG_OP); RETURN NULL; END $$;
CREATE FUNCTION public.log_stmt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.account_log (note) VALUES (TG_OP || ' stmt'); RETURN NULL; END $$;
CREATE FUNCTION public.check_balance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.balance < 0 THEN RAISE EXCEPTION 'negative'; END IF; RETURN NULL; END $$;
CREATE FUNCTION public.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.account_log (account_id, note) VALUES (NEW.id, 'audit'); RETURN NEW; END $$;
-- @base
CREATE TRIGGER accounts_audit BEFORE UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.audit_row();
CREATE FUNCTION public.legacy_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE TRIGGER accounts_log AFTER UPDATE ON public.accounts FOR EACH ROW WHEN (OLD.balance IS DISTINCT FROM NEW.balance) EXECUTE FUNCTION public.log_change();
CREATE TRIGGER accounts_stmt AFTER INSERT ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.log_stmt();
CREATE TRIGGER accounts_legacy BEFORE INSERT ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.legacy_trg();
-- @target
CREATE TRIGGER accounts_audit AFTER UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.audit_row();
CREATE TRIGGER accounts_touch BEFORE INSERT OR UPDATE OF balance, status ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE TRIGGER accounts_log AFTER UPDATE ON public.accounts FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.balance <> NEW.balance) EXECUTE FUNCTION public.log_change();
CREATE TRIGGER accounts_stmt AFTER INSERT OR DELETE ON public.accounts FOR EACH STATEMENT EXECUTE FUNCTION public.log_stmt();
CREATE TRIGGER accounts_new_rows AFTER INSERT ON public.accounts REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.log_stmt();
CREATE CONSTRAINT TRIGGER accounts_balance_ct AFTER INSERT OR UPDATE ON public.accounts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.check_balance();
ALTER TABLE public.accounts DISABLE TRIGGER accounts_stmt;
ALTER TABLE public.accounts ENABLE ALWAYS TRIGGER accounts_log;
COMMENT ON TRIGGER accounts_touch ON public.accounts IS 'maintains updated_at';
CREATE OR REPLACE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
