-- enums: create an enum (used by a new column with enum default), drop an enum (and the column using it), enum in another schema
-- @common
CREATE SCHEMA crm;
CREATE TABLE public.tickets (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO public.tickets VALUES (1, 'printer broken'), (2, 'no coffee');
-- @base
CREATE TYPE public.old_severity AS ENUM ('low', 'high');
ALTER TABLE public.tickets ADD COLUMN severity public.old_severity;
CREATE TYPE crm.lead_source AS ENUM ('web', 'phone');
-- @target
CREATE TYPE public.ticket_status AS ENUM ('open', 'in_progress', 'closed');
ALTER TABLE public.tickets ADD COLUMN status public.ticket_status NOT NULL DEFAULT 'open';
CREATE TYPE crm.contact_kind AS ENUM ('person', 'company');
COMMENT ON TYPE crm.contact_kind IS 'kind of contact';
