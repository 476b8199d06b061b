-- expect: prefer-text-over-char
CREATE TABLE codes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code char(8));
