-- exclusion constraints with btree_gist: add EXCLUDE USING gist (room WITH =, during WITH &&), drop one, change one (added WHERE)
-- @common
CREATE EXTENSION btree_gist;
CREATE TABLE public.bookings (id int PRIMARY KEY, room int NOT NULL, during tsrange NOT NULL, cancelled boolean NOT NULL DEFAULT false);
INSERT INTO public.bookings VALUES (1, 101, '[2024-01-01 10:00,2024-01-01 12:00)', false), (2, 101, '[2024-01-01 12:00,2024-01-01 13:00)', false),
  (3, 102, '[2024-01-01 10:00,2024-01-01 12:00)', false);
CREATE TABLE public.shifts (id int PRIMARY KEY, person int NOT NULL, span daterange NOT NULL);
INSERT INTO public.shifts VALUES (1, 1, '[2024-01-01,2024-01-05)'), (2, 1, '[2024-01-10,2024-01-12)');
CREATE TABLE public.leases (id int PRIMARY KEY, unit int NOT NULL, span daterange NOT NULL, active boolean NOT NULL DEFAULT true);
-- @base
ALTER TABLE public.shifts ADD CONSTRAINT shifts_no_overlap EXCLUDE USING gist (person WITH =, span WITH &&);
ALTER TABLE public.leases ADD CONSTRAINT leases_no_overlap EXCLUDE USING gist (unit WITH =, span WITH &&);
-- @target
ALTER TABLE public.bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist (room WITH =, during WITH &&) WHERE (NOT cancelled);
ALTER TABLE public.leases ADD CONSTRAINT leases_no_overlap EXCLUDE USING gist (unit WITH =, span WITH &&) WHERE (active);
