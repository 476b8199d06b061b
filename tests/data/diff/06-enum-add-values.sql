-- enums: add values at the end, BEFORE and AFTER an existing value; enum used by a table with data and a default
-- @skip reverse: rows hold the added values, so removing them must fail; the diff says may-fail with the row count (tests/diff.rs, a_failing_script_stops_at_a_group_and_the_diff_undoes_what_was_applied)
-- @common
CREATE SCHEMA shop;
-- @base
CREATE TYPE shop.order_state AS ENUM ('new', 'paid', 'shipped');
CREATE TYPE public.mood AS ENUM ('sad', 'happy');
CREATE TABLE shop.orders (id int PRIMARY KEY, state shop.order_state NOT NULL DEFAULT 'new');
INSERT INTO shop.orders VALUES (1, 'new'), (2, 'paid'), (3, 'shipped');
-- @target
CREATE TYPE shop.order_state AS ENUM ('new', 'paid', 'shipped');
ALTER TYPE shop.order_state ADD VALUE 'delivered';
ALTER TYPE shop.order_state ADD VALUE 'pending_payment' BEFORE 'paid';
ALTER TYPE shop.order_state ADD VALUE 'packed' AFTER 'paid';
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic');
CREATE TABLE shop.orders (id int PRIMARY KEY, state shop.order_state NOT NULL DEFAULT 'new');
INSERT INTO shop.orders VALUES (1, 'new'), (2, 'packed'), (3, 'delivered');
