-- RLS policies: create/drop, change USING / WITH CHECK, change roles (TO diff_reader), PERMISSIVE/RESTRICTIVE, FOR SELECT/INSERT/UPDATE/DELETE/ALL, policy comment
-- @common
CREATE SCHEMA sec;
CREATE TABLE sec.notes (id int PRIMARY KEY, owner_name text NOT NULL, body text, published boolean NOT NULL DEFAULT false, tenant int NOT NULL DEFAULT 1);
INSERT INTO sec.notes VALUES (1, 'ann', 'x', true, 1), (2, 'bob', 'y', false, 2);
ALTER TABLE sec.notes ENABLE ROW LEVEL SECURITY;
-- @base
CREATE POLICY notes_read ON sec.notes FOR SELECT USING (published);
CREATE POLICY notes_write ON sec.notes FOR INSERT WITH CHECK (owner_name = current_user);
CREATE POLICY notes_old ON sec.notes FOR DELETE USING (false);
CREATE POLICY notes_tenant ON sec.notes AS PERMISSIVE FOR ALL TO PUBLIC USING (tenant = 1);
CREATE POLICY notes_upd ON sec.notes FOR UPDATE USING (owner_name = current_user);
-- @target
CREATE POLICY notes_read ON sec.notes FOR SELECT TO diff_reader, diff_writer USING (published OR owner_name = current_user);
CREATE POLICY notes_write ON sec.notes FOR INSERT TO diff_writer WITH CHECK (owner_name = current_user AND tenant > 0);
CREATE POLICY notes_tenant ON sec.notes AS RESTRICTIVE FOR ALL TO PUBLIC USING (tenant = 1) WITH CHECK (tenant = 1);
CREATE POLICY notes_upd ON sec.notes FOR UPDATE TO diff_writer USING (owner_name = current_user) WITH CHECK (owner_name = current_user);
CREATE POLICY notes_del ON sec.notes FOR DELETE TO diff_owner USING (NOT published);
CREATE POLICY notes_all_owner ON sec.notes FOR ALL TO diff_owner USING (true);
COMMENT ON POLICY notes_read ON sec.notes IS 'readers see published notes';
