-- dependency chain type -> table column -> view: composite attribute type change, enum gaining a value and a domain gaining a CHECK, all used by table columns (with data) and views
-- @common
CREATE SCHEMA geo;
-- @base
CREATE TYPE geo.address AS (street text, city text, zip int);
CREATE TYPE geo.kind AS ENUM ('home', 'work');
CREATE DOMAIN geo.lat AS numeric CONSTRAINT lat_range CHECK (VALUE BETWEEN -90 AND 90);
CREATE TABLE geo.places (id int PRIMARY KEY, addr geo.address, kind geo.kind NOT NULL, lat geo.lat);
INSERT INTO geo.places VALUES (1, ROW('Main St 1', 'Springfield', 12345), 'home', 45.5), (2, ROW('Elm 2', 'Shelby', 54321), 'work', -10);
CREATE VIEW geo.place_cities AS SELECT id, (addr).city AS city, (addr).zip AS zip, kind, lat FROM geo.places;
CREATE VIEW public.home_cities AS SELECT city, zip FROM geo.place_cities WHERE kind = 'home';
-- @target
CREATE TYPE geo.address AS (street text, city text, zip text);
CREATE TYPE geo.kind AS ENUM ('home', 'work', 'other');
CREATE DOMAIN geo.lat AS numeric CONSTRAINT lat_range CHECK (VALUE BETWEEN -90 AND 90) CONSTRAINT lat_scale CHECK (scale(VALUE) <= 6);
CREATE TABLE geo.places (id int PRIMARY KEY, addr geo.address, kind geo.kind NOT NULL, lat geo.lat);
INSERT INTO geo.places VALUES (1, ROW('Main St 1', 'Springfield', '12345'), 'home', 45.5);
CREATE VIEW geo.place_cities AS SELECT id, (addr).city AS city, (addr).zip AS zip, kind, lat FROM geo.places;
CREATE VIEW public.home_cities AS SELECT city, zip FROM geo.place_cities WHERE kind = 'home';
