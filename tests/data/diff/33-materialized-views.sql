-- materialized views: create/drop, change definition (with index on it that must be recreated), WITH NO DATA, matview on matview, comment
-- @common
CREATE TABLE public.page_views (id bigint PRIMARY KEY, url text NOT NULL, viewed_at timestamptz NOT NULL, user_id int);
INSERT INTO public.page_views VALUES (1, '/a', '2024-01-01 10:00+00', 1), (2, '/b', '2024-01-01 11:00+00', NULL), (3, '/a', '2024-01-02 10:00+00', 2);
CREATE SCHEMA mv;
-- @base
CREATE MATERIALIZED VIEW mv.daily AS SELECT date_trunc('day', viewed_at) AS day, count(*) AS views FROM public.page_views GROUP BY 1;
CREATE UNIQUE INDEX daily_day_key ON mv.daily (day);
CREATE MATERIALIZED VIEW mv.obsolete AS SELECT url FROM public.page_views;
-- @target
CREATE MATERIALIZED VIEW mv.daily AS SELECT date_trunc('day', viewed_at) AS day, count(*) AS views, count(DISTINCT user_id) AS users FROM public.page_views GROUP BY 1;
CREATE UNIQUE INDEX daily_day_key ON mv.daily (day);
CREATE MATERIALIZED VIEW mv.top_urls AS SELECT url, count(*) AS n FROM public.page_views GROUP BY url WITH NO DATA;
CREATE MATERIALIZED VIEW mv.weekly AS SELECT date_trunc('week', day) AS week, sum(views) AS views FROM mv.daily GROUP BY 1;
CREATE INDEX weekly_week_idx ON mv.weekly (week);
COMMENT ON MATERIALIZED VIEW mv.daily IS 'daily page views';
