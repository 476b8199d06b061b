-- sequences: create/drop, change increment/min/max/start/cache/cycle, type change, OWNED BY a column (add/change), column default nextval(seq), seq in other schema
-- @common
CREATE SCHEMA seqs;
CREATE TABLE public.tickets (id bigint NOT NULL, code int, title text);
INSERT INTO public.tickets VALUES (1, 100, 'a'), (2, 101, 'b');
-- @base
CREATE SEQUENCE public.ticket_seq;
CREATE SEQUENCE seqs.invoice_no START 1000 INCREMENT 1 CACHE 1;
CREATE SEQUENCE seqs.wrap AS integer MINVALUE 1 MAXVALUE 100 NO CYCLE;
CREATE SEQUENCE public.obsolete_seq;
CREATE SEQUENCE public.code_seq OWNED BY public.tickets.id;
-- @target
CREATE SEQUENCE public.ticket_seq OWNED BY public.tickets.id;
ALTER TABLE public.tickets ALTER COLUMN id SET DEFAULT nextval('public.ticket_seq');
CREATE SEQUENCE seqs.invoice_no START 1000 INCREMENT 5 MINVALUE 10 MAXVALUE 9999999 CACHE 20;
CREATE SEQUENCE seqs.wrap AS bigint MINVALUE 1 MAXVALUE 1000 CYCLE;
CREATE SEQUENCE public.code_seq START 100 OWNED BY public.tickets.code;
ALTER TABLE public.tickets ALTER COLUMN code SET DEFAULT nextval('public.code_seq'::regclass);
CREATE SEQUENCE seqs.descending INCREMENT -1 MINVALUE -1000 MAXVALUE -1 START -1;
COMMENT ON SEQUENCE seqs.invoice_no IS 'invoice numbers';
