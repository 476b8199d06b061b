-- views: create/drop, add a column at the end (CREATE OR REPLACE compatible), remove/reorder columns (not replaceable), security_barrier, WITH CHECK OPTION, column rename in view, comment
-- @common
CREATE SCHEMA v;
CREATE TABLE public.employees (id int PRIMARY KEY, name text NOT NULL, dept text, salary numeric, active boolean NOT NULL DEFAULT true);
INSERT INTO public.employees VALUES (1, 'Ann', 'eng', 100, true), (2, 'Bob', 'ops', 80, false);
-- @base
CREATE VIEW v.active_employees AS SELECT id, name FROM public.employees WHERE active;
CREATE VIEW v.salaries AS SELECT id, name, dept, salary FROM public.employees;
CREATE VIEW v.old_view AS SELECT count(*) AS n FROM public.employees;
CREATE VIEW v.eng AS SELECT id, name, dept FROM public.employees WHERE dept = 'eng';
CREATE VIEW v.names AS SELECT id, name AS full_name FROM public.employees;
-- @target
CREATE VIEW v.active_employees AS SELECT id, name, dept FROM public.employees WHERE active;
CREATE VIEW v.salaries AS SELECT salary, id, name FROM public.employees;
CREATE VIEW v.eng WITH (security_barrier) AS SELECT id, name, dept FROM public.employees WHERE dept = 'eng' WITH LOCAL CHECK OPTION;
CREATE VIEW v.names AS SELECT id, name AS display_name FROM public.employees;
CREATE VIEW public.dept_summary WITH (security_barrier = true, check_option = cascaded) AS SELECT id, dept FROM public.employees WHERE dept IS NOT NULL;
COMMENT ON VIEW v.salaries IS 'salary overview';
COMMENT ON COLUMN v.salaries.salary IS 'yearly, in k';
