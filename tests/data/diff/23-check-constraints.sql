-- CHECK constraints: add, drop, change expression, column-level vs table-level, a CHECK using a user function, NO INHERIT check
-- @common
CREATE FUNCTION public.is_valid_sku(s text) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT s ~ '^[A-Z]+-[0-9]+$' $$;
CREATE SCHEMA cat;
-- @base
CREATE TABLE cat.products (id int PRIMARY KEY, sku text, price numeric CONSTRAINT products_price_check CHECK (price >= 0), stock int,
  discount numeric, CONSTRAINT products_discount_check CHECK (discount < 1));
INSERT INTO cat.products VALUES (1, 'AB-1', 10, 3, 0.1), (2, 'CD-22', 0, 0, NULL);
CREATE TABLE cat.ranges (lo int, hi int);
-- @target
CREATE TABLE cat.products (id int PRIMARY KEY, sku text, price numeric CONSTRAINT products_price_check CHECK (price >= 0 AND price < 100000), stock int,
  discount numeric,
  CONSTRAINT products_sku_check CHECK (public.is_valid_sku(sku)),
  CONSTRAINT products_stock_check CHECK (stock >= 0));
INSERT INTO cat.products VALUES (1, 'AB-1', 10, 3, 0.1);
CREATE TABLE cat.ranges (lo int, hi int, CONSTRAINT ranges_order CHECK (lo <= hi) NO INHERIT);
