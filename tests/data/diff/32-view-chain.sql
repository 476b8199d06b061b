-- dependency chain of views: v3 -> v2 -> v1 -> table; table column type changes (int -> numeric) and v1 changes, upper views must be rebuilt
-- @common
CREATE SCHEMA rpt;
-- @base
CREATE TABLE public.sales (id int PRIMARY KEY, region text NOT NULL, amount int NOT NULL, sold_on date NOT NULL);
INSERT INTO public.sales VALUES (1, 'north', 10, '2024-01-01'), (2, 'south', 20, '2024-01-02'), (3, 'north', 5, '2024-02-01');
CREATE VIEW rpt.v1 AS SELECT id, region, amount, sold_on FROM public.sales;
CREATE VIEW rpt.v2 AS SELECT region, sum(amount) AS total, count(*) AS n FROM rpt.v1 GROUP BY region;
CREATE VIEW public.v3 AS SELECT region, total FROM rpt.v2 WHERE total > 0;
-- @target
CREATE TABLE public.sales (id int PRIMARY KEY, region text NOT NULL, amount numeric(12,2) NOT NULL, sold_on date NOT NULL);
CREATE VIEW rpt.v1 AS SELECT id, upper(region) AS region, amount, sold_on, date_trunc('month', sold_on)::date AS month FROM public.sales;
CREATE VIEW rpt.v2 AS SELECT region, sum(amount) AS total, count(*) AS n FROM rpt.v1 GROUP BY region;
CREATE VIEW public.v3 AS SELECT region, total FROM rpt.v2 WHERE total > 0;
