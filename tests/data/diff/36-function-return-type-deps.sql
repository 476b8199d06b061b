-- function -> view -> view chain: function return type changes (int -> bigint, and a RETURNS TABLE gaining a column), dependent views must be dropped/rebuilt
-- @common
CREATE TABLE public.scores (id int PRIMARY KEY, player text NOT NULL, pts int NOT NULL);
INSERT INTO public.scores VALUES (1, 'a', 10), (2, 'b', 20), (3, 'a', 5);
CREATE SCHEMA stats;
-- @base
CREATE FUNCTION stats.total_points(p text) RETURNS int LANGUAGE sql STABLE AS $$ SELECT sum(pts)::int FROM public.scores WHERE player = p $$;
CREATE FUNCTION stats.leaderboard() RETURNS TABLE (player text, total int) LANGUAGE sql STABLE AS $$ SELECT player, sum(pts)::int FROM public.scores GROUP BY player $$;
CREATE VIEW stats.player_totals AS SELECT DISTINCT player, stats.total_points(player) AS total FROM public.scores;
CREATE VIEW stats.top_player AS SELECT player, total FROM stats.player_totals ORDER BY total DESC LIMIT 1;
CREATE VIEW public.board AS SELECT * FROM stats.leaderboard();
-- @target
CREATE FUNCTION stats.total_points(p text) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT sum(pts) FROM public.scores WHERE player = p $$;
CREATE FUNCTION stats.leaderboard() RETURNS TABLE (player text, total bigint, games bigint) LANGUAGE sql STABLE AS $$ SELECT player, sum(pts), count(*) FROM public.scores GROUP BY player $$;
CREATE VIEW stats.player_totals AS SELECT DISTINCT player, stats.total_points(player) AS total FROM public.scores;
CREATE VIEW stats.top_player AS SELECT player, total FROM stats.player_totals ORDER BY total DESC LIMIT 1;
CREATE VIEW public.board AS SELECT * FROM stats.leaderboard();
