-- sequences: MINVALUE raised above the current value (needs a RESTART), MAXVALUE lowered, CYCLE and CACHE changed
-- @common
CREATE SCHEMA sq;
-- @base
CREATE SEQUENCE sq.invoice_no START 1;
CREATE SEQUENCE sq.batch MAXVALUE 1000000 CACHE 1;
-- @target
CREATE SEQUENCE sq.invoice_no MINVALUE 1000 START 1000;
CREATE SEQUENCE sq.batch MAXVALUE 5000 CACHE 20 CYCLE;
