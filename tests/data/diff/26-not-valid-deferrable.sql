-- constraint validity/deferrability: CHECK and FK NOT VALID on target (left unvalidated), NOT VALID on base but validated on target, DEFERRABLE INITIALLY DEFERRED / IMMEDIATE
-- @common
CREATE TABLE public.parents (id int PRIMARY KEY, name text);
CREATE TABLE public.kids (id int PRIMARY KEY, parent_id int, age int, nick text);
INSERT INTO public.parents VALUES (1, 'p1'), (2, 'p2');
INSERT INTO public.kids VALUES (1, 1, 5, 'a'), (2, 2, 7, 'b'), (3, NULL, 3, NULL);
CREATE TABLE public.nodes (id int PRIMARY KEY, next_id int);
INSERT INTO public.nodes VALUES (1, 2), (2, 1);
CREATE TABLE public.toys (id int PRIMARY KEY, kid_id int NOT NULL, name text);
INSERT INTO public.toys VALUES (1, 1, 'ball'), (2, 3, 'car');
-- @base
ALTER TABLE public.kids ADD CONSTRAINT kids_age_check CHECK (age >= 0) NOT VALID;
ALTER TABLE public.kids ADD CONSTRAINT kids_parent_fk FOREIGN KEY (parent_id) REFERENCES public.parents (id) NOT VALID;
ALTER TABLE public.nodes ADD CONSTRAINT nodes_next_fk FOREIGN KEY (next_id) REFERENCES public.nodes (id) DEFERRABLE;
ALTER TABLE public.parents ADD CONSTRAINT parents_name_key UNIQUE (name);
-- @target
ALTER TABLE public.kids ADD CONSTRAINT kids_age_check CHECK (age >= 0) NOT VALID;
ALTER TABLE public.kids VALIDATE CONSTRAINT kids_age_check;
ALTER TABLE public.kids ADD CONSTRAINT kids_parent_fk FOREIGN KEY (parent_id) REFERENCES public.parents (id);
ALTER TABLE public.kids ADD CONSTRAINT kids_nick_check CHECK (length(nick) <= 10) NOT VALID;
ALTER TABLE public.kids ADD CONSTRAINT kids_parent_check CHECK (parent_id IS NULL OR parent_id > 0) NOT VALID;
ALTER TABLE public.nodes ADD CONSTRAINT nodes_next_fk FOREIGN KEY (next_id) REFERENCES public.nodes (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE public.parents ADD CONSTRAINT parents_name_key UNIQUE (name) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE public.toys ADD CONSTRAINT toys_kid_fk FOREIGN KEY (kid_id) REFERENCES public.kids (id) ON DELETE CASCADE NOT VALID;
