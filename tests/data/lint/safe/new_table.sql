CREATE TABLE invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL,
  note text CHECK (length(note) <= 500),
  issued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_customer ON invoices (customer_id);
ALTER TABLE invoices ADD COLUMN paid boolean NOT NULL DEFAULT false;
